"""The run record: every path of a run directory (``RunDir``) and its ``sweep.json``
(``SweepRecord``), written once by the driver and read by the trials, the map, the report, the
studies page and tracking.

``sweep.json`` is the sweep as resolved when it started: the spec as given, the experiment after
``--set`` and ``--smoke``, and what the driver derived from them once (the swept keys, the trials it
expects, each trial's threads), so a reader never re-plans the search to learn them.

Example:
    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp())
    >>> record = SweepRecord(name="demo", run_dir=str(run.path), spec_path="demo.yaml",
    ...     spec={"method": "grid"}, experiment={"lr": 0.1}, seeds=[0, 1], swept=["lr"],
    ...     metric="gap", mode="min", wandb=WandbRecord(mode="disabled"), expected_trials=4)
    >>> run.write_record(record)
    >>> run.record().expected_trials, run.results_csv.name
    (4, 'results.csv')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wssweep.errors import InputError
from wssweep.files import atomic_write, path_kind
from wssweep.metrics import METRIC

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.csv"
WALL_FILE = "wall.json"  # the wall time of each run / resume session, start to map
TUNE_DIR = "tune"
ROUNDS_DIR = "rounds"  # seeds until decided: one Tune experiment per round of added seeds
MAP_DIR = "map"
TRIALS_DIR = "trials"
BASELINES_DIR = ".baselines"  # beside the runs, in --storage: the baseline store they share
WANDB_DIR = "wandb"
STARTS_FILE = "trial_starts.jsonl"
SPEC_COPY = "spec.yaml"
OPTUNA_DB = "optuna.db"  # bayes: Optuna's study, under the spec's name
STOP_FILE = "stop"  # `wssweep stop RUN_DIR` writes it; the driver stops cleanly when it appears
WORKSPACE_FILE = "wandb_workspace.json"  # the sweep's W&B workspace, as `wssweep sync` saves it
DRAWN_FILE = "settings.json"  # bayes with seeds until decided: the settings drawn, in rounds/
DEFAULT_TOLERANCE = 0.5  # points of test accuracy that count as closed (the spec's default)


class _Record(BaseModel):
    # Records written by earlier versions may carry keys this one no longer has.
    model_config = ConfigDict(extra="ignore", frozen=True)


class WandbRecord(_Record):
    project: str = "wssweep"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] = "offline"  # resolved: never "auto" here
    tags: list[str] = Field(default_factory=list)


class GridTrial(_Record):
    """One (setting, seed) a grid sweep runs."""

    setting: dict[str, Any]
    seed: int


class SeedPlanRecord(_Record):
    """Seeds until decided: every setting runs ``min_seeds``, then more where undecided."""

    min_seeds: int
    max_seeds: int


class SweepRecord(_Record):
    """``sweep.json``: what a run is, as the driver resolved it."""

    name: str
    run_dir: str
    spec_path: str  # the spec file as given to ``wssweep run``
    overrides: list[str] = Field(default_factory=list)  # --set key=value, in order
    smoke: bool = False
    spec: dict[str, Any]  # the spec as written (keys given), for people and pages
    experiment: dict[str, Any]  # after --smoke and --set: what every trial starts from
    seeds: list[int]
    swept: list[str]  # dotted experiment keys the search sets
    metric: str
    mode: Literal["min", "max"]
    target: float | None = None  # metric.target: the sweep ends once a finished trial reaches it
    method: Literal["grid", "random", "bayes"] = "grid"
    gap_tolerance: float = DEFAULT_TOLERANCE
    reference: dict[str, Any] | None = None  # the spec's named reference cold start, if any
    correction: Literal["holm", "bh", "none"] = "holm"  # of the verdicts, across settings
    cpus_per_trial: float = 1.0
    threads: int = 1  # torch CPU threads per trial
    trials_per_gpu: int | None = None
    max_failures: int = 0
    # early_terminate is set: hyperband compares stage reports, so a trial waits for a cold arm
    # another trains before reporting a stage (a record from before it was kept: it did not)
    early_terminate: bool = False
    # How Tune trials group their members (resources.fuse, as it applies to this sweep: false
    # for an experiment without networks; seeds for a search, whose settings come one by one).
    # A record from before groups existed ran one member per trial.
    fuse: Literal["seeds", "settings", False] = False
    wandb: WandbRecord = Field(default_factory=WandbRecord)
    expected_trials: int | None = None  # None: unknown (a record from before it was kept)
    grid: list[GridTrial] | None = None  # a grid sweep's trials, in order; None otherwise
    # Seeds until decided: ``seeds`` and ``grid`` are then its first round.
    seed_plan: SeedPlanRecord | None = None

    @property
    def objective(self) -> str:
        """What Tune's search and scheduler compare (``gap`` is selected on ``val_gap``)."""
        return METRIC[self.metric].objective if self.metric in METRIC else self.metric


@dataclass(frozen=True)
class RunDir:
    """A run directory and every path in it (layout: docs/architecture.md)."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    sweep_json = property(lambda self: self.path / SWEEP_FILE)
    results_csv = property(lambda self: self.path / RESULTS_FILE)
    wall_json = property(lambda self: self.path / WALL_FILE)
    stop = property(lambda self: self.path / STOP_FILE)
    tune = property(lambda self: self.path / TUNE_DIR)
    rounds = property(lambda self: self.path / ROUNDS_DIR)
    map = property(lambda self: self.path / MAP_DIR)
    trials = property(lambda self: self.path / TRIALS_DIR)
    # Shared by every run under the same --storage (a run name cannot start with a dot).
    baselines = property(lambda self: self.path.parent / BASELINES_DIR)
    wandb = property(lambda self: self.path / WANDB_DIR)
    starts = property(lambda self: self.path / STARTS_FILE)
    spec_copy = property(lambda self: self.path / SPEC_COPY)
    optuna_db = property(lambda self: self.path / OPTUNA_DB)
    drawn = property(lambda self: self.path / ROUNDS_DIR / DRAWN_FILE)
    workspace = property(lambda self: self.path / WORKSPACE_FILE)

    def write_record(self, record: SweepRecord) -> None:
        """Write ``sweep.json`` (atomically)."""
        with atomic_write(self.sweep_json) as handle:
            handle.write(record.model_dump_json(indent=1))

    def record(self) -> SweepRecord:
        """The run's ``sweep.json``; anything else there is an ``InputError`` on ``RUN_DIR``."""
        if path_kind(self.sweep_json, "RUN_DIR") != "file":
            raise InputError("RUN_DIR", f"a wssweep run directory (with {SWEEP_FILE})",
                             str(self.path))
        try:
            record = SweepRecord.model_validate(json.loads(self.sweep_json.read_text()))
        except (OSError, ValueError, ValidationError):  # ValueError: bad JSON or UTF-8
            raise InputError("RUN_DIR", f"a wssweep run directory (its {SWEEP_FILE} is not one "
                             "wssweep wrote)", str(self.path)) from None
        if Path(record.run_dir) != self.path.absolute():
            # Moved or copied since it ran (another disk, storage mounted elsewhere): its files
            # are here now, and so is everything a resume or a rebuilt map writes.
            record = record.model_copy(update={"run_dir": str(self.path.absolute())})
        return record
