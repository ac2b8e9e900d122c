"""Each study's comparison with its paper (``wssweep.studies.compare_*``) on made-up runs: every
branch it has (agree, disagree, unclear) reached by the smallest run that reaches it, the verdict
asserted together with a phrase of the paragraph that says why, so a test fails when the branch
is reached for another reason. The branches ``tests/test_studies.py`` already covers (online
agree and disagree without a gap, NQM agree and disagree at one rate, warmup agree, two-regime's
three readings and its missing control) are not repeated here.

The runs go through ``wssweep.gapmap.summarize_run`` (``fake_run``), so each setting's gap, its
interval, its verdict and its saving come from made-up ``results.csv`` rows exactly as they would
from a real run: accuracies of 50-95 %, gaps of a few points, 3-4 seeds with a small spread.
"""

import json

import pytest

from tests.test_studies import TWO_REGIME, fake_run, online_trials, two_regime_trials
from wssweep.studies import (
    compare_batch,
    compare_dash,
    compare_four_axes,
    compare_horizon,
    compare_nqm,
    compare_online,
    compare_two_regime,
    compare_warmup,
)

# ----------------------------------------------------------------------------------------------
# Made-up trials


def arm(setting: dict, gaps: list[float], cold: float = 80.0, saving: float = 2.0,
        val: bool = False, **extra) -> list[dict]:
    """One setting's trials, a seed per gap: the cold arm at ``cold`` %, the warm arm ``gap``
    points below it, ``saving`` x fewer steps. ``val`` adds the validation split (the same
    accuracies), which lets the run choose a reference cold start; ``extra`` columns are added
    to every trial."""
    out = []
    for seed, gap in enumerate(gaps):
        trial = {**setting, "seed": seed, "gap": gap, "warm/test_acc": cold - gap,
                 "cold/test_acc": cold, "saving": saving, **extra}
        if val:
            trial.update({"val_gap": gap, "warm/val_acc": cold - gap, "cold/val_acc": cold})
        out.append(trial)
    return out


def verdict_of(compare, run) -> tuple[str, str]:
    verdict, text = compare(run)
    assert verdict in ("agree", "disagree", "unclear"), verdict
    return verdict, text


# ----------------------------------------------------------------------------------------------
# Ash & Adams, online: a gap, and shrink-and-perturb narrowing it at a saving

ONLINE = ["shrink", "warm.perturb"]


@pytest.mark.parametrize("plain, sp, saving, verdict, says", [
    # a clear gap that shrink-and-perturb only widens
    ([3, 4, 5], [5, 6, 7], 2.0, "disagree",
     "0 of 1 shrink-and-perturb settings have a smaller mean gap"),
    # a clear gap that shrink-and-perturb narrows, but only by taking more steps than cold
    ([3, 4, 5], [0.1, -0.2, 0.0], 0.8, "unclear",
     "0 of the narrower ones still take fewer steps than the cold start"),
    # the plain warm start is behind on average, but its interval reaches 0
    ([1.5, -0.5, 1.0], [0.1, -0.2, 0.0], 2.0, "unclear", "(the interval includes 0)"),
], ids=["widened", "narrower-but-slower", "gap-not-significant"])
def test_online_branches(plain, sp, saving, verdict, says):
    run = fake_run(ONLINE, online_trials(plain, sp, saving))
    got, text = verdict_of(compare_online, run)
    assert got == verdict and says in text, text


def test_online_without_a_plain_warm_start_is_unclear():
    # only the shrink-and-perturb setting ran: nothing to measure the gap with
    trials = [t for t in online_trials([3, 4, 5], [0.1, -0.2, 0.0]) if t["shrink"] != 1.0]
    got, text = verdict_of(compare_online, fake_run(ONLINE, trials))
    assert got == "unclear" and "no plain warm start" in text, text


# ----------------------------------------------------------------------------------------------
# Ash & Adams, batch: a gap for the MLP, none for logistic regression


def batch_trials(by_optimizer: dict[str | None, tuple[list[float], list[float]]]) -> list[dict]:
    """(MLP gaps, logistic-regression gaps) per optimizer; ``None``: the optimizer not swept."""
    out = []
    for opt, (mlp, lin) in by_optimizer.items():
        swept_opt = {} if opt is None else {"optim.name": opt}
        out += arm({"model.name": "mlp", **swept_opt}, mlp, cold=52.0)
        out += arm({"model.name": "logreg", **swept_opt}, lin, cold=40.0)
    return out


MLP_GAP, NO_GAP = [1.5, 1.8, 1.4, 1.7], [0.1, -0.2, 0.0, 0.3]
PENALTY, WARM_BETTER = [0.9, 1.1, 0.8, 1.0], [-0.8, -1.0, -0.6, -0.9]


def test_batch_agrees_when_only_the_mlp_has_a_gap_with_each_optimizer():
    # SGD: the MLP behind, logreg level; Adam: the MLP further behind, logreg's warm start ahead
    run = fake_run(["model.name", "optim.name"],
                   batch_trials({"sgd": (MLP_GAP, NO_GAP), "adam": ([3.2, 3.5, 3.0, 3.3],
                                                                  WARM_BETTER)}))
    got, text = verdict_of(compare_batch, run)
    assert got == "agree", text
    assert "With sgd, the MLP's gap is +1.6 [" in text and ", above 0; logistic" in text
    assert "its CI includes 0" in text and "the warm start is, if anything, better" in text


@pytest.mark.parametrize("mlp, lin, verdict, says", [
    # the convex model pays the penalty and the MLP does not: the paper's finding reversed
    (NO_GAP, PENALTY, "disagree", "not above 0"),
    # both models pay: the MLP's gap is there, but so is logistic regression's
    (MLP_GAP, PENALTY, "unclear", "a warm-start penalty"),
    # logistic regression pays a penalty no larger than the paper's largest for it: still unclear
    (MLP_GAP, [0.5, 0.7, 0.6, 0.65], "unclear", "within the paper's largest for logistic "
     "regression (0.9 points)"),
], ids=["reversed", "both-gaps", "paper-sized-penalty"])
def test_batch_disagree_and_unclear(mlp, lin, verdict, says):
    run = fake_run(["model.name"], batch_trials({None: (mlp, lin)}))
    got, text = verdict_of(compare_batch, run)
    # the optimizer is not swept: the run's (made-up, empty) experiment defaults to SGD
    assert got == verdict and "With sgd," in text and says in text, text


def test_batch_without_both_models_is_unclear():
    # only the MLP ran: there is no convex model to hold it against, so nothing is said
    trials = [t for t in batch_trials({None: (MLP_GAP, NO_GAP)}) if t["model.name"] == "mlp"]
    assert verdict_of(compare_batch, fake_run(["model.name"], trials)) == ("unclear", "")


# ----------------------------------------------------------------------------------------------
# DASH: DASH >= cold > warm, with DASH cheaper than cold

FLOOR = {"warm/dash_factor_mean": 0.3, "warm/dash_factor_min": 0.3,
         "warm/dash_factor_max": 0.31}
SPREAD = {"warm/dash_factor_mean": 0.62, "warm/dash_factor_min": 0.3,
          "warm/dash_factor_max": 0.95}
BEHIND = [3.0, 3.4, 2.8, 3.2]  # a warm start clearly behind cold
LEVEL = [0.1, -0.1, 0.0, 0.2]  # level with cold, tightly


def dash_trials(warm: list[float] = BEHIND, dash: list[float] = LEVEL, dash_saving: float = 2.0,
                factors: dict | None = None, baselines: bool = False) -> list[dict]:
    """The plain warm start, DASH (its factors recorded when given) and, with ``baselines``,
    shrink-and-perturb, the last-layer reset and L2-init, all on CIFAR-like accuracies."""
    def setting(name):
        return {"warm.intervention": name}

    out = arm(setting("none"), warm, cold=88.0)
    out += arm(setting("dash"), dash, cold=88.0, saving=dash_saving, **(factors or {}))
    if baselines:
        out += arm(setting("shrink_perturb"), [0.8, 1.0, 0.6, 0.9], cold=88.0, saving=1.5)
        out += arm(setting("reset_last_layer"), [2.0, 2.2, 1.8, 2.0], cold=88.0, saving=1.8)
        out += arm(setting("l2_init"), [1.5, 1.7, 1.3, 1.5], cold=88.0, saving=1.2)
    return out


def dash_run(**kwargs):
    return fake_run(["warm.intervention"], dash_trials(**kwargs))


def test_dash_agrees_and_names_every_baseline():
    # warm behind cold, DASH level with it at half the steps; every baseline of the paper ran
    got, text = verdict_of(compare_dash, dash_run(factors=FLOOR, baselines=True))
    assert got == "agree" and "DASH ≥ cold holds" in text, text
    # the warm start beside DASH shares its (reset) optimizer
    assert "Cold minus warm: optimizer reset: +3.1 [" in text
    assert "(the warm start with its optimizer reset is at +3.1) with 2.00x fewer steps" in text
    assert "the best shrink-and-perturb (intervention shrink_perturb) at +0.8 [" in text
    assert "; last-layer reset at +2.0 [" in text and "1.80x" in text
    assert "; L2-init at +1.5 [" in text and "1.20x" in text


def test_dash_says_when_its_factors_are_uniform_shrinking():
    # every factor within 0.02 of the floor: DASH did nothing a plain shrink would not
    _, text = verdict_of(compare_dash, dash_run(factors=FLOOR))
    assert "from 0.30 to 0.31 over every layer and seed: all at the floor" in text
    assert "uniform shrinking" in text
    # factors from the floor to near 1: per-neuron shrinking, and no such claim
    _, text = verdict_of(compare_dash, dash_run(factors=SPREAD))
    assert "DASH's factors at the last stage: mean 0.62, from 0.30 to 0.95" in text
    assert "uniform shrinking" not in text and "floor" not in text
    # a run from before the factors were recorded says so
    _, text = verdict_of(compare_dash, dash_run())
    assert "did not record DASH's factors" in text
    # no baselines ran: none is named
    assert "shrink-and-perturb" not in text and "last-layer" not in text and "L2" not in text


@pytest.mark.parametrize("kwargs, verdict, says", [
    # DASH stays clearly behind cold
    ({"dash": [1.8, 2.1, 1.6, 2.0]}, "disagree",
     "DASH stays below the cold start: its interval excludes 0"),
    # the warm start is not behind at all: it beats cold, so there is no gap for DASH to close
    ({"warm": [-2.0, -1.8, -2.2, -2.0]}, "disagree", "Cold minus warm: optimizer reset: -2.0 ["),
    # DASH's interval reaches both 0 and beyond the tolerance: not shown either way
    ({"dash": [0.2, 1.5, -0.3, 0.9]}, "unclear", "DASH ≥ cold is not shown"),
    # DASH matches cold but takes more steps than it
    ({"dash_saving": 0.9}, "unclear", "with 0.90x fewer steps than cold"),
], ids=["dash-behind", "warm-ahead", "dash-inconclusive", "dash-slower"])
def test_dash_disagree_and_unclear(kwargs, verdict, says):
    got, text = verdict_of(compare_dash, dash_run(factors=SPREAD, **kwargs))
    assert got == verdict and says in text, text


def test_dash_without_its_settings_is_unclear():
    # only the plain warm start ran
    trials = [t for t in dash_trials() if t["warm.intervention"] == "none"]
    got, text = verdict_of(compare_dash, fake_run(["warm.intervention"], trials))
    assert got == "unclear" and "lacks the warm or the DASH settings" in text


# ----------------------------------------------------------------------------------------------
# Leclerc & Madry: the branches tests/test_studies.py does not reach


def test_two_regime_disagrees_when_the_phase_does_not_narrow_the_gap():
    # 100 large steps first leave the gap half a point wider, on every seed
    run = fake_run(TWO_REGIME, two_regime_trials([3.0, 3.5, 2.5, 3.2], [3.5, 4.0, 3.0, 3.6],
                                                 [3.0, 3.1, 2.9, 3.0]))
    got, text = verdict_of(compare_two_regime, run)
    assert got == "disagree" and "it does not narrow the small rate's gap" in text, text


def test_two_regime_without_the_control_still_disagrees():
    # no constant large-rate control, and the phase does not narrow the gap: a disagreement
    # needs no control (only an agreement does)
    trials = [t for t in two_regime_trials([3.0, 3.5, 2.5, 3.2], [3.5, 4.0, 3.0, 3.6], [0] * 4)
              if t["optim.schedule"] != "constant"]
    got, text = verdict_of(compare_two_regime, fake_run(TWO_REGIME, trials))
    assert got == "disagree" and "a paired change of +0.5 [+0.4, +0.6] points" in text, text
    assert "no constant large-rate control" in text


def test_two_regime_without_a_gap_to_close_is_unclear():
    # the small rate alone leaves no gap (it hurt the cold start as much): nothing to test
    run = fake_run(TWO_REGIME, two_regime_trials([0.1, 0.2, 0.0, 0.1], [0.1, 0.0, 0.2, 0.1],
                                                 [0.2, 0.1, 0.0, 0.1]))
    got, text = verdict_of(compare_two_regime, run)
    assert got == "unclear" and "leaves no warm-start gap to close" in text, text


# ----------------------------------------------------------------------------------------------
# four_axes: some setting closes the gap against the reference cold start

FOUR_AXES = ["lr", "shrink"]


def four_axes_trials(*settings: tuple[float, float, list[float], float]) -> list[dict]:
    """(lr, shrink, per-seed same-recipe gaps, the cold arm's accuracy at that lr), with a
    validation split: the reference cold start is the lr whose cold arm validates best."""
    out = []
    for lr, shrink, gaps, cold in settings:
        out += arm({"lr": lr, "shrink": shrink}, gaps, cold=cold, saving=2.5 if shrink < 1
                   else 3.0, val=True)
    return out


def test_four_axes_agrees_when_a_setting_closes_against_the_reference():
    # shrinking by half brings the warm start level with the (only) cold start, 2.5x cheaper
    run = fake_run(FOUR_AXES, four_axes_trials((0.1, 1.0, BEHIND, 85.0), (0.1, 0.5, LEVEL, 85.0)))
    got, text = verdict_of(compare_four_axes, run)
    assert got == "agree", text
    assert "Optuna tried 2 settings on 4 seeds. 1 close the gap to the reference" in text
    assert "The cheapest is shrink 0.5: +0.1 [" in text and "2.50x fewer steps" in text
    assert "own cold arm only" not in text


@pytest.mark.parametrize("shrunk, verdict, says", [
    # shrinking narrows the gap to two points, still clearly open: every setting is open
    ([2.0, 2.2, 1.8, 2.0], "disagree", "The smallest gap to the reference is at shrink 0.5: "
     "+2.0 [+1.7, +2.3]"),
    # shrinking leaves a gap whose interval spans both 0 and the tolerance: not open, not closed
    ([0.2, 1.5, -0.3, 0.9], "unclear", "The smallest gap to the reference is at shrink 0.5: "
     "+0.6 [-0.7, +1.8]"),
], ids=["all-open", "inconclusive"])
def test_four_axes_disagree_and_unclear(shrunk, verdict, says):
    run = fake_run(FOUR_AXES, four_axes_trials((0.1, 1.0, BEHIND, 85.0),
                                               (0.1, 0.5, shrunk, 85.0)))
    got, text = verdict_of(compare_four_axes, run)
    assert got == verdict and "0 close the gap" in text and says in text, text


def test_four_axes_names_settings_closed_against_their_own_cold_arm_only():
    # at lr 0.01 the cold arm reaches only 70 % (the reference, lr 0.1, reaches 85 %): the warm
    # start sits 0.15 points below its own cold arm but 15 points below the reference
    run = fake_run(FOUR_AXES, four_axes_trials((0.1, 1.0, BEHIND, 85.0),
                                               (0.01, 0.5, [0.2, 0.0, 0.1, 0.3], 70.0)))
    weak = next(r for r in run.rows if r["lr"] == 0.01)
    assert weak["gap_hi"] <= 0.5 and weak["ref_gap_mean"] == pytest.approx(15.15)
    got, text = verdict_of(compare_four_axes, run)
    # both settings are open against the reference
    assert got == "disagree", text
    assert "1 more look closed against their own cold arm only" in text
    assert "The smallest gap to the reference is at lr 0.1, shrink 1: +3.1 [" in text


def test_four_axes_without_any_setting_is_unclear():
    # a run whose results.csv has no trial yet
    got, _ = compare_four_axes(fake_run(FOUR_AXES, []))
    assert got == "unclear"


# ----------------------------------------------------------------------------------------------
# Wu et al. on the NQM: a ten-fold larger rate at the long horizon, and a lower loss


def nqm_run(*horizons: tuple[int, float, list[float]]):
    """(H, the rate in force mid-run, the final expected loss per seed)."""
    trials = [{"meta_horizon": h, "seed": s, "nqm/lr_mid": lr, "nqm/final_loss": loss}
              for h, lr, losses in horizons for s, loss in enumerate(losses)]
    return fake_run(["meta_horizon"], trials, metric="nqm/final_loss")


@pytest.mark.parametrize("long_lr, long_loss, verdict, says", [
    # the long horizon picks a 13x larger rate, but ends no lower: the bias costs nothing
    (0.08, [1.31, 1.29, 1.30], "disagree", "13.3x larger. The final expected loss is 1.300 at "
     "H = 1 against 1.300 at H = 10000"),
    # a lower loss at the long horizon, but from a rate only 4x larger: short of orders of
    # magnitude
    (0.024, [0.88, 0.89, 0.87], "unclear", "it is 0.024: 4.0x larger"),
], ids=["no-lower-loss", "rate-4x"])
def test_nqm_disagree_and_unclear(long_lr, long_loss, verdict, says):
    run = nqm_run((1, 0.006, [1.30, 1.31, 1.29]), (10000, long_lr, long_loss))
    got, text = verdict_of(compare_nqm, run)
    assert got == verdict and says in text, text


def test_nqm_long_horizon_on_one_seed_is_not_a_disagreement():
    # two of the long horizon's three seeds did not finish; the one left ends far lower, at a
    # 13x larger rate
    run = nqm_run((1, 0.006, [1.30, 1.31, 1.29]), (10000, 0.08, [0.88]))
    assert compare_nqm(run)[0] != "disagree"


# ----------------------------------------------------------------------------------------------
# Wu et al. on a warm stage: longer horizons choose larger rates


def horizon_trials(*horizons: tuple[int, float, list[float], list[float], list[float]]):
    """(H, chosen rate, per-seed gap against the cold baseline at 1e-3, per-seed gap against a
    cold start at the chosen rate, the per-stage rates after stage 1). H = 0: meta-horizon off,
    stage 1's rate throughout."""
    out = []
    for h, lr, gaps, chosen, stages in horizons:
        for seed, (gap, gap_chosen) in enumerate(zip(gaps, chosen, strict=True)):
            out.append({"meta_horizon": h, "seed": seed, "gap": gap, "gap_chosen": gap_chosen,
                        "lr_chosen": lr, "warm/stage_lr": json.dumps([1e-3, *stages]),
                        "warm/meta_steps": 0 if h == 0 else 40 * h,
                        "warm/steps": 900 + 40 * h, "cold/steps": 1500, "saving": 1.5,
                        "warm/test_acc": 95 - gap, "cold/test_acc": 95})
    return out


OFF = (0, 1e-3, [1.0, 1.2, 0.9, 1.1], [1.0, 1.2, 0.9, 1.1], [1e-3, 1e-3])


def test_horizon_agrees_and_reads_the_grid_edge_and_both_baselines():
    # H = 5 picks the grid's lowest rate at every stage and falls 3 points behind, as far as a
    # cold start at that rate; H = 100 picks a 30x larger rate and comes level with the baseline,
    # while a cold start at that rate does 1.5 points better still
    run = fake_run(["meta_horizon"], horizon_trials(
        OFF, (5, 1e-4, [3.0, 3.3, 2.8, 3.1], [0.1, -0.2, 0.2, 0.0], [1e-4, 1e-4]),
        (100, 3e-3, [0.2, -0.3, 0.1, -0.1], [1.5, 1.7, 1.3, 1.6], [3e-3, 3e-3])))
    got, text = verdict_of(compare_horizon, run)
    assert got == "agree" and "0.0001 at H = 5 and 0.003 at H = 100 (30.0x)" in text, text
    assert "At H = 5 most chosen rates are at the edge of the candidate grid (0.0001 .. 1)" in text
    assert "At H = 5 the gap against the baseline is the small rate's doing" in text
    assert "At H = 100 the larger chosen rate brings the warm start level" in text
    assert "H = 5: 1100 / 1500; H = 100: 4900 / 1500" in text


@pytest.mark.parametrize("long_lr, verdict, says", [
    # the longer horizon picks a smaller rate than the short one: no short-horizon bias
    (1e-3, "disagree", "(0.5x)"),
    # a larger rate, but only 1.5x: not the bias the paper reports
    (3e-3, "unclear", "(1.5x)"),
], ids=["smaller", "1.5x"])
def test_horizon_disagree_and_unclear(long_lr, verdict, says):
    run = fake_run(["meta_horizon"], horizon_trials(
        OFF, (5, 2e-3, [1.0, 1.2, 0.9, 1.1], [0.5, 0.7, 0.4, 0.6], [2e-3, 2e-3]),
        (100, long_lr, [0.8, 1.0, 0.7, 0.9], [0.4, 0.6, 0.3, 0.5], [long_lr, long_lr])))
    got, text = verdict_of(compare_horizon, run)
    assert got == verdict and says in text, text
    # no rate at the grid's edge, so no call to widen it
    assert "widened" not in text


def test_horizon_with_one_horizon_above_zero_is_unclear():
    # only H = 5 finished beside the meta-horizon switched off
    run = fake_run(["meta_horizon"], horizon_trials(
        OFF, (5, 2e-3, [1.0, 1.2, 0.9, 1.1], [0.5, 0.7, 0.4, 0.6], [2e-3, 2e-3])))
    got, text = verdict_of(compare_horizon, run)
    assert got == "unclear" and "Fewer than two horizons above 0 finished" in text


# ----------------------------------------------------------------------------------------------
# Kalra & Barkeshli: warmup moves the failure boundary, GI-Adam matches Adam with warmup


def warmup_run(trains: dict[tuple[str, int], list[float]], scale: float = 4.0):
    """The rates 0.1, 1 and 3 for each (optimizer, warmup steps): those in ``trains`` train (to
    71 % at 0.1, 70 % above), the others diverge on all three seeds."""
    trials = []
    for (opt, steps), ok in trains.items():
        for lr in (0.1, 1.0, 3.0):
            for seed in range(3):
                trained = lr in ok
                acc = (71.0 if lr == 0.1 else 70.0) + seed / 10
                trials.append({"model.init_scale": scale, "optim.name": opt,
                               "warmup_steps": steps, "lr": lr, "seed": seed,
                               "cold/test_acc": acc if trained else "",
                               "gap": 0.0 if trained else "", "diverged": str(not trained),
                               "status": "completed" if trained else "diverged"})
    return fake_run(["model.init_scale", "optim.name", "warmup_steps", "lr"], trials,
                    metric="cold/test_acc")


MOVES = {("sgd", 0): [0.1, 1.0], ("sgd", 256): [0.1, 1.0, 3.0], ("adam", 0): [0.1],
         ("adam", 256): [0.1, 1.0], ("gi_adam", 0): [0.1, 1.0]}


@pytest.mark.parametrize("trains, scale, verdict, says", [
    # warmup moves neither optimizer's boundary
    ({**MOVES, ("sgd", 256): [0.1, 1.0], ("adam", 256): [0.1]}, 4.0, "disagree",
     "sgd at init x4: 1 without warmup, 1 with it; adam at init x4: 0.1 without warmup, 0.1 "
     "with it"),
    # warmup moves both boundaries, but GI-Adam without warmup stops short of Adam with it
    ({**MOVES, ("gi_adam", 0): [0.1]}, 4.0, "unclear",
     "GI-Adam without warmup reaches 0.1 against Adam with warmup's 1"),
    # warmup moves both boundaries at the default init only: the paper's case is a sharp init
    (MOVES, 1.0, "unclear", "sgd at init x1: 1 without warmup, 3 with it"),
], ids=["boundary-fixed", "gi-adam-short", "default-init-only"])
def test_warmup_disagree_and_unclear(trains, scale, verdict, says):
    got, text = verdict_of(compare_warmup, warmup_run(trains, scale))
    assert got == verdict and says in text, text
    # away from the boundary the rate moves accuracy (71 % at 0.1, 70 % at 1), the recipe not
    assert "by 0.0 points across warmup recipes at a fixed rate and by 1.0 points across " \
        "rates" in text


# ----------------------------------------------------------------------------------------------
# Every gap study's section says what it decided and what the rest would need


def test_the_section_counts_decided_settings_and_prices_the_undecided():
    from wssweep.studies import decided_text
    from wssweep.verdicts import seeds_to_decide

    undecided_gaps = [1.5, -0.5, 2.0, 0.2]
    trials = arm({"shrink": 1.0}, [3.0, 3.1, 2.9, 3.05]) + arm({"shrink": 0.5}, undecided_gaps)
    run = fake_run(["shrink"], trials)
    text = decided_text(run)
    assert text.startswith("**Decided.** 1 of 2 settings, with a fixed 4 seeds: 1 open, "
                           "1 inconclusive."), text
    # the undecided one, its interval, and the seeds its observed gap would need at 0.05 / 2
    need = seeds_to_decide(undecided_gaps, tolerance=0.5, level=0.025)
    assert "shrink 0.5 at +0.8 [" in text and f"after 4 seeds: about {need} seeds" in text
    assert "t-test at 0.025 (the 0.05 error rate over 2 settings)" in text


def test_a_section_without_undecided_settings_names_none_and_a_non_gap_study_says_nothing():
    from wssweep.studies import decided_text

    run = fake_run(["shrink"], arm({"shrink": 1.0}, [3.0, 3.1, 2.9]))
    assert decided_text(run) == ("**Decided.** 1 of 1 settings, with a fixed 3 seeds: 1 open.")
    loss = fake_run(["lr"], [{"lr": 0.1, "seed": 0, "nqm/final_loss": 1.0}],
                    metric="nqm/final_loss")
    assert decided_text(loss) == ""


def test_the_table_shows_the_gap_to_the_reference_where_it_is_another_recipe():
    from wssweep.studies import verdict_table

    # lr sets both arms: lr 0.01's own cold arm is weak, so its verdict judges another gap
    trials = (arm({"lr": 0.1}, [0.1, -0.1, 0.0], cold=90, val=True)
              + arm({"lr": 0.01}, [-4.9, -5.1, -5.0], cold=70, val=True))
    table = verdict_table(fake_run(["lr"], trials))
    assert "vs reference cold [95 % CI]" in table
    assert "+15.0 [" in table  # 90 (the reference) − 75 (the warm arm at lr 0.01)
    # one cold recipe: the two gaps are the same, and the table has one column
    same = verdict_table(fake_run(["shrink"], arm({"shrink": 1.0}, [3.0, 3.1, 2.9], val=True)))
    assert "vs reference cold" not in same


def test_dash_reads_a_swept_warm_mapping():
    # sweeps/dash.yaml sweeps `warm` itself, one mapping per baseline of their code: the
    # comparison finds each intervention and optimizer state inside the mapping's JSON cell
    def setting(name, kept=True):
        return {"warm": json.dumps({"intervention": name, "keep_optimizer": kept})}

    trials = arm(setting("none"), BEHIND, cold=88.0)
    trials += arm(setting("none", kept=False), [2.0, 2.4, 1.8, 2.2], cold=88.0)
    trials += arm(setting("dash"), LEVEL, cold=88.0, **FLOOR)
    trials += arm(setting("l2_init"), [1.5, 1.7, 1.3, 1.5], cold=88.0, saving=1.2)
    got, text = verdict_of(compare_dash, fake_run(["warm"], trials))
    assert got == "agree", text
    assert "optimizer kept: +3.1 [" in text and "optimizer reset: +2.1 [" in text
    # the warm start beside DASH is the one sharing its (kept) optimizer; labels read the mapping
    assert "(the warm start with its optimizer kept is at +3.1)" in text
    assert "The best DASH setting (intervention dash, keep_optimizer True)" in text
    assert "; L2-init at +1.5 [" in text
    # a key the mapping does not give is the study's fixed value, as for any unswept key
    run = fake_run(["warm"], arm({"warm": json.dumps({"intervention": "dash"})}, LEVEL))
    assert run.value(run.rows[0], "warm.intervention") == "dash"
    assert run.value(run.rows[0], "warm.keep_optimizer", "fixed") == "fixed"


@pytest.mark.parametrize("plan, says", [
    ((4, 8), "with seeds added until decided (4 everywhere, then looks at 8 seeds where "
             "undecided): 1 open."),
    ((4, 4), "with seeds added until decided (4 everywhere, the only look): 1 open."),
], ids=["two-looks", "one-look"])
def test_the_section_names_the_looks_of_seeds_until_decided(plan, says):
    from wssweep.record import SeedPlanRecord
    from wssweep.studies import decided_text

    run = fake_run(["shrink"], arm({"shrink": 1.0}, [3.0, 3.1, 2.9, 3.05]))
    run.data.sweep = run.data.sweep.model_copy(
        update={"seed_plan": SeedPlanRecord(min_seeds=plan[0], max_seeds=plan[1])})
    assert decided_text(run) == f"**Decided.** 1 of 1 settings, {says}"
