"""Seeds until decided: the group-sequential verdict's error rate under optional stopping, and
the seeds it needs against a fixed-N design with the same error rate, by simulation.

Per-seed paired gaps are normal with the spread measured on the shipped runs (sd 2 points);
the checks use a fixed RNG (deterministic), and each rate check is a binomial test whose own
false-alarm rate is ``CHECK_ALPHA``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from wssweep.sequential import Plan, decide, decide_many, look_levels, spent
from wssweep.verdicts import pvalues

SD, TOLERANCE, SETTINGS, ALPHA = 2.0, 1.0, 10, 0.05
PLAN = Plan(min_seeds=3, max_seeds=40)
CHECK_ALPHA = 1e-3
DECIDED = ("closed", "better", "open")


def run_sequential(true_gaps: np.ndarray, seed: int) -> tuple[list, list, np.ndarray]:
    """Every cell's verdict and the seeds it used, adding seeds look by look while undecided."""
    rng = np.random.default_rng(seed)
    data = rng.normal(true_gaps[:, None], SD, size=(len(true_gaps), PLAN.max_seeds))
    verdicts: list[str | None] = [None] * len(true_gaps)
    used = [0] * len(true_gaps)
    for n in PLAN.looks:
        undecided = [i for i, v in enumerate(verdicts) if v is None]
        for i, v in zip(undecided, decide_many([data[i, :n] for i in undecided], PLAN, TOLERANCE,
                                               ALPHA / SETTINGS), strict=True):
            used[i], verdicts[i] = n, v
    return verdicts, used, data


def fixed_n_decided(data: np.ndarray, n: int) -> int:
    """Cells a fixed-N design decides with the same error rate (one test per cell at α / m)."""
    x = list(data[:, :n])
    level = ALPHA / SETTINGS
    return sum(a <= level or b <= level for a, b in zip(
        pvalues(x, TOLERANCE, "less"), pvalues(x, TOLERANCE, "greater"), strict=True))


def test_the_looks_double_up_to_the_maximum():
    assert PLAN.looks == (3, 6, 12, 24, 40)
    assert (PLAN.next_look(3), PLAN.next_look(24), PLAN.next_look(40)) == (6, 40, None)
    levels = look_levels(PLAN, ALPHA)
    # the looks spend the whole error rate between them, each a positive share
    assert sum(levels) == pytest.approx(ALPHA) and min(levels) > 0
    assert spent(ALPHA, 0.0) == 0 and spent(ALPHA, 1.0) == pytest.approx(ALPHA)


def test_optional_stopping_keeps_the_error_rate():
    sweeps = 2000
    verdicts, _, _ = run_sequential(np.full(sweeps * SETTINGS, TOLERANCE), seed=0)
    closed = np.array([v in ("closed", "better") for v in verdicts]).reshape(sweeps, SETTINGS)
    # true gap exactly the tolerance in every cell: looking 5 times and stopping when it looks
    # decided still calls a sweep's cell closed in at most 5 % of sweeps ...
    assert stats.binomtest(int(closed.any(axis=1).sum()), sweeps, ALPHA,
                           alternative="greater").pvalue > CHECK_ALPHA
    # ... and each cell at most at its share, α / m
    assert stats.binomtest(int(closed.sum()), closed.size, ALPHA / SETTINGS,
                           alternative="greater").pvalue > CHECK_ALPHA


def test_looking_without_spending_would_break_it():
    rng = np.random.default_rng(2)
    data = rng.normal(TOLERANCE, SD, size=(20000, PLAN.max_seeds))
    level = ALPHA / SETTINGS
    # the naive rule (a fixed-N test at every look, stop at the first rejection) errs more often
    # than its level: the reason the looks must spend
    ever = np.zeros(len(data), dtype=bool)
    for n in PLAN.looks:
        ever |= np.asarray(pvalues(list(data[:, :n]), TOLERANCE, "less")) <= level
    assert ever.mean() > 1.5 * level


def test_seeds_until_decided_needs_at_most_60_percent_of_a_fixed_design(capsys):
    # cells whose true gaps spread over the tolerance ± 2 sd, as a sweep's settings do
    gaps = np.random.default_rng(5).uniform(TOLERANCE - 2 * SD, TOLERANCE + 2 * SD, 10000)
    verdicts, used, data = run_sequential(gaps, seed=1)
    decided = [i for i, v in enumerate(verdicts) if v in DECIDED]
    mean_seeds = float(np.mean([used[i] for i in decided]))
    # the fixed design with the same error rate that decides as many cells: its smallest N
    fixed = np.random.default_rng(1).normal(gaps[:, None], SD, size=(len(gaps), 160))
    lo, hi = PLAN.min_seeds, fixed.shape[1]
    while lo < hi:  # the cells it decides grow with N
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if fixed_n_decided(fixed, mid) < len(decided) else (lo, mid)
    with capsys.disabled():
        print(f"\nseeds until decided: {len(decided)} of {len(gaps)} cells decided with "
              f"{mean_seeds:.1f} seeds each on average; a fixed design deciding as many needs "
              f"{lo} seeds per cell (ratio {mean_seeds / lo:.2f})")
    assert mean_seeds <= 0.6 * lo


def test_a_setting_is_decided_only_at_a_look():
    clear = [0.0, 0.1, -0.1, 0.05, 0.0, -0.05]
    # six seeds is a look: clearly inside the tolerance is closed
    assert decide(clear, PLAN, tolerance=2.0, alpha=0.05) == "closed"
    # five seeds is between looks: wait for the next batch
    assert decide(clear[:5], PLAN, tolerance=2.0, alpha=0.05) is None
    # far above the tolerance: open (the comparison can disagree)
    assert decide([6.0 + x for x in clear], PLAN, tolerance=0.5, alpha=0.05) == "open"
    # undecided at the last look: inconclusive, not more seeds
    noisy = list(np.random.default_rng(0).normal(0.5, 4.0, 40))
    assert decide(noisy, PLAN, tolerance=0.5, alpha=0.05) == "inconclusive"


# --------------------------------------------------------------------------------------------
# The rounds of a seeds-until-decided sweep (wssweep.sequential.plan_round)

GRID = [{"lr": "0.1", "shrink": lam} for lam in ("0.3", "0.6", "1.0")]
ROUND_PLAN = Plan(min_seeds=3, max_seeds=24)
TRUE_GAP = {"0.3": 0.0, "0.6": 0.8, "1.0": 6.0}  # closed, undecided for long, open


def finished_row(setting: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    gap = TRUE_GAP[setting["shrink"]] + float(rng.normal(0, 0.3 if setting["shrink"] != "0.6"
                                                         else 2.0))
    return {**setting, "seed": str(seed), "status": "completed", "cold/test_acc": "80",
            "cold/val_acc": "80", "warm/test_acc": str(80 - gap), "warm/stop": "threshold",
            "cold/stop": "threshold"}


def run_rounds(plan=ROUND_PLAN):
    """Drive plan_round as the orchestrator will: run what it asks, until it asks nothing."""
    from wssweep.sequential import plan_round

    rows, rounds = [], []
    while True:
        step = plan_round(rows, GRID, ["lr", "shrink"], plan, tolerance=0.5, alpha=0.05)
        if not step.trials:
            return rows, step, rounds
        rounds.append(step.trials)
        rows += [finished_row(setting, seed) for setting, seed in step.trials]


def test_rounds_add_seeds_only_where_undecided():
    rows, last, rounds = run_rounds()
    # the first round runs the minimum seeds everywhere
    assert sorted((s["shrink"], seed) for s, seed in rounds[0]) == [
        (lam, seed) for lam in ("0.3", "0.6", "1.0") for seed in range(3)]
    seeds = {lam: sorted(int(r["seed"]) for r in rows if r["shrink"] == lam)
             for lam in TRUE_GAP}
    # the clear settings stop early; the one near the tolerance goes on to the maximum
    assert len(seeds["0.3"]) < 24 and len(seeds["1.0"]) < 24 and seeds["0.6"] == list(range(24))
    # each round brings a setting to a planned look, never past it
    assert all(len(s) in ROUND_PLAN.looks for s in seeds.values())
    assert last.verdicts[("0.1", "0.3")] in ("closed", "better")
    assert last.verdicts[("0.1", "1.0")] == "open"
    assert last.verdicts[("0.1", "0.6")] == "inconclusive"


def test_rounds_are_a_function_of_the_finished_trials():
    from wssweep.sequential import plan_round

    rows, last, _ = run_rounds()
    # resume recomputes the same plan from the same records, in any order
    again = plan_round(list(reversed(rows)), GRID, ["lr", "shrink"], ROUND_PLAN, 0.5, 0.05)
    assert again == last
    # a running trial is not a result: its seed is asked for again
    partial = [dict(r, status="running") if r["shrink"] == "0.6" and r["seed"] == "2" else r
               for r in rows[:9]]
    step = plan_round(partial, GRID, ["lr", "shrink"], ROUND_PLAN, 0.5, 0.05)
    assert step.trials == [({"lr": "0.1", "shrink": "0.6"}, 2)]


def test_new_seeds_of_a_varied_cold_recipe_bring_their_reference():
    from wssweep.sequential import plan_round

    grid = [{"lr": lr} for lr in ("0.1", "0.01")]
    rows = []
    for seed in range(3):
        # lr 0.1 is the reference (best cold on validation) and clearly decided; lr 0.01 is not
        rows.append({"lr": "0.1", "seed": str(seed), "status": "completed", "cold/val_acc": "90",
                     "cold/test_acc": "90", "warm/test_acc": str(90 - 0.01 * seed)})
        rows.append({"lr": "0.01", "seed": str(seed), "status": "completed", "cold/val_acc": "70",
                     "cold/test_acc": "70", "warm/test_acc": str(89 + 2 * seed)})
    step = plan_round(rows, grid, ["lr"], ROUND_PLAN, 0.5, 0.05)
    asked = sorted((s["lr"], seed) for s, seed in step.trials)
    # the undecided setting runs seeds 3-5, and so does the reference recipe, so each new seed
    # of the one has a reference cold arm to pair with
    assert asked == [("0.01", 3), ("0.01", 4), ("0.01", 5), ("0.1", 3), ("0.1", 4), ("0.1", 5)]


def test_each_model_brings_its_own_reference_and_only_for_its_own_new_seeds():
    from wssweep.sequential import plan_round

    # two models x two rates. mlp: lr 0.1 is its reference and both its settings are decided;
    # logreg: lr 0.01 is its reference (decided), lr 0.1 is undecided and needs seeds 3-5
    grid = [{"model.name": m, "lr": lr} for m in ("mlp", "logreg") for lr in ("0.1", "0.01")]
    cold = {("mlp", "0.1"): 90, ("mlp", "0.01"): 70, ("logreg", "0.1"): 30, ("logreg", "0.01"): 33}
    rows = []
    for (m, lr), acc in cold.items():
        for seed in range(3):
            undecided = (m, lr) == ("logreg", "0.1")
            warm = 33 + 2 * seed - 1.5 if undecided else acc - 0.01 * seed
            if (m, lr) == ("mlp", "0.01"):
                warm = 90 - 0.01 * seed  # judged against mlp's reference (90): closed
            rows.append({"model.name": m, "lr": lr, "seed": str(seed), "status": "completed",
                         "cold/val_acc": str(acc), "cold/test_acc": str(acc),
                         "warm/test_acc": str(warm)})
    step = plan_round(rows, grid, ["model.name", "lr"], ROUND_PLAN, 0.5, 0.05)
    asked = sorted((s["model.name"], s["lr"], seed) for s, seed in step.trials)
    # logreg's reference recipe (lr 0.01) runs the new seeds for it; mlp's runs none
    assert asked == [("logreg", lr, seed) for lr in ("0.01", "0.1") for seed in (3, 4, 5)]
    assert step.verdicts[("mlp", "0.01")] in ("closed", "better")


def test_rounds_hand_back_the_grids_own_values_a_mapping_included():
    from wssweep.sequential import plan_round

    # a swept mapping is written to results.csv as JSON text; the rounds match rows by that
    # text but ask for the setting itself, which the trial merges into its section
    grid = [{"warm": {"intervention": name}} for name in ("none", "dash")]
    rows = [{"warm": json.dumps(s["warm"]), "seed": str(seed), "status": "completed",
             "cold/test_acc": "80", "cold/val_acc": "80", "warm/test_acc": str(80 - 0.7 * seed)}
            for s in grid for seed in range(3)]
    step = plan_round(rows, grid, ["warm"], ROUND_PLAN, 0.5, 0.05)
    assert step.trials and all(s in grid for s, _ in step.trials)
    assert {seed for _, seed in step.trials} == {3, 4, 5}
    # the first round, before any row, asks for them too
    first = plan_round([], grid, ["warm"], ROUND_PLAN, 0.5, 0.05).trials
    assert first == [(s, seed) for s in grid for seed in range(3)]
