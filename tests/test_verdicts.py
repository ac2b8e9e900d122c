"""The verdicts' error rates, checked by simulating sweeps whose true gaps are known.

Every simulated sweep has ``SETTINGS`` settings of ``SEEDS`` seeds; per-seed paired gaps are
normal with the spread measured on the shipped runs (sd ≈ 2 points). The checks use a fixed RNG,
so they are deterministic; each rate check is a binomial test whose own false-alarm rate is
``CHECK_ALPHA`` (it would flag a rule whose true rate is above the claim, not sampling noise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from wssweep.verdicts import VERDICTS, Evidence, judge, one_sided_p

SWEEPS, SETTINGS, SEEDS, SD, TOLERANCE = 1000, 10, 10, 2.0, 1.0
CHECK_ALPHA = 1e-3


def simulate(true_gap: float, correction: str, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    gaps = rng.normal(true_gap, SD, size=(SWEEPS, SETTINGS, SEEDS))
    return [[j.verdict for j in judge([Evidence(tuple(s)) for s in sweep], TOLERANCE,
                                      correction=correction)] for sweep in gaps]


def not_above(count: int, trials: int, rate: float) -> bool:
    """The observed count is consistent with a true rate of at most ``rate``."""
    return stats.binomtest(count, trials, rate, alternative="greater").pvalue > CHECK_ALPHA


@pytest.fixture(scope="module")
def at_the_tolerance():
    return {c: simulate(TOLERANCE, c) for c in ("holm", "bh", "none")}


def test_holm_bounds_the_chance_of_any_false_closed_in_a_sweep(at_the_tolerance):
    sweeps = at_the_tolerance["holm"]
    anywhere = sum(any(v in ("closed", "better") for v in sweep) for sweep in sweeps)
    # true gap exactly the tolerance everywhere: a sweep calls some setting closed <= 5 % of times
    assert not_above(anywhere, SWEEPS, 0.05), anywhere / SWEEPS
    per_setting = sum(v == "closed" for sweep in sweeps for v in sweep)
    # and so each setting's false-closed rate is far below 5 %
    assert per_setting / (SWEEPS * SETTINGS) <= 0.05


def test_benjamini_hochberg_bounds_false_discoveries(at_the_tolerance):
    sweeps = at_the_tolerance["bh"]
    # every setting is a true null here, so any discovery is false: FDR = P(any) <= 5 %
    anywhere = sum(any(v == "closed" for v in sweep) for sweep in sweeps)
    assert not_above(anywhere, SWEEPS, 0.05), anywhere / SWEEPS


def test_uncorrected_tests_are_exact_and_need_the_correction(at_the_tolerance):
    sweeps = at_the_tolerance["none"]
    per_setting = sum(v == "closed" for sweep in sweeps for v in sweep)
    n = SWEEPS * SETTINGS
    # the one-sided t-test alone is calibrated: its false-closed rate is 5 % (two-sided check)
    assert stats.binomtest(per_setting, n, 0.05).pvalue > CHECK_ALPHA, per_setting / n
    anywhere = sum(any(v == "closed" for v in sweep) for sweep in sweeps)
    # but over 10 settings a sweep almost always has a false "closed" somewhere: ~40 %
    assert anywhere / SWEEPS > 0.25


def test_power_at_a_true_gap_of_zero_matches_the_t_tests_theory(capsys):
    verdicts = simulate(0.0, "none", seed=1)
    closed = sum(v in ("closed", "better") for sweep in verdicts for v in sweep)
    n = SWEEPS * SETTINGS
    # theory: P(t < t_alpha) under a noncentral t with shift −(tolerance / (sd / sqrt(seeds)))
    shift = -TOLERANCE / (SD / math.sqrt(SEEDS))
    theory = stats.nct.cdf(stats.t.ppf(0.05, SEEDS - 1), SEEDS - 1, shift)
    # the simulated power of one test equals the theoretical power (two-sided binomial check)
    assert stats.binomtest(closed, n, theory).pvalue > CHECK_ALPHA, (closed / n, theory)
    holm = simulate(0.0, "holm", seed=1)
    holm_power = sum(v in ("closed", "better") for sweep in holm for v in sweep) / n
    with capsys.disabled():
        print(f"\npower to call a true gap of 0 closed at tolerance {TOLERANCE} points, sd {SD},"
              f" {SEEDS} seeds: {closed / n:.3f} per test alone (theory {theory:.3f}), "
              f"{holm_power:.3f} with Holm over {SETTINGS} settings")
    # the correction costs power, and does not remove it
    assert 0 < holm_power < closed / n


def test_a_gap_far_above_the_tolerance_is_open_and_far_below_is_better():
    open_gaps = Evidence((3.1, 2.8, 3.3, 2.9, 3.0, 3.2))
    better = Evidence((-3.1, -2.8, -3.3, -2.9, -3.0, -3.2))
    straddling = Evidence((2.0, -1.0, 1.5, -0.5, 0.0, 3.0))
    verdicts = [j.verdict for j in judge([open_gaps, better, straddling], tolerance=0.5)]
    # the comparison can disagree (open), beat the reference (better), or stay undecided
    assert verdicts == ["open", "better", "inconclusive"]


def test_failed_and_unconverged_come_before_any_test():
    decided = (0.1, -0.1, 0.0, 0.05, -0.05, 0.0)
    verdicts = [j.verdict for j in judge([
        Evidence(decided, n_failed=7),  # most seeds did not train
        Evidence(decided, n_unconverged=4),  # most seeds' arms stopped differently
        Evidence(decided, n_unconverged=3),  # exactly half: still judged
        Evidence((), n_failed=1),
        Evidence(()),  # nothing finished yet
    ], tolerance=0.5)]
    assert verdicts == ["failed", "unconverged", "closed", "failed", "inconclusive"]
    # every verdict is a declared one
    assert set(verdicts) <= set(VERDICTS)


def test_a_setting_judged_alone_and_the_correction_changes_the_verdict():
    # p ≈ 0.02 for closed: closed alone at 5 %, but not among 10 such settings under Holm
    ev = Evidence((0.0, 0.9, -0.6, 0.4, 1.1, -0.2, 0.3, 0.6))
    p = one_sided_p(ev.diffs, 1.0, "less")
    assert 0.005 < p < 0.05
    assert judge([ev], 1.0)[0].verdict == "closed"
    assert {j.verdict for j in judge([ev] * 10, 1.0)} == {"inconclusive"}


def test_identical_values_have_a_limit_not_a_nan():
    # no spread: strictly inside the tolerance is decided, on it is not
    assert one_sided_p([0.2, 0.2, 0.2], 0.5, "less") == 0.0
    assert one_sided_p([0.5, 0.5, 0.5], 0.5, "less") == 1.0
    # fewer than two seeds: no test
    assert math.isnan(one_sided_p([0.1], 0.5, "less"))


def _exact_sample(mean: float, sd: float, n: int = 10) -> np.ndarray:
    z = np.random.default_rng(0).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


@pytest.mark.parametrize(("mean", "level"), [(1.3, 0.01), (-0.4, 0.005), (2.0, 0.05)])
def test_the_seeds_to_decide_give_the_planned_power(mean, level):
    # the sample size it plans, drawn many times from the gap it saw, decides ~80 % of the time
    from scipy import stats

    from wssweep.verdicts import PLANNING_POWER, seeds_to_decide

    n = seeds_to_decide(_exact_sample(mean, 1.0), tolerance=0.5, level=level)
    assert 2 <= n < 200
    alternative = "greater" if mean > 0.5 else "less"
    draws = np.random.default_rng(1).normal(mean, 1.0, size=(4000, n))

    def power(k: int) -> float:
        p = stats.ttest_1samp(draws[:, :k], 0.5, axis=1, alternative=alternative).pvalue
        return float(np.mean(p <= level))

    # n seeds reach the planned power, and n is the fewest that do (within simulation error)
    assert power(n) > PLANNING_POWER - 0.03
    assert power(n - 1) < PLANNING_POWER + 0.03
    assert power(max(2, n // 2)) < PLANNING_POWER - 0.15


def test_a_gap_on_the_tolerance_is_out_of_reach():
    from wssweep.verdicts import seeds_to_decide

    assert seeds_to_decide(_exact_sample(0.5, 2.0), tolerance=0.5, level=0.01) == math.inf
    assert seeds_to_decide([1.0], tolerance=0.5, level=0.01) == math.inf
    assert math.isnan(seeds_to_decide([1.0, 1.0, 1.0], tolerance=0.5, level=0.01))
