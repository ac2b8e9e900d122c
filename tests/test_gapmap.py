"""The gap map's statistics against scipy.stats on hand-made results: intervals, verdicts and
their boundaries, what counts as a seed, and a non-gap metric."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from tests.records import write_grid_record
from wssweep.gapmap import (
    bootstrap_ci,
    paired_ci,
    summarize,
    trial_outcome,
    write_summary,
)
from wssweep.results import read_results, write_results

GAPS = [0.8, -0.3, 1.9, 0.4, 1.1]


def trial(setting: dict, seed: int, status: str = "completed", **metrics) -> dict:
    """A results.csv row; a ``gap`` given alone becomes its arms' accuracies (cold 90 %)."""
    if "gap" in metrics and "warm/test_acc" not in metrics:
        metrics = {"warm/test_acc": 90.0 - metrics["gap"], "cold/test_acc": 90.0, **metrics}
    return {"trial_id": f"{setting}-{seed}", "status": status, "seed": seed,
            "setting_key": str(sorted(setting.items())), **setting, **metrics}


def as_csv_rows(tmp_path, rows: list[dict], swept: list[str]) -> list[dict[str, str]]:
    """The rows as the map sees them: written to results.csv and read back as strings."""
    return read_results(write_results(tmp_path, rows, swept))


def test_t_interval_equals_scipy():
    mean, lo, hi = paired_ci(GAPS)
    expected = stats.t.interval(0.95, len(GAPS) - 1, loc=np.mean(GAPS), scale=stats.sem(GAPS))
    # The mean is the plain mean of the paired per-seed gaps.
    assert mean == pytest.approx(np.mean(GAPS))
    # The interval is scipy's Student-t interval with n − 1 degrees of freedom.
    assert (lo, hi) == pytest.approx(expected, rel=1e-12)
    lo90, hi90 = paired_ci(GAPS, confidence=0.9)[1:]
    # Another confidence level follows scipy too (and is narrower).
    assert (lo90, hi90) == pytest.approx(stats.t.interval(0.9, 4, loc=np.mean(GAPS),
                                                          scale=stats.sem(GAPS)))
    assert lo < lo90 < hi90 < hi


def test_interval_edge_cases():
    # One seed: the value, no interval.
    assert paired_ci([1.5])[0] == 1.5 and all(math.isnan(x) for x in paired_ci([1.5])[1:])
    # No seed: all NaN; non-finite values are dropped before counting.
    assert all(math.isnan(x) for x in paired_ci([]))
    assert paired_ci([1.0, float("nan"), 3.0])[0] == 2.0
    # Identical gaps: a zero-width interval at the value.
    assert paired_ci([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))
    # The bootstrap agrees on the edge cases.
    assert math.isnan(bootstrap_ci([2.0])[1]) and bootstrap_ci([2.0])[0] == 2.0


def test_bootstrap_is_deterministic_and_agrees_with_scipy():
    first = bootstrap_ci(GAPS)
    # The same seed gives exactly the same interval.
    assert bootstrap_ci(GAPS) == first
    # Another seed moves it only a little.
    assert bootstrap_ci(GAPS, seed=1)[1:] == pytest.approx(first[1:], abs=0.05)
    reference = stats.bootstrap((np.array(GAPS),), np.mean, confidence_level=0.95,
                                method="percentile", n_resamples=10_000,
                                random_state=np.random.default_rng(0)).confidence_interval
    # It matches scipy's percentile bootstrap up to resampling noise.
    assert first[1:] == pytest.approx((reference.low, reference.high), abs=0.05)
    t_lo, t_hi = paired_ci(GAPS)[1:]
    # It is narrower than the t interval on 5 seeds (the percentile bootstrap under-covers).
    assert t_lo < first[1] < first[2] < t_hi


def test_summarize_settings_from_results_csv(tmp_path):
    swept = ["lr", "warmup_steps"]
    rows = []
    closed_gaps = [0.1, -0.2, 0.05]
    for seed, gap in enumerate(closed_gaps):  # closed, with saving and lr_chosen
        rows.append(trial({"lr": 0.01, "warmup_steps": 100}, seed, gap=gap,
                          saving=2.0 + seed, lr_chosen=[0.01, 0.04, 0.16][seed],
                          **{"warm/test_acc": 90 - gap, "cold/test_acc": 90.0},
                          diverged=False))
    rows.append(trial({"lr": 0.01, "warmup_steps": 100}, 3, status="stopped", gap=9.0))
    rows.append(trial({"lr": 0.01, "warmup_steps": 100}, 4, status="running"))
    for seed in range(3):  # every seed diverged
        rows.append(trial({"lr": 1.0, "warmup_steps": 0}, seed, status="diverged",
                          diverged=True))
    rows.append(trial({"lr": 0.1, "warmup_steps": 0}, 0, gap=0.0))  # one seed
    rows.append(trial({"lr": 0.1, "warmup_steps": 0}, 1, status="error", error="boom"))
    for seed, gap in enumerate([3.0, 3.2]):  # one valid, two failed: more than half
        rows.append(trial({"lr": 0.3, "warmup_steps": 0}, seed, gap=gap))
    rows[-1]["diverged"] = True
    rows.append(trial({"lr": 0.3, "warmup_steps": 0}, 2))  # completed without a gap
    summary = {(r["lr"], r["warmup_steps"]): r for r in
               summarize(as_csv_rows(tmp_path, rows, swept), swept, tolerance=0.5)}

    ok = summary[(0.01, 100)]
    # Stopped and running trials are not seeds, nor failures.
    assert (ok["n_seeds"], ok["n_trials"], ok["n_failed"], ok["n_stopped"]) == (3, 5, 0, 2)
    # The gap interval is the t interval of the three completed seeds; it is closed.
    assert (ok["gap_mean"], ok["gap_lo"], ok["gap_hi"]) == pytest.approx(paired_ci(closed_gaps))
    assert ok["verdict"] == "closed"
    # Saving has its own interval; lr_chosen is the geometric mean (0.04).
    assert (ok["saving_mean"], ok["saving_lo"], ok["saving_hi"]) == pytest.approx(
        paired_ci([2.0, 3.0, 4.0]))
    assert ok["lr_chosen"] == pytest.approx(0.04)
    # Accuracies are means over the valid seeds.
    assert ok["cold/test_acc"] == 90.0 and ok["warm/test_acc"] == pytest.approx(
        90 - np.mean(closed_gaps))
    # The swept values are parsed back to numbers.
    assert isinstance(ok["lr"], float) and isinstance(ok["warmup_steps"], int)

    dead = summary[(1.0, 0)]
    # All seeds diverged: failed, diverged share 1, no gap.
    assert dead["verdict"] == "failed" and dead["diverged_share"] == 1.0
    assert dead["n_seeds"] == 0 and math.isnan(dead["gap_mean"])

    single = summary[(0.1, 0)]
    # One valid seed and one error (exactly half failed): inconclusive, not failed.
    assert single["verdict"] == "inconclusive" and single["n_failed"] == 1
    assert single["gap_mean"] == 0.0 and math.isnan(single["gap_hi"])

    most = summary[(0.3, 0)]
    # One valid seed against a diverged one and one without a gap: more than half failed.
    assert (most["n_seeds"], most["n_failed"], most["n_diverged"]) == (1, 2, 1)
    assert most["verdict"] == "failed"
    # Settings come sorted by their swept values.
    assert [(r["lr"], r["warmup_steps"]) for r in summarize(rows, swept)] == sorted(summary)


def test_trial_outcomes():
    # Each status (and a completed trial without the quantity) maps to its outcome.
    assert [trial_outcome(r) for r in (
        {"status": "completed", "gap": "0.3"}, {"status": "completed", "gap": ""},
        {"status": "diverged"}, {"status": "completed", "diverged": "True", "gap": "1"},
        {"status": "error"}, {"status": "stopped", "gap": "1"}, {"status": "pending"},
    )] == ["succeeded", "failed", "diverged", "diverged", "failed", "stopped", "unfinished"]


def test_bootstrap_option_in_summarize():
    rows = [trial({"lr": 0.1}, s, gap=g) for s, g in enumerate(GAPS)]
    row = summarize(rows, ["lr"], ci="bootstrap")[0]
    # ci="bootstrap" puts bootstrap_ci's interval in the summary.
    assert (row["gap_mean"], row["gap_lo"], row["gap_hi"]) == bootstrap_ci(GAPS)
    # An unknown method is refused.
    with pytest.raises(ValueError, match="ci must be one of"):
        summarize(rows, ["lr"], ci="wald")


def test_non_gap_metric_is_mapped():
    rows = [trial({"meta_horizon": h}, s, **{"nqm/final_loss": 0.1 / h + 0.01 * s})
            for h in (1, 10) for s in range(3)]
    rows += [trial({"meta_horizon": 100}, s, status="diverged", diverged=True)
             for s in range(3)]
    summary = summarize(rows, ["meta_horizon"], metric="nqm/final_loss")
    by_h = {r["meta_horizon"]: r for r in summary}
    # The metric gets its own mean and t interval over seeds.
    assert (by_h[10]["metric_mean"], by_h[10]["metric_lo"], by_h[10]["metric_hi"]) == \
        pytest.approx(paired_ci([0.01, 0.02, 0.03]))
    # Seeds count by the metric: 3 valid seeds, no gap.
    assert by_h[10]["n_seeds"] == 3 and math.isnan(by_h[10]["gap_mean"])
    # Gap verdicts do not apply ("n/a"); a setting where every seed diverged is still failed.
    assert [r["verdict"] for r in summary] == ["n/a", "n/a", "failed"]
    # A gap run has no metric_* columns.
    assert "metric_mean" not in summarize([trial({"lr": 1}, 0, gap=1.0)], ["lr"])[0]


def test_write_summary(tmp_path):
    write_grid_record(tmp_path, {"lr": [0.1, 1.0]}, [0, 1], tolerance=1.0)
    write_results(tmp_path, [trial({"lr": 0.1}, 0, gap=0.2), trial({"lr": 0.1}, 1, gap=0.4),
                             trial({"lr": 1.0}, 0, gap=0.5)], ["lr"])
    path = write_summary(tmp_path)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    # RUN_DIR/map/summary.csv, one row per setting, and no temp file left behind.
    assert path == tmp_path / "map" / "summary.csv" and len(rows) == 2
    assert [p.name for p in path.parent.iterdir()] == ["summary.csv"]
    # The spec's gap_tolerance (1.0) is used: gaps 0.2, 0.4 are below it by the one-sided test
    # (p = 0.045), and not at tolerance 0.5 (p = 0.13), the spec's default
    assert rows[0]["verdict"] == "closed" and float(rows[0]["p_closed"]) < 0.05
    write_grid_record(tmp_path, {"lr": [0.1, 1.0]}, [0, 1], tolerance=0.5)
    with open(write_summary(tmp_path)) as handle:
        assert next(csv.DictReader(handle))["verdict"] == "inconclusive"
    # A single seed has no interval: empty cells, not "nan".
    assert rows[1]["gap_lo"] == "" and rows[1]["verdict"] == "inconclusive"


def test_a_search_with_seeds_until_decided_is_judged_on_the_settings_it_drew(tmp_path):
    from wssweep.record import RunDir, SeedPlanRecord, SweepRecord, WandbRecord

    # a bayes search has no grid: its settings are those in results.csv
    RunDir(tmp_path).write_record(SweepRecord(
        name="b", run_dir=str(tmp_path), spec_path="b.yaml", spec={"method": "bayes"},
        experiment={}, seeds=[0, 1], swept=["lr"], metric="gap", mode="min", method="bayes",
        gap_tolerance=1.0, wandb=WandbRecord(mode="disabled"),
        seed_plan=SeedPlanRecord(min_seeds=2, max_seeds=4)))
    rows = ([trial({"lr": 0.1}, s, gap=0.0) for s in range(4)]
            + [trial({"lr": 0.3}, s, gap=10.0) for s in range(4)]
            + [trial({"lr": 0.5}, s, gap=g) for s, g in enumerate((0.0, 3.0, -2.0, 5.0))])
    write_results(tmp_path, rows, ["lr"])
    with open(write_summary(tmp_path)) as handle:
        verdicts = {r["lr"]: r["verdict"] for r in csv.DictReader(handle)}
    # the group-sequential verdicts at their looks, one of each kind
    assert verdicts == {"0.1": "closed", "0.3": "open", "0.5": "inconclusive"}


def test_a_setting_drawn_twice_on_a_seed_counts_once_and_a_bad_seed_is_bad_input(tmp_path):
    from wssweep.errors import InputError
    from wssweep.gapmap import read_run

    swept = ["lr"]
    write_grid_record(tmp_path, {"lr": [0.1]}, [0, 1, 2])
    rows = [trial({"lr": 0.1}, seed, gap=gap) for seed, gap in enumerate([1.0, 2.0, 3.0])]
    # a random search drew lr 0.1 again: seed 0 ran twice (stopped once, then finished)
    rows += [trial({"lr": 0.1}, 0, status="stopped"), trial({"lr": 0.1}, 0, gap=1.0)]
    write_results(tmp_path, rows, swept)
    data = read_run(tmp_path)
    # one row per (setting, seed): the same measurement is not a fourth seed
    assert sorted(int(r["seed"]) for r in data.rows) == [0, 1, 2]
    (row,) = summarize(data.rows, swept)
    assert (row["n_seeds"], row["n_trials"]) == (3, 3)
    assert (row["gap_mean"], row["gap_lo"], row["gap_hi"]) == pytest.approx(
        paired_ci([1.0, 2.0, 3.0]))
    # a seed edited to 1.5 would have been truncated into seed 1: refused, naming the line
    text = (tmp_path / "results.csv").read_text().splitlines()
    text[2] = text[2].replace(",1,", ",1.5,", 1)
    (tmp_path / "results.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(InputError) as info:
        read_run(tmp_path)
    assert str(info.value).startswith("results.csv line 3: expected an integer seed")
    assert info.value.given == "1.5"
