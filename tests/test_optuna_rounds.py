"""Bayes with seeds until decided: Optuna is told each setting's current estimate every round."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from wssweep import optuna_rounds
from wssweep.record import RunDir, SeedPlanRecord, SweepRecord, WandbRecord


def bayes_record(run_dir: Path, run_cap: int = 8, min_seeds: int = 2) -> SweepRecord:
    spec = {"name": "b", "method": "bayes", "metric": {"name": "gap", "goal": "minimize"},
            "run_cap": run_cap, "seeds": {"min": min_seeds, "max": 8, "until": "decided"},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1},
                           "warm.intervention": {"value": "none"}}}
    run_dir.mkdir(parents=True, exist_ok=True)
    return SweepRecord(name="b", run_dir=str(run_dir), spec_path="b.yaml", spec=spec,
                       experiment={}, seeds=list(range(min_seeds)),
                       swept=["lr", "warm.intervention"], metric="gap", mode="min",
                       method="bayes", wandb=WandbRecord(mode="disabled"),
                       seed_plan=SeedPlanRecord(min_seeds=min_seeds, max_seeds=8))


def ran(setting: dict, seeds: range, gap: float) -> list[dict]:
    return [{**setting, "seed": s, "status": "completed", "val_gap": gap + s} for s in seeds]


def load(sweep: SweepRecord) -> optuna.Study:
    return optuna.load_study(study_name="b", storage=f"sqlite:///{RunDir(sweep.run_dir).optuna_db}")


def test_settings_arrive_over_rounds_and_optuna_sees_each_ones_mean_over_its_seeds(tmp_path):
    sweep = bayes_record(tmp_path / "run")
    # run_cap 8 on 2 first seeds: 4 settings, one a round over SEARCH_ROUNDS rounds
    assert optuna_rounds.settings_cap(sweep) == 4
    first = optuna_rounds.draw(sweep, [])
    assert len(first) == 1 and first[0]["warm.intervention"] == "none"
    assert 0.001 <= first[0]["lr"] <= 0.1
    rows = ran(first[0], range(2), gap=3.0)
    second = optuna_rounds.draw(sweep, rows)
    assert second[:1] == first and len(second) == 2
    trials = load(sweep).get_trials(deepcopy=False)
    # the first setting told its mean over 2 seeds; the new one asked, not yet told
    assert trials[0].value == pytest.approx(3.5) and trials[0].user_attrs["n_seeds"] == 2
    assert trials[1].state == optuna.trial.TrialState.RUNNING
    # two more seeds of the first setting move its estimate: the next round tells the new mean
    rows += ran(first[0], range(2, 4), gap=3.0) + ran(second[1], range(2), gap=1.0)
    third = optuna_rounds.draw(sweep, rows)
    told = load(sweep).get_trials(deepcopy=False)
    assert len(third) == 3 and third[:2] == second
    assert told[0].value == pytest.approx(4.5) and told[0].user_attrs["n_seeds"] == 4
    assert told[1].value == pytest.approx(1.5)
    # the drawn settings are on disk before their trials start (resume reads them)
    assert optuna_rounds.drawn_settings(sweep) == third


def test_a_setting_without_a_value_is_failed_for_optuna_and_the_cap_is_kept(tmp_path):
    sweep = bayes_record(tmp_path / "run", run_cap=4)  # 2 settings
    first = optuna_rounds.draw(sweep, [])
    failed = [{**first[0], "seed": s, "status": "error", "val_gap": None} for s in range(2)]
    second = optuna_rounds.draw(sweep, failed)
    assert load(sweep).get_trials(deepcopy=False)[0].state == optuna.trial.TrialState.FAIL
    # at the cap no setting is drawn, and the study still gets the current estimates
    rows = failed + ran(second[1], range(2), gap=2.0)
    assert optuna_rounds.draw(sweep, rows) == second
    assert load(sweep).get_trials(deepcopy=False)[1].value == pytest.approx(2.5)


def test_the_draws_are_reproducible_from_the_records(tmp_path):
    def draws(run_dir: Path) -> list[dict]:
        sweep = bayes_record(run_dir)
        rows: list[dict] = []
        for k in range(4):
            settings = optuna_rounds.draw(sweep, rows)
            rows += ran(settings[-1], range(2), gap=float(k))
        return settings

    once = draws(tmp_path / "a")
    assert draws(tmp_path / "b") == once
    # no draw repeats an earlier one (each round's sampler has its own seed)
    assert len({s["lr"] for s in once}) == 4
