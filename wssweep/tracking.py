"""Everything W&B for wssweep: mode choice, one run per trial, and the sweep's map run.

No other wssweep module imports ``wandb``: the science stays plain PyTorch/NumPy, and W&B is
imported lazily here so that ``wssweep trial`` / ``wssweep validate`` never pay its ~0.5 s
import.

W&B layout (docs/architecture.md): project = the spec's project, group = the sweep run's name,
one run per trial (job type ``trial``) whose config is the flattened experiment plus the
setting key and every swept axis, metrics per epoch with an explicit ``step``, and one final
run (job type ``map``) holding the summary table and the map images, and one run per setting
(job type ``setting``) holding its row of the summary table, which the workspace's
parallel-coordinates plot reads (``wssweep.dashboard``).

Offline runs land in ``<run_dir>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>[-N]/run-<id>.wandb``;
``wandb sync`` uploads them later. (The tests read those files back with
``tests/wandb_files.py``: wandb 0.31 has no public reader for them.)

Example:
    >>> flatten({"data": {"name": "digits", "n": 3}, "seeds": [0, 1]})
    {'data.name': 'digits', 'data.n': 3, 'seeds': [0, 1]}
    >>> resolve_mode("disabled")
    'disabled'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wssweep.cells import missing
from wssweep.metrics import METRICS
from wssweep.sequential import judged_by

if TYPE_CHECKING:
    from wssweep.record import SweepRecord

__all__ = [
    "MAP_METRICS",
    "MODES",
    "SETTING_JOB",
    "SUMMARY_TABLE",
    "TrialRun",
    "flatten",
    "quiet_env",
    "redact",
    "resolve_mode",
    "start",
    "teardown",
]

MODES = ("auto", "online", "offline", "disabled")
#: The map run's table key: ``summary.csv`` as a W&B table (the workspace's table panel reads it).
SUMMARY_TABLE = "summary"
#: Job type of the runs that hold one setting's row of the summary table each: W&B's
#: parallel-coordinates plot draws runs, and a trial run holds one seed, not the setting's
#: reference gap (a number the map computes once every seed has finished).
SETTING_JOB = "setting"

# The map metrics (docs/architecture.md): their summary is the last value. wandb 0.31 accepts
# summary= "min", "max", "mean", "best", "last", "first", "none" (and deprecated "copy").
# Note: with summary="last" wandb writes the running summary as {"last": v}; TrialRun.finish
# then writes the final scalars, so a finished run's summary holds plain values.
MAP_METRICS = tuple(m.name for m in METRICS if m.in_wandb_summary)

# Config keys whose name contains one of these is dropped: never send a secret to W&B.
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential")
# ...except these, which are ours and harmless (the setting hash must reach W&B).
_SECRET_EXEMPT = frozenset({"setting_key"})


# --------------------------------------------------------------------------- mode and env


def resolve_mode(requested: str) -> str:
    """Turn the spec's ``wandb.mode`` into a mode ``wandb.init`` accepts.

    ``auto`` follows W&B's own ``WANDB_MODE`` when it is set (``online``, ``offline`` or
    ``disabled``), as a W&B user expects; otherwise it is ``online`` when ``WANDB_API_KEY`` is set
    (non-empty), else ``offline``.
    ``online`` without a key falls back to ``offline`` with a one-line note on stderr, so a
    sweep never dies for want of a login.

    Example:
        >>> resolve_mode("offline")
        'offline'
    """
    mode = str(requested).strip().lower()
    if mode not in MODES:
        raise ValueError(f"wandb mode must be one of {', '.join(MODES)}; got {requested!r}")
    has_key = bool(os.environ.get("WANDB_API_KEY", "").strip())
    if mode == "auto":
        env = os.environ.get("WANDB_MODE", "").strip().lower()
        if env in ("online", "offline", "disabled"):
            mode = env
        else:
            return "online" if has_key else "offline"
    if mode == "online" and not has_key:
        print(
            "wssweep: wandb mode 'online' but WANDB_API_KEY is not set; logging offline "
            "(upload later with `wandb sync`)",
            file=sys.stderr,
        )
        return "offline"
    return mode


def quiet_env() -> None:
    """Set the W&B environment variables wssweep relies on, unless the user set them.

    Call it in the driver before Ray starts workers, so that workers inherit it too.
    ``WANDB_SILENT`` stops the banner and sync hints; ``WANDB_ERROR_REPORTING=false`` stops
    wandb's crash reporter, the one part that would otherwise try the network in offline mode;
    ``WANDB_DISABLE_GIT``/``WANDB_DISABLE_CODE`` skip repository probing and code upload.
    """
    for name, value in (
        ("WANDB_SILENT", "true"),
        ("WANDB_ERROR_REPORTING", "false"),
        ("WANDB_DISABLE_GIT", "true"),
        ("WANDB_DISABLE_CODE", "true"),
    ):
        os.environ.setdefault(name, value)


# --------------------------------------------------------------------------- config helpers


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys; lists and other values are kept as they are.

    Example:
        >>> flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}, prefix="x")
        {'x.a.b': 1, 'x.a.c.d': [1, 2], 'x.e': None}
    """
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _is_secret_name(name: str) -> bool:
    if name in _SECRET_EXEMPT:
        return False
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten ``config`` and drop anything that may be a secret.

    Drops keys whose dotted name contains "key", "token", "secret", "password" (any case,
    ``setting_key`` excepted) and any string value equal to the current ``WANDB_API_KEY``.

    Example:
        >>> redact({"setting_key": "ab12", "wandb": {"api_key": "x"}, "lr": 0.1})
        {'setting_key': 'ab12', 'lr': 0.1}
    """
    api_key = os.environ.get("WANDB_API_KEY", "").strip()
    out = {}
    for name, value in flatten(config).items():
        if _is_secret_name(name):
            continue
        if api_key and isinstance(value, str) and api_key in value:
            continue
        out[name] = value
    return out


# --------------------------------------------------------------------------- runs


class TrialRun:
    """One W&B run (usually one trial). Make it with :func:`start`.

    ``log`` writes one history row at an explicit step, flushed at once; ``finish`` writes the
    final summary and closes the run. Also a context manager: leaving the block by an exception
    finishes the run with exit code 1.

    Example:
        >>> run = start(Path("runs/x/trial_0"), project="wssweep", entity=None,  # doctest: +SKIP
        ...             group="x", name="trial_0", run_id="x-trial_0",
        ...             config={"lr": 0.1, "setting_key": "ab12"}, mode="offline")
        >>> run.log({"warm/train_loss": 0.4}, step=0)  # doctest: +SKIP
        >>> run.finish({"gap": 0.3, "diverged": False})  # doctest: +SKIP
    """

    enabled = True

    def __init__(self, run: Any, run_dir: Path) -> None:
        self._run = run
        self.run_dir = run_dir
        self.finished = False
        self._open_step: int | None = None  # the step of the history row not yet committed

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def dir(self) -> Path | None:
        """The run's own directory (``.../wandb/offline-run-*-<id>``)."""
        # run.dir is ".../offline-run-*/files"; its parent holds the .wandb file.
        return Path(self._run.dir).parent

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log one history row at ``step``; None values and lists are skipped.

        Metric names are kept even if they contain "key"/"token" (``tokens_seen`` is a
        metric); only a *string* value under such a name is dropped, as a possible secret.

        The step also goes in as the ``step`` metric, the x-axis every metric is defined on.
        Rows logged at the same step are one row: a stage's record (both arms' test accuracy,
        the gap) comes at the step of the stage's last epoch, and wandb drops a row at a step
        it has already committed. So a row is committed when a later step arrives, or by
        :meth:`finish` before it writes the final summary (which flushing the row after it
        would overwrite). A step below the last one is dropped, as wandb does.
        """
        row = {
            key: value
            for key, value in metrics.items()
            if value is not None
            and not isinstance(value, list | tuple)
            and not (isinstance(value, str) and _is_secret_name(key))
        }
        row["step"] = int(step)
        self._run.log(row, step=int(step), commit=False)
        self._open_step = max(int(step), self._open_step or 0)

    def _commit(self) -> None:
        """Commit the open history row, if any (see :meth:`log`)."""
        if self._open_step is not None:
            self._run.log({}, step=self._open_step, commit=True)
            self._open_step = None

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Log a table (e.g. the map's summary) at the next step; it lands in ``files``."""
        import wandb

        data = uniform_columns(rows)
        self._commit()
        self._run.log({key: wandb.Table(columns=list(columns), data=data)}, commit=True)

    def log_images(self, images: Mapping[str, Path | str]) -> None:
        """Log image files (e.g. the map's heatmap PNGs), one key each, at the next step."""
        import wandb

        self._commit()
        self._run.log({key: wandb.Image(str(path)) for key, path in images.items()}, commit=True)

    def finish(self, summary: Mapping[str, Any] | None = None, exit_code: int = 0) -> None:
        """Write ``summary`` (None values skipped, lists allowed) and close the run.

        Strings under secret-looking names are dropped, as in :meth:`log`.
        """
        if self.finished:
            return
        values = {
            key: value
            for key, value in (summary or {}).items()
            if value is not None and not (isinstance(value, str) and _is_secret_name(key))
        }
        self._commit()
        if values:
            self._run.summary.update(values)
        self._run.finish(exit_code=int(exit_code))
        self.finished = True

    def __enter__(self) -> TrialRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.finished:
            self.finish(exit_code=0 if exc_type is None else 1)


class _DisabledRun(TrialRun):
    """Mode "disabled": the same methods, doing nothing, writing nothing."""

    enabled = False

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.run_dir = run_dir
        self._id = run_id
        self.finished = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def dir(self) -> Path | None:
        return None

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        pass

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        pass

    def log_images(self, images: Mapping[str, Path | str]) -> None:
        pass

    def finish(self, summary: Mapping[str, Any] | None = None, exit_code: int = 0) -> None:
        self.finished = True


def uniform_columns(rows: list[list[Any]]) -> list[list[Any]]:
    """The rows with every column of one type, as ``wandb.Table`` requires: a column that mixes
    text and numbers (e.g. ``optim.warmup_init``: 0.0 or ``catapult``) becomes text.

    Example:
        >>> uniform_columns([[0.0, 1.5], ["catapult", 2.0], [None, 3.0]])
        [['0.0', 1.5], ['catapult', 2.0], [None, 3.0]]
    """
    rows = [list(r) for r in rows]
    for j in range(len(rows[0]) if rows else 0):
        kinds = {isinstance(r[j], str) for r in rows if r[j] is not None}
        if len(kinds) > 1:
            for r in rows:
                r[j] = None if r[j] is None else str(r[j])
    return rows


def start(
    run_dir: Path,
    *,
    project: str,
    entity: str | None,
    group: str,
    name: str,
    run_id: str,
    config: Mapping[str, Any],
    mode: str,
    tags: list[str] | None = None,
    job_type: str = "trial",
) -> TrialRun:
    """Start (or resume, same ``run_id``) one W&B run writing under ``run_dir/wandb/``.

    ``mode`` is passed through :func:`resolve_mode` ("auto" is fine). ``config`` is flattened
    and redacted (:func:`redact`). Works sequentially for many runs in one process and inside
    a Ray worker: each call is a fresh run (``reinit="create_new"``) that does not touch
    ``wandb.run``. The first call in a process starts the ``wandb-core`` helper (~0.5 s); later
    ones take ~10-50 ms offline.

    Example:
        >>> run = start(Path("/tmp/t0"), project="p", entity=None, group="g",  # doctest: +SKIP
        ...             name="t0", run_id="g-t0", config={}, mode="disabled")
        >>> run.enabled  # doctest: +SKIP
        False
    """
    mode = resolve_mode(mode)
    run_dir = Path(run_dir).absolute()
    if mode == "disabled":
        return _DisabledRun(run_dir, run_id)

    quiet_env()
    import wandb  # lazy: only runs that track pay for the import

    # An absolute, existing dir: without it the synced copies of runs were truncated
    # (seen with wandb 0.31), and wandb falls back to a temp dir when dir= does not exist.
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(
        silent=True,
        console="off",  # no stdout capture: Ray already collects worker output
        x_disable_stats=True,  # no system-metrics sampler process per run
        x_disable_meta=True,  # no host/argv/executable metadata (argv may carry secrets)
        x_disable_machine_info=True,
        x_save_requirements=False,  # no pip freeze per trial
        disable_git=True,
        save_code=False,
        disable_job_creation=True,
    )
    run = wandb.init(
        project=project,
        entity=entity,
        group=group,
        job_type=job_type,
        name=name,
        id=run_id,
        resume="allow",
        config=redact(config),
        tags=list(tags) if tags else None,
        dir=str(run_dir),
        mode=mode,
        reinit="create_new",  # many runs per process, none touching the global wandb.run
        settings=settings,
    )
    # Every metric is plotted against our explicit epoch step; the map metrics keep their last.
    run.define_metric("step")
    run.define_metric("*", step_metric="step")
    for metric in MAP_METRICS:
        run.define_metric(metric, step_metric="step", summary="last")
    return TrialRun(run, run_dir)


def teardown() -> None:
    """Stop this process's ``wandb-core`` helper (it also stops at exit). Safe without wandb."""
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


# --------------------------------------------------------------------------- reading .wandb

def log_map_run(run_dir: Path, sweep: SweepRecord, files: Any) -> Path | None:
    """One W&B run per sweep (job type ``map``): the summary table, the map's images, and the
    verdict counts in its summary; one run per setting (:func:`log_setting_runs`); and the
    sweep's W&B workspace definition in ``RUN_DIR/wandb_workspace.json``
    (``wssweep.dashboard``). ``files`` is what ``wssweep.report.build_map`` returned.

    Returns the map run's directory (None when W&B is disabled, which writes nothing).
    """
    settings = sweep.wandb
    rows = files.rows
    columns = list(rows[0]) if rows else []
    test, correction = judged_by(sweep.seed_plan is not None, sweep.correction)
    run = start(
        Path(run_dir), project=settings.project, entity=settings.entity,
        group=sweep.name, name=f"{sweep.name}-map", run_id=f"map-{sweep.name}"[:64],
        config={"metric": sweep.metric, "objective": sweep.objective,
                "swept": list(sweep.swept), "seeds": list(sweep.seeds),
                "gap_tolerance": files.tolerance, "test": test, "correction": correction,
                "reference": files.reference.as_json() if files.reference else None},
        mode=settings.mode, tags=settings.tags, job_type="map")
    # W&B tables want one type per column: a missing value is None, W&B's own empty cell.
    table = [[None if missing(row.get(c)) else row.get(c) for c in columns] for row in rows]
    run.log_table(SUMMARY_TABLE, columns, table)
    run.log_images({path.stem: path for path in files.images})
    summary = {f"verdict/{name}": count for name, count in files.verdicts.items()}
    summary.update({f"trials/{name}": count for name, count in files.counts.as_dict().items()})
    run.finish(summary)
    if not run.enabled:
        return None
    log_setting_runs(Path(run_dir), sweep, rows)
    from wssweep import dashboard  # imports wandb-workspaces: only when W&B is on

    dashboard.write_workspace(Path(run_dir), dashboard.build_workspace(
        sweep, files.mapped, [path.stem for path in files.heatmaps]))
    return run.dir


def log_setting_runs(run_dir: Path, sweep: SweepRecord, rows: list[dict[str, Any]]) -> None:
    """One W&B run per setting (job type ``setting``, in the sweep's group): config its
    ``setting_key`` and swept values, as its trial runs have them; summary its row of
    ``summary.csv`` (the reference gap ``ref_gap_mean``, the verdict, the pooled means).

    A rebuilt map resumes the same runs (id ``setting-<key>-<sweep>``), updating them.
    """
    settings = sweep.wandb
    for row in rows:
        key = str(row["setting_key"])
        run = start(
            run_dir, project=settings.project, entity=settings.entity, group=sweep.name,
            name=f"{key}-setting", run_id=f"setting-{key}-{sweep.name}"[:64],
            config={"setting_key": key, **{k: row.get(k) for k in sweep.swept}},
            mode=settings.mode, tags=settings.tags, job_type=SETTING_JOB)
        run.finish({name: value for name, value in row.items()
                    if name not in sweep.swept and not missing(value)})
