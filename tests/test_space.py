"""Spec -> Ray Tune: grid order and caps, random and bayes plans, ASHA, trial identity, describe.

No Ray cluster is started: searchers, generators and schedulers are driven directly.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.experiment import Experiment
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from wssweep import space
from wssweep.errors import InputError
from wssweep.spec import ParameterSpec, experiment_from_mapping, load_sweep_spec

EXPERIMENT = "experiment: configs/batch_digits_logreg.yaml\n"
REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def load(tmp_path: Path, text: str, overrides: list[str] | None = None):
    path = tmp_path / "spec.yaml"
    path.write_text(EXPERIMENT + text)
    return load_sweep_spec(path, overrides)


def generated_configs(plan) -> list[dict]:
    """The configs Tune's generator would give the trials of a random plan."""
    experiment = Experiment("t", run=lambda config: None, config=plan.param_space,
                            num_samples=plan.num_samples)
    plan.search_alg.add_configurations([experiment])
    configs = []
    while (trial := plan.search_alg.next_trial()) is not None:
        configs.append(trial.config)
    return configs


GRID = (
    "method: grid\n"
    "parameters:\n"
    "  warm.intervention: {values: [none, shrink_perturb]}\n"
    "  lr: {values: [0.01, 0.1, 1.0]}\n"
    "  warm.perturb: {value: 0.01}\n"
    "seeds: [0, 1]\n"
)


UNFUSED = "resources: {fuse: false}\n"  # one (setting, seed) per Tune trial


def test_grid_is_the_cartesian_product_settings_outer_seeds_inner(tmp_path):
    resolved = load(tmp_path, GRID + UNFUSED)
    trials = space.grid_trials(resolved.spec)
    # 2 interventions x 3 rates x 2 seeds
    assert len(trials) == 12
    # the first parameter varies slowest, seeds fastest, constants ride along
    assert [(t["setting"]["warm.intervention"], t["setting"]["lr"], t["seed"])
            for t in trials[:4]] == [("none", 0.01, 0), ("none", 0.01, 1),
                                     ("none", 0.1, 0), ("none", 0.1, 1)]
    # a constant is part of every setting
    assert all(t["setting"]["warm.perturb"] == 0.01 for t in trials)
    plan = space.build_search(resolved, tmp_path / "run")
    # one grid_search over whole trials, run once each
    assert plan.param_space == {"trial": {"grid_search": trials}} and plan.num_samples == 1
    # the plan's count is the grid's, with no searcher or scheduler needed
    assert plan.total_trials == 12 and plan.search_alg is None and plan.scheduler is None


def test_a_grid_groups_the_seeds_of_each_setting_by_default_or_every_setting_on_request(
        tmp_path):
    resolved = load(tmp_path, GRID)
    trials = space.grid_trials(resolved.spec)
    plan = space.build_search(resolved, tmp_path / "run")
    entries = plan.param_space["trial"]["grid_search"]
    # one Tune trial per setting, its members that setting's seeds in order; the plan still
    # counts (setting, seed) trials. The first group of each rate claims its seeds' cold arms
    # at its start (a rate changes the baseline; an intervention does not): shrink-and-perturb's
    # groups leave them to the plain warm start's of their rate, listed first
    assert entries == [{"group": trials[i:i + 2], space.CLAIMS_COLD: i < 6}
                       for i in range(0, 12, 2)]
    assert [space.claims_cold_arms({"trial": e}) for e in entries] == [True] * 3 + [False] * 3
    assert space.claims_cold_arms({"trial": {"setting": {}, "seed": 0}})  # not a grid's group
    assert plan.total_trials == 12
    assert [space.trial_members({"trial": e}, [0, 1]) for e in entries][1] == [
        (trials[2]["setting"], 0), (trials[3]["setting"], 1)]
    # fuse: settings -> every setting of the grid in one group (they share the model's shapes)
    resolved = load(tmp_path, GRID + "resources: {fuse: settings}\n")
    entries = space.build_search(resolved, tmp_path / "run2").param_space["trial"]["grid_search"]
    assert entries == [{"group": trials, space.CLAIMS_COLD: True}]
    # ... but settings of another model shape make another group
    resolved = load(tmp_path, GRID.replace("  warm.perturb", "  model.width: {values: [8, 16]}\n"
                                           "  warm.perturb") + "resources: {fuse: settings}\n")
    entries = space.build_search(resolved, tmp_path / "run3").param_space["trial"]["grid_search"]
    assert [(len(e["group"]), e[space.CLAIMS_COLD]) for e in entries] == [(12, True), (12, True)]
    assert {t["setting"]["model.width"] for t in entries[1]["group"]} == {16}


def test_a_random_search_groups_the_seeds_of_each_drawn_setting(tmp_path):
    plan = space.build_search(load(tmp_path, RANDOM), tmp_path / "run")
    # 2 drawn settings, one Tune trial each, with the 3 seeds as members: still 6 trials
    assert plan.num_samples == 2 and plan.total_trials == 6
    configs = generated_configs(plan)
    assert len(configs) == 2
    members = [space.trial_members(c, [0, 1, 2]) for c in configs]
    assert [[seed for _, seed in m] for m in members] == [[0, 1, 2], [0, 1, 2]]
    assert all(len({repr(sorted(s.items())) for s, _ in m}) == 1 for m in members)


def test_a_bayes_search_runs_each_suggestion_as_one_group_and_tells_optuna_its_mean(tmp_path):
    plan = space.build_search(load(tmp_path, BAYES.replace("[0, 1, 2]", "[0, 1]")),
                              tmp_path / "run")
    # no Repeater: each suggestion is one trial whose members are the seeds
    assert isinstance(plan.search_alg, OptunaSearch) and plan.param_space["seeds"] == [0, 1]
    assert plan.num_samples == 3 and plan.total_trials == 6
    alg = plan.search_alg
    config = {**plan.param_space, **alg.suggest("t0")}
    assert [seed for _, seed in space.trial_members(config, [0, 1])] == [0, 1]
    alg.suggest("t1")
    # the group reports its members' mean (wssweep.trial.group_report); NaN when none had one
    alg.on_trial_complete("t0", {"val_gap": 2.0})
    alg.on_trial_complete("t1", {"val_gap": float("nan")})
    assert study_states(plan) == [("COMPLETE", 2.0), ("FAIL", None)]


def test_grid_is_cut_at_run_cap_in_order(tmp_path):
    full = space.grid_trials(load(tmp_path, GRID).spec)
    resolved = load(tmp_path, GRID + "run_cap: 5\n")
    # the cap keeps the first run_cap trials of the full order
    assert space.grid_trials(resolved.spec) == full[:5]
    # the plan runs exactly the capped trials
    assert space.build_search(resolved, tmp_path / "run").total_trials == 5
    # and describe's count agrees
    assert space.trial_count(resolved.spec) == 5


RANDOM = (
    "method: random\n"
    "run_cap: 7\n"
    "seeds: [0, 1, 2]\n"
    "parameters:\n"
    "  lr: {distribution: log_uniform_values, min: 0.001, max: 0.5}\n"
    "  warmup_steps: {distribution: int_uniform, min: 0, max: 3}\n"
    "  shrink: {distribution: q_uniform, min: 0.25, max: 1.0, q: 0.25}\n"
    "  warm.perturb: {distribution: uniform, min: 0.0, max: 0.2}\n"
    "  warm.intervention: {values: [none, shrink_perturb]}\n"
    "  optim.momentum: {value: 0.5}\n"
)


def test_random_honours_run_cap_and_runs_each_setting_on_every_seed(tmp_path):
    plan = space.build_search(load(tmp_path, RANDOM + UNFUSED), tmp_path / "run")
    # 7 // 3 = 2 drawn settings, times 3 seeds: 6 trials, within the cap
    assert plan.num_samples == 2 and plan.total_trials == 6 <= 7
    configs = generated_configs(plan)
    # Tune generates exactly the planned number of trials
    assert len(configs) == plan.total_trials
    identities = [space.trial_identity(c, [0, 1, 2]) for c in configs]
    by_setting: dict[str, list[int]] = {}
    for setting, seed in identities:
        by_setting.setdefault(repr(sorted(setting.items())), []).append(seed)
    # each drawn setting runs on every seed (constant_grid_search), not a new draw per seed
    assert sorted(by_setting.values()) == [[0, 1, 2], [0, 1, 2]]


def test_random_samples_stay_within_their_domains(tmp_path):
    resolved = load(tmp_path, RANDOM.replace("run_cap: 7", "run_cap: 120"))
    spec = resolved.spec
    plan = space.build_search(resolved, tmp_path / "run")
    settings = [space.trial_identity(c, spec.seeds)[0] for c in generated_configs(plan)]
    lrs = [s["lr"] for s in settings]
    # log-uniform rates stay in [min, max]
    assert all(0.001 <= v <= 0.5 for v in lrs)
    warmups = {s["warmup_steps"] for s in settings}
    # int_uniform draws integers, including W&B's inclusive max
    assert warmups == {0, 1, 2, 3} and all(isinstance(v, int) for v in warmups)
    shrinks = {s["shrink"] for s in settings}
    # q_uniform draws multiples of q within the range
    assert shrinks <= {0.25, 0.5, 0.75, 1.0} and len(shrinks) > 1
    # uniform stays in range
    assert all(0.0 <= s["warm.perturb"] <= 0.2 for s in settings)
    # categorical picks from its values
    assert {s["warm.intervention"] for s in settings} == {"none", "shrink_perturb"}
    # a constant stays fixed
    assert {s["optim.momentum"] for s in settings} == {0.5}
    again = space.build_search(resolved, tmp_path / "run")
    # the same spec draws the same settings (a fixed random state)
    assert [space.trial_identity(c, spec.seeds)[0] for c in generated_configs(again)] == settings


def test_int_uniform_max_is_inclusive():
    param = ParameterSpec.model_validate({"distribution": "int_uniform", "min": 0, "max": 2})
    domain = space.tune_domain(param)
    draws = set(domain.sample(size=300, random_state=np.random.RandomState(0)))
    # Tune's randint excludes its upper bound, so the domain is built to include W&B's max
    assert draws == {0, 1, 2}
    converted = OptunaSearch.convert_search_space({"x": domain})["x"]
    # Optuna sees the same inclusive range
    assert (converted.low, converted.high) == (0, 2)


BAYES = (
    "name: study-one\n"
    "method: bayes\n"
    "run_cap: 7\n"
    "seeds: [0, 1, 2]\n"
    "metric: {name: gap, goal: minimize}\n"
    "parameters:\n"
    "  lr: {distribution: log_uniform_values, min: 0.001, max: 0.5}\n"
    "  warm.intervention: {values: [none, shrink_perturb]}\n"
    "  warm.perturb: {value: 0.01}\n"
)


def test_bayes_repeats_each_suggestion_on_every_seed_with_study_in_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    plan = space.build_search(load(tmp_path, BAYES + UNFUSED), run_dir)
    # several seeds: a Repeater around Optuna, one repeat per seed, index set for the trainable
    assert isinstance(plan.search_alg, Repeater) and plan.search_alg.repeat == 3
    searcher = plan.search_alg.searcher
    # the Repeater wraps Ray's OptunaSearch
    assert isinstance(searcher, OptunaSearch)
    # whole groups of seeds only: 7 // 3 = 2 suggestions x 3 seeds
    assert plan.num_samples == plan.total_trials == 6
    db = run_dir.resolve() / space.OPTUNA_DB
    # the Optuna study lives in an sqlite file inside the run directory
    assert db.is_file() and searcher._storage.url == f"sqlite:///{db}"
    # the study is named after the sweep, and optimizes the spec's metric (the gap) on its
    # validation twin: test accuracy is only reported
    assert searcher._study_name == "study-one" and (plan.metric, plan.mode) == ("val_gap", "min")
    # param_space keeps only constants: the searcher carries the search space
    assert plan.param_space == {"setting": {"warm.perturb": 0.01}}
    configs = [plan.search_alg.suggest(f"t{i}") for i in range(3)]
    # one suggestion, repeated with indices 0, 1, 2 -> seeds 0, 1, 2
    assert [space.trial_identity({**plan.param_space, **c}, [0, 1, 2])[1]
            for c in configs] == [0, 1, 2]
    # all three repeats share the suggested rate
    assert len({c["setting"]["lr"] for c in configs}) == 1


def test_bayes_with_one_seed_needs_no_repeater(tmp_path):
    plan = space.build_search(load(tmp_path, BAYES.replace("[0, 1, 2]", "[4]")), tmp_path / "r")
    # a single seed: plain Optuna, the seed a constant of the trial config
    assert isinstance(plan.search_alg, OptunaSearch) and plan.param_space["seed"] == 4
    # every trial is its own suggestion, up to the cap
    assert plan.num_samples == 7


def study_states(plan) -> list[tuple[str, float | None]]:
    study = getattr(plan.search_alg, "searcher", plan.search_alg)._ot_study
    return [(t.state.name, t.value) for t in study.get_trials()]


def test_bayes_survives_diverged_trials(tmp_path):
    plan = space.build_search(load(tmp_path, BAYES.replace("[0, 1, 2]", "[0, 1]") + UNFUSED),
                              tmp_path / "run")
    alg = plan.search_alg
    for i in range(4):
        alg.suggest(f"t{i}")
    # a running gap of None (a diverged arm) does not reach Optuna as a value
    alg.on_trial_result("t0", {"val_gap": None, "training_iteration": 1})
    alg.searcher.on_trial_result("t0", {"val_gap": None, "training_iteration": 1})
    # first setting: one seed diverged, the other gave 2.0 -> Optuna gets the mean of the finite
    alg.on_trial_complete("t0", {"val_gap": None})
    alg.on_trial_complete("t1", {"val_gap": 2.0})
    # second setting: both seeds diverged (None and NaN) -> the study records a failed trial
    alg.on_trial_complete("t2", {"val_gap": float("nan")})
    alg.on_trial_complete("t3", {"val_gap": None})
    # the study holds one complete trial with the finite seed's value, and one failed trial
    assert study_states(plan) == [("COMPLETE", 2.0), ("FAIL", None)]
    # and the searcher keeps suggesting afterwards
    assert "setting" in alg.suggest("t4")


def test_hyperband_from_min_iter(tmp_path):
    spec = load(tmp_path, GRID + "metric: {name: gap}\n"
                "early_terminate: {type: hyperband, min_iter: 2, eta: 3}\n").spec
    sched = space.build_scheduler(spec)
    # W&B's hyperband over finished stages, on the spec's metric and goal
    # (the gap is compared on the validation split: val_gap)
    assert (sched._time_attr, sched._metric, sched._mode) == ("stages_done", "val_gap", "min")
    # bands at W&B's min_iter * eta**k, 100 of them as W&B makes; strict by default
    assert sched.bands[:4] == [2, 6, 18, 54] and len(sched.bands) == 100 and sched.strict


def test_hyperband_from_max_iter_and_s_follows_wandb_bands(tmp_path):
    spec = load(tmp_path, GRID + "metric: {name: warm/test_acc, goal: maximize}\n"
                "early_terminate: {type: hyperband, max_iter: 27, s: 2, eta: 3}\n").spec
    sched = space.build_scheduler(spec)
    # W&B's bands for max_iter 27, s 2, eta 3 are 27/9 and 27/3
    assert spec.early_terminate.bands() == [3, 9]
    # the scheduler stops at exactly those bands
    assert sched.bands == [3, 9]
    # maximize becomes mode max
    assert (sched._mode, sched._metric) == ("max", "warm/val_acc")


def test_hyperband_ignores_unusable_metrics_and_accepts_matching_tune_config(tmp_path):
    spec = load(tmp_path, GRID + "metric: {name: gap}\n"
                "early_terminate: {type: hyperband, min_iter: 1, eta: 2}\n").spec
    sched = space.build_scheduler(spec)
    trial = SimpleNamespace(trial_id="a")
    sched.on_trial_add(None, trial)
    # a None gap (diverged) neither crashes the scheduler nor counts as a result
    assert sched.on_trial_result(None, trial, {"stages_done": 1, "val_gap": None}) == \
        TrialScheduler.CONTINUE
    sched.on_trial_complete(None, trial, {"stages_done": 1, "val_gap": None})
    # TuneConfig(metric=, mode=) with the same values is accepted
    assert sched.set_search_properties("val_gap", "min") is True
    # a different metric is refused (Tune then reports the clash)
    assert sched.set_search_properties("saving", "max") is False


def test_searchers_and_schedulers_pickle(tmp_path):
    resolved = load(tmp_path, BAYES + "early_terminate: {type: hyperband, min_iter: 1}\n")
    plan = space.build_search(resolved, tmp_path / "run")
    # Tune snapshots the scheduler into the experiment state; it round-trips by name
    assert type(pickle.loads(pickle.dumps(plan.scheduler))) is type(plan.scheduler)
    checkpoint = tmp_path / "searcher.pkl"
    plan.search_alg.save(str(checkpoint))
    # the searcher (with its sqlite-backed study) saves too
    assert checkpoint.stat().st_size > 0


def test_trial_identity_reads_all_three_layouts():
    seeds = [7, 8, 9]
    # grid: the whole trial under "trial"
    assert space.trial_identity({"trial": {"setting": {"lr": 0.1}, "seed": 8}}, seeds) == (
        {"lr": 0.1}, 8)
    # random (and bayes with one seed): setting and seed side by side
    assert space.trial_identity({"setting": {"lr": 0.2}, "seed": 9}, seeds) == ({"lr": 0.2}, 9)
    # bayes with several seeds: the repeat index picks the seed
    assert space.trial_identity({"setting": {"lr": 0.3}, "__trial_index__": 2}, seeds) == (
        {"lr": 0.3}, 9)
    setting, _ = space.trial_identity({"setting": {"n": np.int64(3)}, "seed": 7}, seeds)
    # NumPy scalars come back as plain Python numbers
    assert type(setting["n"]) is int


def test_describe_mentions_count_resources_and_dropped_gpu(tmp_path):
    resolved = load(tmp_path, RANDOM + "resources: {cpus_per_trial: 0.5, trials_per_gpu: 4}\n",
                    ["protocol.stop.max_epochs=3"])
    text = space.describe(resolved, num_cpus=2, num_gpus=0)
    # the trial count with how it comes about
    assert "Trials: 6 (2 settings sampled at random x 3 seeds; run_cap 7)" in text
    # each parameter's resolved domain: int_uniform ...
    assert "integer, uniform in [0, 3] (both ends included)" in text
    # ... and log_uniform_values
    assert "log-uniform in [0.001, 0.5]" in text
    # the resources each trial gets
    assert "0.5 CPU, 0.25 GPU" in text
    # the override applied to the experiment
    assert "--set protocol.stop.max_epochs=3" in text
    # with no GPU in the cluster, the GPU request is said to be dropped
    assert "GPU request will be dropped" in text
    # and how many trials fit at once on the CPUs
    assert "up to 4 on this cluster" in text
    # with a GPU there is no such note
    assert "dropped" not in space.describe(resolved, num_cpus=2, num_gpus=1)
    # nor when the cluster is not known
    assert "dropped" not in space.describe(resolved)


def test_describe_grid_and_resources_without_gpu(tmp_path):
    text = space.describe(load(tmp_path, GRID + "run_cap: 5\n"))
    # a capped grid says so
    assert "Trials: 5 (6 settings x 2 seeds, cut to run_cap 5)" in text
    # no GPU requested
    assert "1 CPU, no GPU" in text


def test_trial_resources_drop_the_gpu_only_without_one(tmp_path):
    res = load(tmp_path, "method: grid\nparameters: {lr: {value: 0.1}}\n"
               "resources: {cpus_per_trial: 2, trials_per_gpu: 4}\n").spec.resources
    request = (res.cpus_per_trial, res.trials_per_gpu)
    # a quarter of a GPU each where the cluster has GPUs
    assert space.trial_resources(*request, num_gpus=1) == {"cpu": 2.0, "gpu": 0.25}
    # or where it is not known yet
    assert space.trial_resources(*request) == {"cpu": 2.0, "gpu": 0.25}
    # none where it has no GPU: the trials would otherwise stay pending forever
    assert space.trial_resources(*request, num_gpus=0) == {"cpu": 2.0}


@pytest.mark.parametrize("text", [GRID, RANDOM, BAYES])
def test_count_matches_plan(tmp_path, text):
    resolved = load(tmp_path, text)
    # describe's count and the plan's count are the same number
    assert space.trial_count(resolved.spec) == space.build_search(
        resolved, tmp_path / "run").total_trials


def test_default_values_sit_inside_the_domain():
    param = ParameterSpec.model_validate(
        {"distribution": "q_uniform", "min": 0.25, "max": 1.0, "q": 0.25})
    # a q_uniform parameter's single-trial value is on its grid
    assert math.isclose(param.default_value() / 0.25, round(param.default_value() / 0.25))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweeps_plan_and_describe(tmp_path, path):
    resolved = load_sweep_spec(path)
    plan = space.build_search(resolved, tmp_path / "run")
    # each shipped sweep builds a plan with at least one trial
    assert plan.total_trials >= 1
    # and describe states that same count (a search adding seeds until decided: its first
    # seeds' cap, and at most the cap times max / min)
    text = space.describe(resolved)
    seeds = resolved.spec.seed_plan
    if seeds is not None and resolved.spec.method != "grid":
        assert f"run_cap {plan.total_trials} on the first {seeds.min} seeds" in text
        assert f"Trials: at most {plan.total_trials * seeds.max // seeds.min} " in text
    else:
        assert f"Trials: {plan.total_trials} " in text


REPEATS = (
    "method: grid\n"
    "parameters:\n"
    "  warm.intervention: {values: [none, shrink_perturb]}\n"
    "  shrink: {values: [0.3, 0.6]}\n"
    "  warm.perturb: {values: [0.0, 0.1]}\n"
    "  warm.noise: {values: [fresh_init, gaussian]}\n"
    "seeds: [0, 1]\n"
)


def test_grid_runs_each_distinct_experiment_once(tmp_path):
    resolved = load(tmp_path, REPEATS)
    settings = space.grid_settings(resolved.spec, resolved.experiment)
    # none: shrink, perturb, noise unread (1); S&P: 2 shrinks x (no noise + 2 conventions) (6)
    assert len(settings) == 1 + 2 * 3
    # the first of each repeated group is the one kept, in spec order
    assert settings[0] == {"warm.intervention": "none", "shrink": 0.3, "warm.perturb": 0.0,
                           "warm.noise": "fresh_init"}
    # the count, the Tune grid and validate all agree on it
    assert space.trial_count(resolved.spec, resolved.experiment) == 14
    assert space.build_search(resolved, tmp_path).total_trials == 14
    assert "9 of the 16 combinations dropped as repeats" in space.describe(resolved)


def test_a_swept_mapping_is_merged_into_its_section(tmp_path):
    # W&B lets a value be a mapping; here it is merged into the experiment's section of that
    # name, so baselines that differ in several keys at once are one axis of a grid
    path = tmp_path / "spec.yaml"
    path.write_text("experiment: configs/online_mnist1d_conv1d_sgdm.yaml\n"  # granularity: slice
                    "method: grid\n"
                    "parameters:\n"
                    "  warm:\n"
                    "    values:\n"
                    "      - {intervention: none, keep_optimizer: false}\n"
                    "      - {intervention: l2_init, l2_coef: 1.0e-3}\n"
                    "seeds: [0]\n")
    resolved = load_sweep_spec(path)
    settings = space.grid_settings(resolved.spec, resolved.experiment)
    assert settings == [{"warm": {"intervention": "none", "keep_optimizer": False}},
                        {"warm": {"intervention": "l2_init", "l2_coef": 1e-3}}]
    cfg = experiment_from_mapping(resolved.experiment, setting=settings[1])
    # the mapping's keys are set; the section's other keys (the experiment's) are kept
    assert (cfg.warm.intervention, cfg.warm.l2_coef, cfg.warm.granularity) == (
        "l2_init", 1e-3, "slice")
    # a bad key inside a mapping is named by its full path
    path.write_text(EXPERIMENT + "parameters:\n  warm: {values: [{l2_coff: 1.0e-3}]}\n")
    with pytest.raises(InputError) as caught:
        load_sweep_spec(path)
    assert caught.value.key == "parameters.warm.l2_coff"
