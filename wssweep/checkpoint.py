"""Per-trial records in the run directory: the stage checkpoint and the final metrics.

Each (setting, seed) of a sweep owns ``RUN_DIR/trials/<setting_key>-seed<seed>/``:

  ``stage.pt``    the trial's state after its last finished stage (every arm's model, optimizer,
                  pool and stage results, the RNG states); a restarted trial continues from it.
                  Deleted once the trial has finished.
  ``final.json``  the trial's final metrics and identity, written before the trial reports them
                  to Tune. A trial that finds it reports it again and trains nothing.

Both are written atomically (temp file, then rename), so a trial killed mid-write leaves the
previous version, never half of one. They are keyed by what the trial *is* (its setting and seed),
not by Tune's trial id, so they are found whichever Tune trial runs that setting: a trial Tune
restores, retries after a lost node, or creates anew because its experiment snapshot predates it.

Example:
    >>> import tempfile
    >>> store = TrialStore(tempfile.mkdtemp(), "abc123-seed0")
    >>> store.load() is None, store.final() is None
    (True, True)
    >>> store.save({"stages_done": 2})
    >>> store.load()
    {'stages_done': 2}
    >>> store.write_final({"gap": 1.5})
    >>> store.final(), store.load()
    ({'gap': 1.5}, None)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wssweep.files import atomic_write
from wssweep.record import TRIALS_DIR

if TYPE_CHECKING:
    from wssweep.record import SweepRecord

STAGE_FILE = "stage.pt"
FINAL_FILE = "final.json"
NEXT_SUFFIX = ".next"  # a group's stage checkpoint, written for every member before any replaces


def unit_name(setting_key: str, seed: int) -> str:
    """The folder name of one (setting, seed): the same on every node and in every session."""
    return f"{setting_key}-seed{seed}"


def trial_members(
    config: dict[str, Any], sweep: SweepRecord
) -> list[tuple[dict[str, Any], int, str]]:
    """``(setting, seed, setting_key)`` of each member of Tune's ``config`` (one, or a group's:
    ``wssweep.space.trial_members``). The key hashes the setting as the user specified it,
    before any node decides the trial's device and threads."""
    from wssweep.results import setting_key
    from wssweep.space import trial_members as members
    from wssweep.spec import experiment_from_mapping

    return [(setting, seed, setting_key(experiment_from_mapping(
        sweep.experiment, setting={**setting, "seed": seed})))
        for setting, seed in members(config, sweep.seeds)]


def member_id(trial_id: str, index: int, grouped: bool) -> str:
    """The id of a Tune trial's member ``index``: its W&B run id and results.csv ``trial_id``."""
    return f"{trial_id}-{index}" if grouped else trial_id


def member_stores(config: dict[str, Any], sweep: SweepRecord) -> list[TrialStore]:
    """The records of each member of the trial Tune runs with ``config``."""
    return [TrialStore(sweep.run_dir, unit_name(key, seed))
            for _, seed, key in trial_members(config, sweep)]


class TrialStore:
    """The stage checkpoint and final record of one (setting, seed) of a run."""

    def __init__(self, run_dir: str | Path, unit: str) -> None:
        self.dir = Path(run_dir) / TRIALS_DIR / unit

    @property
    def stage_path(self) -> Path:
        return self.dir / STAGE_FILE

    @property
    def final_path(self) -> Path:
        return self.dir / FINAL_FILE

    def load(self) -> dict[str, Any] | None:
        """The state after the trial's last finished stage, or ``None``."""
        if not self.stage_path.is_file():
            return None
        import torch  # lazy: the driver reads final records without loading torch
        # Our own file, written by a trial of this run (it holds dataclasses, not only tensors).
        return torch.load(self.stage_path, map_location="cpu", weights_only=False)

    def save(self, state: dict[str, Any]) -> None:
        """Replace the stage checkpoint with ``state`` (atomically)."""
        import torch

        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.stage_path, "wb") as handle:
            torch.save(state, handle)

    def final(self) -> dict[str, Any] | None:
        """The final record, or ``None`` while the trial has not finished."""
        if not self.final_path.is_file():
            return None
        return json.loads(self.final_path.read_text())

    def write_final(self, record: dict[str, Any]) -> None:
        """Record the trial as finished (atomically), then drop its stage checkpoint."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.final_path) as handle:
            handle.write(json.dumps(record, allow_nan=True))
        self.clear_stages()

    def clear_stages(self) -> None:
        self.stage_path.unlink(missing_ok=True)
        self.next_path.unlink(missing_ok=True)

    @property
    def next_path(self) -> Path:
        return self.stage_path.with_name(STAGE_FILE + NEXT_SUFFIX)


class GroupStore:
    """The stage checkpoints of a group's members (``wssweep.science.group.run_group``), each
    in its member's own ``stage.pt``, replaced all or none.

    A save writes every member's new state beside its checkpoint (``stage.pt.next``, atomically)
    and only then moves them over the old ones. A group killed while writing leaves some
    ``.next`` files and every old checkpoint: ``load`` drops the ``.next`` files and returns the
    old stage. One killed while moving leaves each member with the new stage in one file or the
    other: ``load`` finishes the move. Either way every member comes back at the same stage.

    Example:
        >>> import tempfile
        >>> run_dir = tempfile.mkdtemp()
        >>> group = GroupStore([TrialStore(run_dir, "a-seed0"), TrialStore(run_dir, "a-seed1")])
        >>> group.load() is None
        True
        >>> group.save([{"stages_done": 1, "m": 0}, {"stages_done": 1, "m": 1}])
        >>> TrialStore(run_dir, "a-seed1").next_path.write_bytes(b"half of a write")
        15
        >>> [s["m"] for s in group.load()], TrialStore(run_dir, "a-seed1").next_path.exists()
        ([0, 1], False)
    """

    def __init__(self, stores: list[TrialStore]) -> None:
        self.stores = stores

    def save(self, states: list[dict[str, Any]]) -> None:
        import torch

        for store, state in zip(self.stores, states, strict=True):
            store.dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(store.next_path, "wb") as handle:
                torch.save(state, handle)
        for store in self.stores:
            store.next_path.replace(store.stage_path)

    def load(self) -> list[dict[str, Any] | None] | None:
        """Every member's state after the group's last saved stage (``None`` for a member
        without one), or ``None`` when no member has one."""
        if any(store.next_path.exists() for store in self.stores):
            newer = [_load_or_none(store.next_path) for store in self.stores]
            latest = [n if n is not None else store.load()
                      for n, store in zip(newer, self.stores, strict=True)]
            if None not in latest and len({s.get("stages_done") for s in latest}) == 1:
                for store in self.stores:  # killed while moving: finish the move
                    if store.next_path.exists():
                        store.next_path.replace(store.stage_path)
                return latest
            for store in self.stores:  # killed while writing: the old stage stands
                store.next_path.unlink(missing_ok=True)
        states = [store.load() for store in self.stores]
        return None if all(state is None for state in states) else states


def _load_or_none(path: Path) -> dict[str, Any] | None:
    """A checkpoint file's state; ``None`` if it is missing or unreadable (cut short)."""
    if not path.is_file():
        return None
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a torn write cannot be told apart from any other unreadable file
        return None


def final_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every final record of ``run_dir``."""
    return [json.loads(path.read_text())
            for path in sorted((Path(run_dir) / TRIALS_DIR).glob(f"*/{FINAL_FILE}"))]


def clear_stage_checkpoints(run_dir: str | Path) -> int:
    """Delete every stage checkpoint of ``run_dir``; returns how many went.

    Called when a sweep has ended with no trial left to run: the checkpoints left then belong to
    trials a scheduler stopped or whose science raised, which nothing will resume.
    """
    removed = 0
    for path in sorted((Path(run_dir) / TRIALS_DIR).glob(f"*/{STAGE_FILE}")):
        path.unlink(missing_ok=True)
        removed += 1
    for path in (Path(run_dir) / TRIALS_DIR).glob(f"*/{STAGE_FILE}{NEXT_SUFFIX}"):
        path.unlink(missing_ok=True)  # a group's half-written next stage: nothing resumes it
    return removed
