"""The results table: one row per trial, written atomically to ``<run>/results.csv``.

Columns (docs/architecture.md): trial id, status, seed, setting key, one column per swept
parameter, then the metrics. Lists (per-stage values) are JSON in their cell. The map reads only
this file and the run record, so it can be rebuilt from a finished, half-finished or resumed run.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_results(d, [{"trial_id": "a", "status": "completed", "gap": 1.5}], ["lr"])
    >>> read_results(path)[0]["gap"]
    '1.5'
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wssweep.cells import EMPTY, missing
from wssweep.files import atomic_write
from wssweep.metrics import METRICS
from wssweep.record import RESULTS_FILE

if TYPE_CHECKING:
    from wssweep.config import ExperimentConfig

ID_COLUMNS = ["trial_id", "status", "seed", "setting_key"]
# Scalar metrics, in their declared order (wssweep.metrics).
METRIC_COLUMNS = [m.name for m in METRICS]
# restarts: how many times the trial was started again (a lost node, a resumed sweep);
# resumed_stage: the last stage it had finished when it last resumed (0 = from the start).
TAIL_COLUMNS = ["restarts", "resumed_stage", "error", "started_at", "finished_at"]
STATUSES = ("completed", "diverged", "error", "stopped", "running", "pending")


#: Experiment keys that say where a trial runs, not what it is: not part of its setting.
PLACEMENT_KEYS = frozenset({"device", "threads"})


def setting_key(config: ExperimentConfig) -> str:
    """A short stable hash naming a setting: the experiment as the user specified it, minus the
    seed and minus where it runs (``PLACEMENT_KEYS``), so seeds of one setting share it on every
    node, CPU or GPU.

    Example:
        >>> from wssweep.config import ExperimentConfig
        >>> a = ExperimentConfig.model_validate({"lr": 0.1, "seed": 1, "device": "cuda"})
        >>> b = ExperimentConfig.model_validate({"lr": 0.1, "seed": 2, "threads": 4})
        >>> setting_key(a) == setting_key(b), setting_key(a) == setting_key(
        ...     a.model_copy(update={"lr": 0.2}))
        (True, False)
    """
    dumped = config.model_dump(mode="json", exclude={"seed", *PLACEMENT_KEYS})
    text = json.dumps(dumped, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def error_line(text: str) -> str:
    r"""A trial's error as the ``error`` column keeps it: the last non-empty line of its message or
    traceback (where the exception is named), at most 500 characters.

    Example:
        >>> error_line("Traceback (most recent call last):\n  ...\nValueError: bad lr\n\n")
        'ValueError: bad lr'
    """
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _cell(value: Any) -> Any:
    # An infinite value stays: results.csv keeps what the trial reported.
    if missing(value):
        return EMPTY
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def columns_for(rows: list[dict[str, Any]], swept: list[str]) -> list[str]:
    """Identity and swept columns first, then metrics, per-stage lists, where and when it ran.

    A metric or bookkeeping column that no row fills (an NQM metric in a network sweep, ``error``
    when nothing failed) is left out.
    """
    filled = {k for row in rows for k, v in row.items() if _cell(v) != EMPTY}
    fixed = ID_COLUMNS + swept
    extra = sorted(filled - set(fixed) - set(METRIC_COLUMNS) - set(TAIL_COLUMNS))
    rest = [c for c in METRIC_COLUMNS + extra + TAIL_COLUMNS if c in filled]
    return fixed + rest


def write_results(run_dir: Path, rows: list[dict[str, Any]], swept: list[str]) -> Path:
    """Write ``rows`` to ``run_dir/results.csv`` atomically (temp file, then rename)."""
    path = Path(run_dir) / RESULTS_FILE
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns_for(rows, swept), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return path


def read_results(path: Path) -> list[dict[str, str]]:
    """The rows of a results.csv, as strings (empty string = missing)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
