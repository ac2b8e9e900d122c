"""The reference cold start, per-arm failures, convergence and the gain over plain warm
(``wssweep.comparisons``, through the map's ``summarize``)."""

from __future__ import annotations

import math

import pytest

from tests.test_gapmap import as_csv_rows
from wssweep.comparisons import choose_reference, cold_keys, problem_keys
from wssweep.gapmap import Mapped, paired_ci, recommend, summarize, trial_outcome

SEEDS = range(6)
NOISE = [0.3, -0.2, 0.1, -0.3, 0.2, -0.1]  # per seed, so intervals are finite


def row(setting: dict, seed: int, warm: float, cold: float, *, warm_val: float | None = None,
        cold_val: float | None = None, warm_stop="threshold", cold_stop="threshold",
        status="completed", warm_diverged=False, cold_diverged=False) -> dict:
    e = NOISE[seed]
    return {"trial_id": f"{setting}-{seed}", "status": status, "seed": seed,
            "setting_key": str(sorted(setting.items())), **setting,
            "warm/test_acc": None if warm_diverged else warm + e,
            "cold/test_acc": None if cold_diverged else cold - e,
            "warm/val_acc": None if warm_diverged else (warm if warm_val is None else warm_val) + e,
            "cold/val_acc": None if cold_diverged else (cold if cold_val is None else cold_val),
            "gap": None if warm_diverged or cold_diverged else cold - warm - 2 * e,
            "warm/stop": "diverged" if warm_diverged else warm_stop,
            "cold/stop": "diverged" if cold_diverged else cold_stop,
            "warm/diverged": warm_diverged, "cold/diverged": cold_diverged,
            "diverged": warm_diverged or cold_diverged}


def by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def test_a_warm_start_that_beats_a_weak_cold_arm_but_not_the_best_is_not_closed(tmp_path):
    # lr sets both arms: at lr 0.001 the cold arm is weak (70 %), at 0.1 strong (90 %)
    rows = [row({"lr": 0.001}, s, warm=75, cold=70) for s in SEEDS]
    rows += [row({"lr": 0.1}, s, warm=90.1, cold=90) for s in SEEDS]
    swept = ["lr"]
    summary = by(summarize(as_csv_rows(tmp_path, rows, swept), swept, tolerance=0.5), "lr")
    weak = summary[(0.001,)]
    # against its own cold arm the warm start looks better by 5 points ...
    assert weak["gap_mean"] == pytest.approx(-5.0)
    # ... but against the reference (lr 0.1, best on validation) it is 15 points behind: open
    assert weak["ref_gap_mean"] == pytest.approx(15.0, abs=0.5)
    assert weak["verdict"] == "open"
    # the strong recipe's own cold arm is the reference: the two gaps are the same there
    strong = summary[(0.1,)]
    assert strong["ref_gap_mean"] == pytest.approx(strong["gap_mean"])
    assert strong["verdict"] == "closed"


def test_the_reference_is_chosen_on_validation_not_test(tmp_path):
    # recipe A is better on test, B on validation: the reference is B
    rows = [row({"lr": 0.1}, s, warm=80, cold=88, cold_val=80) for s in SEEDS]
    rows += [row({"lr": 0.01}, s, warm=80, cold=85, cold_val=86) for s in SEEDS]
    ref = choose_reference(as_csv_rows(tmp_path, rows, ["lr"]), ["lr"])
    assert ref.how == "best" and ref.settings == {"lr": 0.01}
    assert ref.mean_val_acc == pytest.approx(86.0)
    # every recipe it was chosen among is listed, for reference.json
    assert sorted(c["settings"]["lr"] for c in ref.as_json()["candidates"]) == [0.01, 0.1]


def test_a_named_reference_overrides_the_choice(tmp_path):
    rows = [row({"lr": lr}, s, warm=80, cold=cold)
            for lr, cold in ((0.1, 90), (0.01, 85)) for s in SEEDS]
    ref = choose_reference(as_csv_rows(tmp_path, rows, ["lr"]), ["lr"], {"lr": 0.01})
    # the spec's reference is used, whatever validation says
    assert ref.how == "named" and ref.settings == {"lr": 0.01}
    assert ref.seeds["0"].test_acc == pytest.approx(85 - NOISE[0])


def test_a_key_the_run_holds_constant_neither_splits_recipes_nor_loses_a_named_reference(
        tmp_path):
    # optim.name is swept with one value: one recipe per lr, and a name that gives it still
    # finds its recipe
    rows = [row({"lr": lr, "optim.name": "adam"}, s, warm=80, cold=cold)
            for lr, cold in ((0.1, 90), (0.01, 85)) for s in SEEDS]
    csv_rows = as_csv_rows(tmp_path, rows, ["lr", "optim.name"])
    ref = choose_reference(csv_rows, ["lr", "optim.name"])
    assert ref.how == "best" and ref.settings == {"lr": 0.1}
    named = choose_reference(csv_rows, ["lr", "optim.name"], {"optim.name": "adam", "lr": 0.01})
    assert named.how == "named" and named.settings == {"lr": 0.01} and len(named.seeds) == 6
    # and a model swept with one value is one problem: one reference, not one per value
    one = [row({"model.name": "mlp"}, s, warm=80, cold=85) for s in SEEDS]
    assert choose_reference(as_csv_rows(tmp_path, one, ["model.name"]), ["model.name"]).how \
        == "only"


def test_warm_only_keys_do_not_choose_the_reference(tmp_path):
    # shrink changes only the warm arm: the sweep has one cold recipe, so ref_gap == gap
    assert cold_keys(["shrink", "warm.intervention", "lr", "optim.name"]) == ["lr", "optim.name"]
    rows = [row({"shrink": lam}, s, warm=88 + lam, cold=89) for lam in (0.3, 0.6)
            for s in SEEDS]
    for r in summarize(as_csv_rows(tmp_path, rows, ["shrink"]), ["shrink"]):
        assert r["ref_gap_mean"] == pytest.approx(r["gap_mean"])
        assert r["ref_gap_hi"] == pytest.approx(r["gap_hi"])


def test_each_model_is_judged_against_its_own_cold_start(tmp_path):
    # an MLP (cold 89 %) and logistic regression (cold 33 %): the sweep varies the model, so a
    # warm logistic regression is judged against cold logistic regression, not against the MLP
    assert problem_keys(["model.name", "lr", "shrink"]) == ["model.name"]
    rows = [row({"model.name": "mlp"}, s, warm=86, cold=89) for s in SEEDS]
    rows += [row({"model.name": "logreg"}, s, warm=33.1, cold=33) for s in SEEDS]
    csv_rows = as_csv_rows(tmp_path, rows, ["model.name"])
    ref = choose_reference(csv_rows, ["model.name"])
    assert ref.how == "per_problem" and len(ref.leaves()) == 2
    assert {leaf.problem["model.name"] for leaf in ref.leaves()} == {"mlp", "logreg"}
    assert "model.name" in ref.described
    summary = by(summarize(csv_rows, ["model.name"], tolerance=0.5), "model.name")
    assert summary[("logreg",)]["ref_gap_mean"] == pytest.approx(-0.1, abs=0.01)
    assert summary[("logreg",)]["verdict"] == "closed"
    assert summary[("mlp",)]["ref_gap_mean"] == pytest.approx(3.0, abs=0.01)
    assert summary[("mlp",)]["verdict"] == "open"
    parts = ref.as_json()["per_problem"]
    assert sorted(p["problem"]["model.name"] for p in parts) == ["logreg", "mlp"]


def test_within_each_model_the_best_cold_recipe_is_its_reference(tmp_path):
    # two models x two rates: each model's reference is its own best rate on validation
    rows = [row({"model.name": m, "lr": lr}, s, warm=80, cold=cold, cold_val=val)
            for m, lr, cold, val in (("mlp", 0.1, 90, 88), ("mlp", 0.01, 85, 86),
                                     ("logreg", 0.1, 30, 29), ("logreg", 0.01, 33, 34))
            for s in SEEDS]
    ref = choose_reference(as_csv_rows(tmp_path, rows, ["model.name", "lr"]),
                           ["model.name", "lr"])
    chosen = {leaf.problem["model.name"]: leaf.settings["lr"] for leaf in ref.leaves()}
    assert chosen == {"mlp": 0.1, "logreg": 0.01}
    assert all(leaf.how == "best" for leaf in ref.leaves())


def test_a_map_of_one_arm_loses_no_seed_to_the_other_arms_failure(tmp_path):
    rows = [row({"lr": 0.1}, s, warm=80, cold=85, warm_diverged=s < 4, status="diverged"
                if s < 4 else "completed") for s in SEEDS]
    csv_rows = as_csv_rows(tmp_path, rows, ["lr"])
    # the warm arm diverged on 4 seeds: the cold arm's accuracy still has all 6
    assert [trial_outcome(r, "cold/test_acc") for r in csv_rows] == ["succeeded"] * 6
    cold_map = summarize(csv_rows, ["lr"], metric="cold/test_acc")[0]
    assert cold_map["metric_mean"] == pytest.approx(85.0)  # the mean over all 6 seeds
    assert cold_map["metric_lo"] < 85 < cold_map["metric_hi"]
    # the gap needs both arms: 4 of 6 seeds failed, so the setting is failed
    gap_map = summarize(csv_rows, ["lr"])[0]
    assert gap_map["n_seeds"] == 2 and gap_map["verdict"] == "failed"


def test_arms_that_stopped_differently_are_unconverged_not_compared(tmp_path):
    # the warm arm stops on the plateau on 4 of 6 seeds, the cold arm at its threshold
    rows = [row({"lr": 0.1}, s, warm=90.1, cold=90,
                warm_stop="plateau" if s < 4 else "threshold") for s in SEEDS]
    rows += [row({"lr": 0.05}, s, warm=90.1, cold=90, cold_val=80,
                 warm_stop="plateau" if s < 3 else "threshold") for s in SEEDS]
    summary = by(summarize(as_csv_rows(tmp_path, rows, ["lr"]), ["lr"]), "lr")
    # most seeds' arms stopped on different criteria: never closed or open
    assert summary[(0.1,)]["verdict"] == "unconverged"
    assert summary[(0.1,)]["n_unconverged"] == 4
    # exactly half is still judged
    assert summary[(0.05,)]["n_unconverged"] == 3
    assert summary[(0.05,)]["verdict"] == "closed"


def test_interventions_get_their_gain_over_the_plain_warm_start(tmp_path):
    swept = ["lr", "warm.intervention"]
    rows = []
    for lr in (0.1, 0.01):
        for intervention, warm in (("none", 85.0), ("shrink_perturb", 88.0)):
            rows += [row({"lr": lr, "warm.intervention": intervention}, s,
                         warm=warm + 0.5 * NOISE[s], cold=89) for s in SEEDS]
    summary = by(summarize(as_csv_rows(tmp_path, rows, swept), swept), *swept)
    gain = summary[(0.1, "shrink_perturb")]
    # paired by seed against the plain warm start of the same recipe (lr 0.1): +3 points
    diffs = [88.0 + 1.5 * e - (85.0 + 1.5 * e) for e in NOISE]
    assert (gain["gain_vs_warm_mean"], gain["gain_vs_warm_lo"], gain["gain_vs_warm_hi"]) == \
        pytest.approx(paired_ci(diffs))
    # a plain warm start has no gain over itself
    assert math.isnan(summary[(0.1, "none")]["gain_vs_warm_mean"])


def test_the_recommendation_selects_on_validation(tmp_path):
    # two closed settings: the cheaper one (saving 3) is closed on test only, not on validation
    rows = []
    for s in SEEDS:
        rows.append({**row({"lr": 0.1}, s, warm=90.1, cold=90, warm_val=85), "saving": 3.0})
        rows.append({**row({"lr": 0.2}, s, warm=90.1, cold=90), "saving": 2.0})
    summary = summarize(as_csv_rows(tmp_path, rows, ["lr"]), ["lr"])
    assert [r["verdict"] for r in summary] == ["closed", "closed"]
    assert [r["val_verdict"] for r in summary] == ["open", "closed"]
    picked = recommend(summary, Mapped("gap", True))
    # the test verdict that is reported was not the one the choice was made on
    assert picked["lr"] == 0.2


def test_shrink_and_perturb_that_does_neither_is_the_plain_warm_start(tmp_path):
    # the quickstart's grid: shrink-and-perturb over shrink x perturb; (1, 0) changes nothing
    swept = ["shrink", "warm.perturb"]
    rows = [row({"shrink": lam, "warm.perturb": sigma}, s, warm=85 + 3 * (lam < 1), cold=89)
            for lam in (1.0, 0.5) for sigma in (0.0, 0.1) for s in SEEDS]
    experiment = {"warm": {"intervention": "shrink_perturb"}}
    summary = by(summarize(as_csv_rows(tmp_path, rows, swept), swept, experiment=experiment),
                 *swept)
    # the plain warm start is (1.0, 0.0); every other setting gets its gain over it
    assert math.isnan(summary[(1.0, 0.0)]["gain_vs_warm_mean"])
    assert summary[(0.5, 0.0)]["gain_vs_warm_mean"] == pytest.approx(3.0)
    assert summary[(1.0, 0.1)]["gain_vs_warm_mean"] == pytest.approx(0.0)
