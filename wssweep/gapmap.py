"""The gap map's statistics: one row per setting (the configuration minus the seed), with the
gap's confidence interval over seeds and a verdict (``wssweep.verdicts``, against the reference
cold start of ``wssweep.comparisons``). Pure NumPy/SciPy; reads only the run's ``results.csv``
and ``sweep.json``, so it works on a finished, half-finished or resumed run.

Which trials count (per setting):

- *valid* (a seed): status ``completed`` (or no status), not diverged, and a finite value of the
  mapped quantity (the gap, or the spec's metric when the run has no gap at all);
- *failed*: status ``error``, status ``diverged`` or ``diverged`` true, or a completed trial
  without a finite value (it did not train);
- neither: ``stopped`` (ended early by ASHA), ``running`` and ``pending`` trials. They are listed
  in ``n_trials`` and ``n_stopped`` but are neither seeds nor failures.

The gap is paired per seed (cold − warm on the same seed, in percentage points), so its interval
is the interval of the mean of the per-seed gaps: Student-t with n − 1 degrees of freedom
(``ci="t"``) or a percentile bootstrap (``ci="bootstrap"``).

Example:
    >>> mean, lo, hi = paired_ci([1.0, 2.0, 3.0])
    >>> round(mean, 3), round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    >>> rows = [{"lr": 0.1, "seed": s, "gap": g, "warm/test_acc": 80 - g, "cold/test_acc": 80}
    ...         for s, g in enumerate([0.1, -0.2, 0.0, 0.1])]
    >>> row = summarize(rows, ["lr"], tolerance=0.5)[0]
    >>> row["verdict"], row["n_seeds"], round(row["ref_gap_mean"], 3) + 0.0
    ('closed', 4, 0.0)
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from wssweep.cells import EMPTY, cell_text, finite, missing, to_float, truthy
from wssweep.comparisons import (
    UNFINISHED,
    Reference,
    against_reference,
    choose_reference,
    plain_partners,
    plain_warm_gain,
)
from wssweep.errors import InputError
from wssweep.files import atomic_write
from wssweep.metrics import METRIC, METRICS, Metric
from wssweep.record import DEFAULT_TOLERANCE, MAP_DIR, RESULTS_FILE, RunDir, SweepRecord
from wssweep.results import read_results
from wssweep.sequential import Plan, plan_round
from wssweep.verdicts import (
    DEFAULT_ALPHA,
    DEFAULT_CORRECTION,
    Correction,
    Evidence,
    judge,
)

SUMMARY_FILE = "summary.csv"
CI_METHODS = ("t", "bootstrap")
#: The verdict of a setting when the run maps a metric other than the gap (and it did not fail).
NOT_APPLICABLE = "n/a"

_NAN = float("nan")


# --------------------------------------------------------------------------------------------
# Intervals and the verdict


def _finite(values: Iterable[Any]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def _too_few(arr: np.ndarray) -> tuple[float, float, float]:
    """No interval from fewer than two values: (v, nan, nan) for one, all nan for none."""
    return (float(arr[0]) if arr.size else _NAN), _NAN, _NAN


def paired_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the Student-t interval of the mean of the per-seed paired values.

    ``t.ppf((1 + confidence) / 2, n - 1) * s / sqrt(n)`` either side of the mean, ``s`` the
    sample standard deviation (ddof 1); the same as ``scipy.stats.t.interval(confidence, n - 1,
    loc=mean, scale=sem)``. Non-finite values are dropped. n = 1 gives ``(v, nan, nan)``, n = 0
    ``(nan, nan, nan)``; identical values give a zero-width interval.
    """
    arr = _finite(values)
    if arr.size < 2:
        return _too_few(arr)
    n, mean = arr.size, float(arr.mean())
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * arr.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: a percentile bootstrap interval of the mean, deterministic for a seed.

    ``n_resamples`` resamples of the n values with replacement (NumPy ``default_rng(seed)``);
    ``lo``/``hi`` are the ``(1 ∓ confidence) / 2`` quantiles of their means. Non-finite values
    are dropped; n = 1 gives ``(v, nan, nan)`` and n = 0 ``(nan, nan, nan)``, as ``paired_ci``.
    """
    arr = _finite(values)
    if arr.size < 2:
        return _too_few(arr)
    n, mean = arr.size, float(arr.mean())
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(lo), float(hi)


def interval(values: Sequence[float], ci: str = "t",
             confidence: float = 0.95) -> tuple[float, float, float]:
    """``paired_ci`` (``ci="t"``) or ``bootstrap_ci`` (``ci="bootstrap"``)."""
    if ci == "t":
        return paired_ci(values, confidence)
    if ci == "bootstrap":
        return bootstrap_ci(values, confidence)
    raise ValueError(f"ci must be one of {CI_METHODS}, not {ci!r}")


# --------------------------------------------------------------------------------------------
# Cells and trials


def parse_value(cell: Any) -> Any:
    """A swept parameter's cell as a value: int, float, or the text itself (``None`` if empty)."""
    if cell is None:
        return None
    if not isinstance(cell, str):
        return cell
    text = cell.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def trial_outcome(row: dict[str, Any], quantity: str = "gap") -> str:
    """One trial's outcome for the map: ``succeeded``, ``diverged``, ``failed`` (an error, or a
    completed trial without a finite ``quantity``), ``stopped`` (ASHA) or ``unfinished``
    (running or pending).

    A quantity of one arm (``cold/test_acc``) is judged by that arm alone: a trial whose warm arm
    diverged still has a cold arm (``warm/diverged``, ``cold/diverged``; a run written before
    those columns existed has only ``diverged``, for either arm).
    """
    status = str(row.get("status") or "").strip()
    if status in ("running", "pending"):
        return "unfinished"
    if status == "stopped":
        return "stopped"
    if status == "error":
        return "failed"
    arm = METRIC[quantity].arm if quantity in METRIC else "both"
    flags = [row.get(f"{a}/diverged") for a in ARMS_OF.get(arm or "both", ())]
    if any(cell_text(f) for f in flags):
        diverged = any(truthy(f) for f in flags)
    else:
        diverged = status == "diverged" or truthy(row.get("diverged"))
    if diverged:
        return "diverged"
    return "succeeded" if math.isfinite(to_float(row.get(quantity))) else "failed"


#: The arms a metric of each ``Metric.arm`` uses.
ARMS_OF = {"warm": ("warm",), "cold": ("cold",), "cold_chosen": ("warm", "cold_chosen"),
           "both": ("warm", "cold")}


def mapped_quantity(rows: Sequence[dict[str, Any]], metric: str = "gap") -> str:
    """What the verdict and the heatmaps judge: the gap when ``metric`` is the gap or any trial
    carries a gap; otherwise the metric itself (e.g. ``nqm/final_loss``)."""
    if metric == "gap" or any(math.isfinite(to_float(r.get("gap"))) for r in rows):
        return "gap"
    return metric


#: The gap's axis label, wherever the map plots it.
GAP_LABEL = "gap = reference cold − warm test acc (points)"


def signed(value: float) -> str:
    """``+1.23`` / ``−0.45`` with a real minus sign, never ``-0.00``."""
    text = f"{value:+.2f}"
    return ("+0.00" if text == "-0.00" else text).replace("-", "−")


@dataclass(frozen=True)
class Mapped:
    """What a map maps: the warm-start gap (judged by a verdict) or another metric (ranked).

    Every place that shows the mapped quantity asks this object for its columns, labels and
    number format, instead of testing which quantity it is.

    Example:
        >>> gap, loss = Mapped("gap", True), Mapped("nqm/final_loss", True)
        >>> gap.mean_col, loss.mean_col, gap.fmt(-0.5), loss.fmt(0.123456)
        ('ref_gap_mean', 'metric_mean', '−0.50', '0.123')
    """

    name: str
    lower_is_better: bool

    @property
    def is_gap(self) -> bool:
        return self.name == "gap"

    @property
    def mean_col(self) -> str:
        return self._columns[0]

    @property
    def ci_cols(self) -> tuple[str, str]:
        return self._columns[1], self._columns[2]

    @property
    def _columns(self) -> list[str]:
        # summary.csv names the run's own metric "metric", whatever it is; the gap shown is the
        # one the verdict judges, against the reference cold start (wssweep.comparisons).
        return ci_columns("ref_gap" if self.is_gap else "metric")

    @property
    def axis_label(self) -> str:
        return GAP_LABEL if self.is_gap else self.name

    @property
    def label(self) -> str:
        """The colour bar's label: what a cell's colour is."""
        return GAP_LABEL if self.is_gap else f"{self.name} (mean over seeds)"

    @property
    def title(self) -> str:
        return "Warm-start gap" if self.is_gap else self.name

    @property
    def described(self) -> str:
        """The quantity in a sentence, e.g. a figure caption."""
        return ("the gap (reference cold − warm test accuracy, points)" if self.is_gap
                else self.name)

    def fmt(self, value: float) -> str:
        """One value as a cell shows it: the gap signed to 0.01 points, others to 3 digits."""
        return signed(value) if self.is_gap else f"{value:.3g}"

    def fmt_ci(self, lo: float, hi: float) -> str:
        return f"[{signed(lo)}, {signed(hi)}]" if self.is_gap else f"[{lo:.3g}, {hi:.3g}]"


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of the finite, positive values; NaN when there are none."""
    arr = _finite(values)
    arr = arr[arr > 0]
    return float(np.exp(np.log(arr).mean())) if arr.size else _NAN


def mean_of(values: Iterable[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    arr = _finite(values)
    return float(arr.mean()) if arr.size else _NAN


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (2, "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


#: The declared metrics the map pools over a setting's seeds, in their declared order.
POOLED: tuple[Metric, ...] = tuple(m for m in METRICS if m.pooled)
#: How the map pools a metric that is not pooled by an interval (``Metric.pooled``).
POOLS: dict[str, Callable[[Iterable[float]], float]] = {"mean": mean_of, "geomean": geomean}
#: The columns that count a setting's trials.
COUNT_COLUMNS = ("n_seeds", "n_trials", "n_failed", "n_diverged", "n_stopped", "diverged_share")
#: What each verdict rests on: its paired seeds, the unconverged ones among them, the corrected
#: p-values of its tests (``wssweep.verdicts``) and the verdict the same rule gives on the
#: validation split (what the recommendation selects on).
JUDGED_COLUMNS = ("n_paired", "n_unconverged", "p_closed", "p_better", "p_open", "val_verdict")


def ci_columns(name: str) -> list[str]:
    """The three columns of ``name``'s interval over seeds: ``name_mean``, ``name_lo``,
    ``name_hi`` (``name`` is a metric pooled by ``ci``, or ``metric``: the run's own metric)."""
    return [f"{name}_{part}" for part in ("mean", "lo", "hi")]


def pooled_columns(metric: Metric) -> list[str]:
    """A pooled metric's columns in summary.csv: its interval's three, or one of its own name."""
    return ci_columns(metric.name) if metric.pooled == "ci" else [metric.name]


def summary_columns(swept: Sequence[str], metric: str = "gap") -> list[str]:
    """The columns of ``summary.csv``, in order."""
    def pooled(how: str) -> list[str]:
        return [c for m in POOLED if m.pooled == how and m.name != "gap" for c in pooled_columns(m)]

    # The answer first (verdict, the gap, the run's metric, the other intervals and means), the
    # bookkeeping after, the geometric means (the chosen rate) last: a reader of a wide table sees
    # what matters without scrolling.
    return ["setting_key", *swept, "verdict", *ci_columns("ref_gap"), *ci_columns("gap"),
            *([] if metric == "gap" else ci_columns("metric")), *ci_columns("gain_vs_warm"),
            *pooled("ci"), *pooled("mean"), *COUNT_COLUMNS, *JUDGED_COLUMNS, *pooled("geomean")]


def _pool(metric: Metric, valid: Sequence[dict[str, Any]], ci: str,
          confidence: float) -> dict[str, float]:
    """``metric`` pooled over the valid seeds, by its declared rule, as its summary columns."""
    values = [to_float(r.get(metric.name)) for r in valid]
    if metric.pooled == "ci":
        return dict(zip(ci_columns(metric.name), interval(values, ci, confidence), strict=True))
    return {metric.name: POOLS[metric.pooled](values)}


def summarize(rows: Sequence[dict[str, Any]], swept: Sequence[str], metric: str = "gap",
              tolerance: float = DEFAULT_TOLERANCE, ci: str = "t", confidence: float = 0.95, *,
              reference: Reference | None = None, correction: Correction = DEFAULT_CORRECTION,
              alpha: float = DEFAULT_ALPHA, experiment: dict[str, Any] | None = None,
              ) -> list[dict[str, Any]]:
    """One row per setting (trials grouped by their swept values; the seed is not swept).

    Columns (``summary_columns``): ``setting_key``, each swept parameter's value, ``verdict``;
    ``ref_gap_mean/lo/hi`` (reference cold − warm test accuracy, paired per seed: what the
    verdict judges, ``wssweep.comparisons``); ``gap_mean/lo/hi`` (the same-recipe gap: each
    setting's own cold arm); ``metric_mean/lo/hi`` when ``metric`` is not the gap;
    ``gain_vs_warm_mean/lo/hi`` (warm − plain warm of the same recipe, where the sweep holds
    one); the declared pooled metrics; ``n_seeds`` (valid seeds), ``n_trials``, ``n_failed``,
    ``n_diverged``, ``n_stopped`` (stopped, running or pending: not counted),
    ``diverged_share``; and ``JUDGED_COLUMNS``.

    ``reference`` defaults to ``choose_reference(rows, swept)``; ``experiment`` is the run's
    base experiment, which tells which setting is the plain warm start. The verdicts are
    ``wssweep.verdicts.judge`` over every setting of the sweep, corrected by ``correction`` at
    ``alpha``; a run without any gap (``metric`` e.g. ``nqm/final_loss``) gets ``failed`` by
    the same failure rule, or ``"n/a"``. Missing numbers are NaN. Settings are sorted by their
    swept values.
    """
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, not {ci!r}")
    quantity = mapped_quantity(rows, metric)
    if reference is None:
        reference = choose_reference(rows, swept)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(cell_text(row.get(k)) for k in swept), []).append(row)
    idents = sorted(groups, key=lambda ident: tuple(_sort_key(parse_value(v)) for v in ident))
    settings = [dict(zip(swept, ident, strict=True)) for ident in idents]
    out, evidence, val_evidence = [], [], []
    for ident in idents:
        trials = groups[ident]
        outcomes = [trial_outcome(r, quantity) for r in trials]
        valid = [r for r, o in zip(trials, outcomes, strict=True) if o == "succeeded"]
        n_valid = len(valid)
        n_diverged = outcomes.count("diverged")
        n_failed = n_diverged + outcomes.count("failed")
        finished = n_valid + n_failed
        pooled = {k: v for m in POOLED for k, v in _pool(m, valid, ci, confidence).items()}
        gap = tuple(pooled.pop(c) for c in ci_columns("gap"))
        paired = against_reference(trials, reference, "test")
        evidence.append(Evidence(paired.diffs, paired.n_failed, paired.n_unconverged))
        on_val = against_reference(trials, reference, "val")
        val_evidence.append(Evidence(on_val.diffs, on_val.n_failed, on_val.n_unconverged))
        summary: dict[str, Any] = {
            "setting_key": next((str(r["setting_key"]) for r in trials
                                 if cell_text(r.get("setting_key"))), ""),
            **{k: parse_value(v) for k, v in zip(swept, ident, strict=True)},
            "n_seeds": n_valid, "n_trials": len(trials), "n_failed": n_failed,
            "n_diverged": n_diverged, "n_stopped": len(trials) - finished,
            "diverged_share": n_diverged / finished if finished else _NAN,
            **dict(zip(ci_columns("ref_gap"), interval(paired.diffs, ci, confidence),
                       strict=True)),
            **dict(zip(ci_columns("gap"), gap, strict=True)),
            "n_paired": len(paired.diffs), "n_unconverged": paired.n_unconverged,
        }
        if metric != "gap":
            # the metric's own valid seeds: a map of one arm loses none to the other arm
            values = [to_float(r.get(metric)) for r in trials
                      if trial_outcome(r, metric) == "succeeded"]
            summary.update(zip(ci_columns("metric"), interval(values, ci, confidence), strict=True))
        if quantity != "gap":
            failed = n_failed > n_valid or (n_valid == 0 and n_failed > 0)
            summary["verdict"] = "failed" if failed else NOT_APPLICABLE
        summary.update(pooled)  # the other pooled metrics, in their declared order
        out.append(summary)
    partners = plain_partners(settings, experiment or {})
    for index, (summary, partner) in enumerate(zip(out, partners, strict=True)):
        gain = ((_NAN,) * 3 if partner is None else
                interval(plain_warm_gain(groups[idents[index]], groups[idents[partner]]).diffs,
                         ci, confidence))
        summary.update(zip(ci_columns("gain_vs_warm"), gain, strict=True))
    if quantity == "gap":
        on_test = judge(evidence, tolerance, alpha, correction)
        on_val = judge(val_evidence, tolerance, alpha, correction)
        for summary, judged, val_judged in zip(out, on_test, on_val, strict=True):
            summary.update(verdict=judged.verdict, p_closed=judged.p_closed,
                           p_better=judged.p_better, p_open=judged.p_open,
                           val_verdict=val_judged.verdict)
    return out


# --------------------------------------------------------------------------------------------
# A run directory


@dataclass
class TrialCounts:
    """How the run's trials ended. ``failed`` is errors and trials without a result; diverged
    trials are counted apart (in ``summary.csv`` ``n_failed`` includes them). ``present`` rows of
    results.csv = succeeded + failed + diverged + stopped + unfinished; ``missing`` = expected −
    present (``None`` when the expected count is unknown)."""

    expected: int | None
    present: int
    succeeded: int
    failed: int
    diverged: int
    stopped: int
    unfinished: int
    missing: int | None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


@dataclass
class RunData:
    """What the map reads from a run directory."""

    run_dir: Path
    rows: list[dict[str, str]]
    sweep: SweepRecord

    @property
    def swept(self) -> list[str]:
        return list(self.sweep.swept)

    @property
    def metric(self) -> str:
        return self.sweep.metric

    @property
    def mode(self) -> str:
        return self.sweep.mode

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.sweep.spec)

    @property
    def tolerance(self) -> float:
        return self.sweep.gap_tolerance

    @property
    def quantity(self) -> str:
        return mapped_quantity(self.rows, self.metric)

    @property
    def reference(self) -> Reference:
        """The cold start every warm start of this run is judged against."""
        return choose_reference(self.rows, self.swept, self.sweep.reference)

    @property
    def mapped(self) -> Mapped:
        """What this run's map maps; lower is better for the gap and for a minimized metric."""
        quantity = self.quantity
        return Mapped(quantity, quantity == "gap" or self.mode == "min")


def read_run(run_dir: Path) -> RunData:
    """``results.csv`` (no rows when it does not exist yet) and the run record of a run.

    Raises ``InputError`` (``RUN_DIR``) when the directory has no readable sweep.json or an
    unreadable results.csv, so the CLI reports it as bad input.
    """
    run = RunDir(run_dir)
    sweep = run.record()
    try:
        rows = read_results(run.results_csv) if run.results_csv.is_file() else []
    except (OSError, ValueError, csv.Error) as exc:
        raise InputError("RUN_DIR", f"a readable {RESULTS_FILE} ({exc})", str(run_dir)) from exc
    return RunData(Path(run_dir), one_row_per_trial(rows, sweep.swept), sweep)


def one_row_per_trial(rows: list[dict[str, str]], swept: Sequence[str]) -> list[dict[str, str]]:
    """``rows`` with one row per (setting, seed): a random search may draw a setting twice, and
    the two runs of it on a seed are one measurement, which counted twice would narrow its CI.
    The first finished row (completed, diverged or error) is kept, in the file's order. A seed
    that is not an integer is bad input naming the line (results.csv was edited by hand).

    Example:
        >>> rows = [{"setting_key": "a", "seed": "0", "status": "stopped"},
        ...         {"setting_key": "a", "seed": "0", "status": "completed"},
        ...         {"setting_key": "a", "seed": "1", "status": "completed"}]
        >>> [(r["seed"], r["status"]) for r in one_row_per_trial(rows, [])]
        [('0', 'completed'), ('1', 'completed')]
    """
    kept: dict[tuple, dict[str, str]] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        seed = cell_text(row.get("seed"))
        if not seed.lstrip("-").isdigit():
            raise InputError(f"{RESULTS_FILE} line {number}", "an integer seed (one row per "
                             "setting and seed, as wssweep writes it)", seed or None)
        key = (cell_text(row.get("setting_key")), *(cell_text(row.get(k)) for k in swept),
               int(seed))
        first = kept.get(key)
        if first is None or (first.get("status") in UNFINISHED
                             and row.get("status") not in UNFINISHED):
            kept[key] = row
    return list(kept.values())


def _norm(value: Any) -> Any:
    number = to_float(value)
    if math.isfinite(number):
        return number
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value if value is not None else "").strip()


def missing_trials(data: RunData) -> list[tuple[dict[str, Any], int]] | None:
    """For a grid sweep, the ``(setting, seed)`` pairs with no row in results.csv; ``None`` for
    random and bayes sweeps (their settings are drawn) or a record without its grid."""
    if data.sweep.grid is None:
        return None
    swept = data.swept
    present = {(tuple(_norm(r.get(k)) for k in swept), _norm(r.get("seed"))) for r in data.rows}
    return [(t.setting, t.seed) for t in data.sweep.grid
            if (tuple(_norm(t.setting.get(k)) for k in swept), _norm(t.seed)) not in present]


def count_trials(data: RunData) -> TrialCounts:
    """The run's trials by outcome, and how many of the expected ones are missing."""
    outcomes = [trial_outcome(r, data.quantity) for r in data.rows]
    expected = data.sweep.expected_trials
    present = len(data.rows)
    return TrialCounts(
        expected=expected, present=present, succeeded=outcomes.count("succeeded"),
        failed=outcomes.count("failed"), diverged=outcomes.count("diverged"),
        stopped=outcomes.count("stopped"), unfinished=outcomes.count("unfinished"),
        missing=None if expected is None else max(expected - present, 0))


def summarize_run(data: RunData, ci: str = "t") -> list[dict[str, Any]]:
    """``summarize`` with the run's swept keys, metric, ``gap_tolerance``, reference cold start
    and correction."""
    rows = summarize(data.rows, data.swept, metric=data.metric, tolerance=data.tolerance, ci=ci,
                     reference=data.reference, correction=data.sweep.correction,
                     experiment=data.sweep.experiment)
    plan = data.sweep.seed_plan
    if plan is not None and data.quantity == "gap":
        # Seeds until decided: the verdict is the group-sequential test's, at the look that
        # decided the setting (a fixed-N test on its seeds would ignore how they were added).
        # A grid's settings, or those a search drew (each has rows).
        settings = ([t.setting for t in data.sweep.grid] if data.sweep.grid is not None else
                    [{k: r.get(k) for k in data.swept} for r in data.rows])
        settings = list({json.dumps(s, sort_keys=True, default=str): s
                         for s in settings}.values())
        step = plan_round(data.rows, settings, data.swept, Plan(plan.min_seeds, plan.max_seeds),
                          data.tolerance, DEFAULT_ALPHA, data.sweep.reference)
        for row in rows:
            if row["verdict"] in ("failed", "unconverged"):
                continue
            ident = tuple(cell_text(row[k]) for k in data.swept)
            row["verdict"] = step.verdicts.get(ident, "inconclusive")
    return rows


def write_summary(run_dir: Path, rows: list[dict[str, Any]] | None = None, *,
                  ci: str = "t") -> Path:
    """Write ``RUN_DIR/map/summary.csv`` atomically (temp file, then rename).

    ``rows`` are ``summarize`` rows; without them the run's own files are summarised. NaN is an
    empty cell.
    """
    run_dir = Path(run_dir)
    data = read_run(run_dir)
    if rows is None:
        rows = summarize_run(data, ci)
    columns = summary_columns(data.swept, data.metric)
    columns += [k for row in rows for k in row if k not in columns]
    out_dir = run_dir / MAP_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY_FILE
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: EMPTY if missing(v, infinite=True) else v for k, v in row.items()})
    return path


def recommend(rows: Sequence[dict[str, Any]], mapped: Mapped,
              on_validation: bool = True) -> dict[str, Any] | None:
    """The decision rule: the cheapest setting whose warm start is closed or better on the
    validation split (``val_verdict``; max ``saving_mean``, ties to ``better``), so the test
    verdict reported for it was not used to pick it. A run without a validation split
    (``on_validation`` false) picks on the test verdict. For another metric: the best
    ``metric_mean``. ``None`` when none qualifies."""
    if mapped.is_gap:
        column = "val_verdict" if on_validation else "verdict"
        closed = [r for r in rows if r.get(column) in ("closed", "better")]
        if not closed:
            return None
        return max(closed, key=lambda r: (r["saving_mean"] if finite(r["saving_mean"])
                                          else -math.inf, r[column] == "better"))
    scored = [r for r in rows if r["verdict"] != "failed" and finite(r["metric_mean"])]
    if not scored:
        return None
    sign = 1 if mapped.lower_is_better else -1
    return min(scored, key=lambda r: sign * r["metric_mean"])

