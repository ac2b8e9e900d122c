"""W&B's semantics as the search runs them: each distribution's transform and q rounding, grid
enumeration, nested keys, bayes over the underlying uniform variable, hyperband at W&B's bands by
W&B's rule, metric.target, metric.impute, searches without run_cap, the keys that do not apply.

The expected values are computed as wandb/sweeps computes them (src/sweeps/params.py,
hyperband_stopping.py, bayes_search.py), with SciPy where W&B uses it.
"""

from __future__ import annotations

import math
import pickle
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats as stats
from ray.tune.experiment import Experiment
from ray.tune.schedulers import TrialScheduler

from wssweep import space
from wssweep.spec import U_EDGE, ParameterSpec, load_sweep_spec

EXPERIMENT = "experiment: configs/batch_digits_logreg.yaml\n"


def load(tmp_path: Path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(EXPERIMENT + text)
    return load_sweep_spec(path, preflight=False)


def param(**config) -> ParameterSpec:
    return ParameterSpec.model_validate(config)


def wandb_ppf(c: dict, u: float) -> float:
    """W&B's HyperParameter.ppf (params.py), distribution by distribution."""
    d, lo, hi = c["distribution"], c.get("min"), c.get("max")
    mu, sigma, a, b = c.get("mu", 0.0), c.get("sigma", 1.0), c.get("a", 1.0), c.get("b", 1.0)
    x = {
        "uniform": lambda: stats.uniform.ppf(u, lo, hi - lo),
        "q_uniform": lambda: stats.uniform.ppf(u, lo, hi - lo),
        "log_uniform": lambda: np.exp(stats.uniform.ppf(u, lo, hi - lo)),
        "q_log_uniform": lambda: np.exp(stats.uniform.ppf(u, lo, hi - lo)),
        "log_uniform_values": lambda: np.exp(stats.uniform.ppf(u, np.log(lo),
                                                               np.log(hi) - np.log(lo))),
        "q_log_uniform_values": lambda: np.exp(stats.uniform.ppf(u, np.log(lo),
                                                                 np.log(hi) - np.log(lo))),
        "inv_log_uniform": lambda: np.exp(-stats.uniform.ppf(1 - u, lo, hi - lo)),
        "inv_log_uniform_values": lambda: np.exp(-stats.uniform.ppf(
            1 - u, -np.log(hi), -np.log(lo) + np.log(hi))),
        "normal": lambda: stats.norm.ppf(u, loc=mu, scale=sigma),
        "q_normal": lambda: stats.norm.ppf(u, loc=mu, scale=sigma),
        "log_normal": lambda: stats.lognorm.ppf(u, s=sigma, scale=np.exp(mu)),
        "q_log_normal": lambda: stats.lognorm.ppf(u, s=sigma, scale=np.exp(mu)),
        "beta": lambda: stats.beta.ppf(u, a=a, b=b),
        "q_beta": lambda: stats.beta.ppf(u, a=a, b=b),
    }[d]()
    if d.startswith("q_"):
        q = c.get("q", 1.0)
        x = np.round(x / q) * q
        return int(x) if isinstance(q, int) else float(x)
    return float(x)


DISTRIBUTIONS = [
    {"distribution": "uniform", "min": -2.0, "max": 3.0},
    {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
    {"distribution": "q_uniform", "min": 0.3, "max": 7.9, "q": 0.5},
    {"distribution": "log_uniform", "min": -5.0, "max": 2.0},
    {"distribution": "q_log_uniform", "min": -2.3, "max": 4.6, "q": 1},
    {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
    {"distribution": "q_log_uniform_values", "min": 32, "max": 256, "q": 8},
    {"distribution": "inv_log_uniform", "min": -46.0, "max": 34.5},
    {"distribution": "inv_log_uniform_values", "min": 1e-5, "max": 0.1},
    {"distribution": "normal", "mu": 2, "sigma": 4},
    {"distribution": "q_normal", "mu": 4, "sigma": 2, "q": 0.1},
    {"distribution": "log_normal", "mu": 2, "sigma": 3},
    {"distribution": "q_log_normal", "mu": 2, "sigma": 2, "q": 10},
    {"distribution": "beta", "a": 2, "b": 5},
    {"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1},
]


@pytest.mark.parametrize("config", DISTRIBUTIONS, ids=lambda c: c["distribution"])
def test_each_distribution_is_wandbs_transform_of_a_uniform_variable(config):
    p = param(**config)
    for u in (0.05, 0.3, 0.5, 0.77, 0.95):
        # the value at quantile u is W&B's, q rounding included
        assert p.ppf(u) == pytest.approx(wandb_ppf(config, u), rel=1e-9, abs=1e-12)
    # an integer q gives integers, as W&B's astype(int); a float q floats
    if "q" in config:
        assert isinstance(p.ppf(0.5), int) == isinstance(config["q"], int)


def test_q_rounding_and_int_inference_follow_wandb():
    # min and max as integers: int_uniform; a float among them: uniform (W&B's inference)
    assert param(min=0, max=5).distribution == "int_uniform"
    assert param(min=0, max=5.0).distribution == "uniform"
    # q defaults to 1.0: floats on the integers
    assert param(distribution="q_uniform", min=0.5, max=7.5).ppf(0.5) == 4.0
    # bounds off the q grid are fine (W&B rounds whatever it draws)
    assert param(distribution="q_uniform", min=0.1, max=0.75, q=0.25).candidates() == [0.0, 0.75]
    # a q so small that value / q overflows keeps the value (W&B would give inf)
    assert param(distribution="q_uniform", min=0.25, max=0.75, q=1e-320).ppf(0.5) == 0.5
    # categorical with probabilities: the value whose cumulative share passes u
    p = param(values=["a", "b", "c"], probabilities=[0.5, 0.0, 0.5])
    assert [p.ppf(u) for u in (0.1, 0.49, 0.5, 0.99)] == ["a", "a", "c", "c"]


def test_grid_enumerates_int_and_quantized_ranges_as_wandb(tmp_path):
    resolved = load(tmp_path, "method: grid\nparameters:\n"
                    "  warmup_steps: {distribution: int_uniform, min: 1, max: 3}\n"
                    "  shrink: {distribution: q_uniform, min: 0, max: 1, q: 0.25}\n")
    settings = space.grid_settings(resolved.spec)
    # int_uniform: min .. max; q_uniform: numpy.arange(min, max, q), max left out as in W&B
    assert sorted({s["warmup_steps"] for s in settings}) == [1, 2, 3]
    assert sorted({s["shrink"] for s in settings}) == [0.0, 0.25, 0.5, 0.75]
    assert len(settings) == 12 and space.trial_count(resolved.spec) == 12


def test_nested_parameters_are_dotted_keys(tmp_path):
    resolved = load(tmp_path, "method: grid\nparameters:\n"
                    "  optim:\n    parameters:\n      momentum: {values: [0.0, 0.5]}\n"
                    "      name: {value: sgd}\n  lr: {values: [0.1]}\n")
    # W&B nests them in the run's config; here each is the experiment's dotted key
    assert list(resolved.spec.parameters) == ["optim.momentum", "optim.name", "lr"]
    cfg = resolved.config_for(space.grid_settings(resolved.spec)[1], seed=0)
    assert (cfg.optim.momentum, cfg.optim.name, cfg.lr) == (0.5, "sgd", 0.1)


RANDOM_ALL = (
    "method: random\nrun_cap: 40\nparameters:\n"
    "  lr: {distribution: log_normal, mu: -4, sigma: 1}\n"
    "  shrink: {distribution: beta, a: 2, b: 5}\n"
    "  warmup_steps: {distribution: q_log_uniform_values, min: 1, max: 1000, q: 1}\n"
    "  warm.perturb: {distribution: inv_log_uniform_values, min: 0.001, max: 0.1}\n"
    "  optim.weight_decay: {values: [0.0, 0.1], probabilities: [0.25, 0.75]}\n"
)


def generated_settings(plan, seeds=(0,)) -> list[dict]:
    # Tune turns num_samples -1 (until stopped) into sys.maxsize
    experiment = Experiment("t", run=lambda config: None, config=plan.param_space,
                            num_samples=sys.maxsize if plan.num_samples == -1
                            else plan.num_samples)
    plan.search_alg.add_configurations([experiment])
    out = []
    while len(out) < 60 and (trial := plan.search_alg.next_trial()) is not None:
        out.append(space.trial_identity(trial.config, list(seeds))[0])
    return out


def test_random_draws_every_distribution_within_its_range_reproducibly(tmp_path):
    resolved = load(tmp_path, RANDOM_ALL)
    settings = generated_settings(space.build_search(resolved, tmp_path / "run"))
    assert len(settings) == 40
    params = resolved.spec.parameters
    for key in ("lr", "shrink", "warmup_steps", "warm.perturb"):
        lo, hi = params[key].candidates()
        # every draw lies between the two ends validation tried against the experiment
        assert all(lo <= s[key] <= hi for s in settings), key
    # q: 1 gives integers; the probabilities weight the categories
    assert all(isinstance(s["warmup_steps"], int) for s in settings)
    assert sum(s["optim.weight_decay"] == 0.1 for s in settings) > 20
    # the same spec draws the same settings
    assert generated_settings(space.build_search(resolved, tmp_path / "run2")) == settings


BAYES_ALL = (
    "name: b\nmethod: bayes\nrun_cap: 6\nmetric: {name: gap}\nparameters:\n"
    "  lr: {distribution: log_normal, mu: -4, sigma: 1}\n"
    "  warmup_steps: {min: 0, max: 5}\n"
    "  optim.betas: {values: [[0.9, 0.999], [0.5, 0.9], [0.9, 0.999]]}\n"
)


def test_bayes_samples_the_uniform_variable_and_transforms_it_reproducibly(tmp_path):
    resolved = load(tmp_path, BAYES_ALL)
    plan = space.build_search(resolved, tmp_path / "run")
    alg = plan.search_alg
    configs = [alg.suggest(f"t{i}") for i in range(4)]
    trials = alg._ot_study.get_trials(deepcopy=False)
    lr = resolved.spec.parameters["lr"]
    for config, trial in zip(configs, trials, strict=True):
        u = trial.params["setting/lr"]
        # Optuna's TPE sees the uniform variable behind the draw ...
        assert U_EDGE <= u <= 1 - U_EDGE
        # ... and the trial gets its transform
        assert config["setting"]["lr"] == pytest.approx(lr.ppf(u))
        # an integer range is Optuna's integer; list values are chosen by position
        assert trial.params["setting/warmup_steps"] == config["setting"]["warmup_steps"]
        assert config["setting"]["optim.betas"] == [[0.9, 0.999], [0.5, 0.9], [0.9, 0.999]][
            trial.params["setting/optim.betas"]]
    # values Optuna would take as one (true and 1) are chosen by position too
    spec = BAYES_ALL.replace("optim.betas: {values: [[0.9, 0.999], [0.5, 0.9], [0.9, 0.999]]}",
                             "model.bias: {values: [true, false]}\n  warm.keep_optimizer: "
                             "{values: [true, false]}")
    assert space._plain_choices([True, False]) and not space._plain_choices([True, 1])
    assert load(tmp_path, spec).spec.parameters["model.bias"].values == [True, False]
    # the same spec (a fresh study) suggests the same settings
    again = space.build_search(resolved, tmp_path / "run2").search_alg
    assert [again.suggest(f"t{i}") for i in range(4)] == configs


def test_bayes_imputes_a_failed_trial_as_wandb(tmp_path):
    def searcher(impute: str):
        spec = BAYES_ALL.replace("metric: {name: gap}", f"metric: {{name: gap, impute: {impute}}}")
        alg = space.build_search(load(tmp_path, spec), tmp_path / impute).search_alg
        for i in range(3):
            alg.suggest(f"t{i}")
        for step, value in enumerate((3.0, 1.0)):  # t0 reports 3 then 1, and finishes at 1
            alg.on_trial_result("t0", {"val_gap": value, "training_iteration": step})
        alg.on_trial_complete("t0", {"val_gap": 1.0})
        for step, value in enumerate((5.0, 2.0)):  # t1 reports 5 then 2, then diverges
            alg.on_trial_result("t1", {"val_gap": value, "training_iteration": step})
        alg.on_trial_complete("t1", {"val_gap": None})
        alg.on_trial_complete("t2", {"val_gap": float("nan")})  # nothing reported
        trials = alg._ot_study.get_trials(deepcopy=False)
        # the study marks the imputed values
        assert [t.user_attrs.get("imputed") for t in trials] == [None, impute, impute]
        return [t.value for t in trials]

    # worst: the worst value any finished trial reached (here t1's own 5), for every failure
    assert searcher("worst") == [1.0, 5.0, 5.0]
    # best: the failed trial's best; latest: its last; 0 where it reported none (W&B's 0)
    assert searcher("best") == [1.0, 2.0, 0.0]
    assert searcher("latest") == [1.0, 2.0, 0.0]


def test_metric_target_ends_the_sweep_once_a_finished_trial_reaches_it(tmp_path):
    resolved = load(tmp_path, "method: grid\nmetric: {name: gap, target: 0.5}\n"
                    "parameters: {lr: {values: [0.1, 0.3]}}\n")
    stopper = space.build_search(resolved, tmp_path / "run").stopper
    # a running value below the target does not end it; a finished trial's does (≤ to minimize)
    assert stopper("a", {"val_gap": 0.1}) is False and not stopper.stop_all()
    stopper("b", {"val_gap": 0.7, "final": True})
    assert not stopper.stop_all()
    stopper("c", {"val_gap": 0.5, "final": True})
    assert stopper.stop_all()
    # described, and absent without a target
    assert "the sweep ends once a finished trial's val_gap is at most 0.5" in space.describe(
        resolved)
    assert space.build_stopper(load(tmp_path, "method: grid\nparameters: {lr: {value: 0.1}}\n"
                                    ).spec) is None


def drive(sched, trial_id: str, history: list[float]) -> list[str]:
    """Report ``history`` (one value per finished stage) for ``trial_id``; the decisions."""
    trial = SimpleNamespace(trial_id=trial_id)
    return [sched.on_trial_result(None, trial, {"stages_done": i + 1, "val_gap": v})
            for i, v in enumerate(history)]


def hyperband(tmp_path, early_terminate: str):
    spec = load(tmp_path, "method: grid\nmetric: {name: gap}\nparameters: {lr: {values: [0.1]}}\n"
                f"early_terminate: {{type: hyperband, {early_terminate}}}\n").spec
    return space.build_scheduler(spec)


def test_hyperband_stops_as_wandbs_test_5runs_band1_stop_2(tmp_path):
    # wandb/sweeps tests/test_hyperband_stopping.py::test_5runs_band1_stop_2: bands 1 and 2
    sched = hyperband(tmp_path, "max_iter: 5, eta: 2, s: 2")
    assert sched.bands == [1, 2]
    drive(sched, "a", [10, 9])
    drive(sched, "e", [10, 6, 6])
    runs = {"b": [10, 10], "c": [10, 8, 8], "d": [10, 7, 7]}
    for name, history in runs.items():
        drive(sched, name, history[:-1])
    last = {name: drive(sched, name, h)[-1] for name, h in runs.items()}
    # W&B stops b only
    assert last == {"b": "STOP", "c": "CONTINUE", "d": "CONTINUE"}


def test_hyperband_rule_matches_wandbs_test_eta_3():
    # wandb/sweeps tests/test_hyperband_stopping.py::test_eta_3: bands 1 and 3, not strict
    runs = {"a": [9, 8], "b": [11, 11], "c": [10, 8, 3], "d": [10, 7, 4], "e": [10, 6, 6]}
    histories = [{i + 1: v for i, v in enumerate(h)} for h in runs.values()]
    stops = [space.hyperband_stops(h, histories, [1, 3], 3, strict=False)
             for h in histories[1:]]  # a has finished
    assert stops == [True, False, False, True]  # b and e, as W&B


def test_hyperband_compares_at_wandbs_bands_not_asha_rungs(tmp_path):
    # max_iter 100, s 3: W&B's bands 3, 11, 33 (ASHA's rungs would be 3, 9, 27, 81)
    sched = hyperband(tmp_path, "max_iter: 100, s: 3")
    assert sched.bands == [3, 11, 33]
    drive(sched, "good", [1.0] * 12)
    # a trial as good at stage 3, worse from stage 4: judged at band 3 until stage 11
    decisions = drive(sched, "late", [1.0, 1.0, 1.0] + [5.0] * 9)
    assert decisions.index("STOP") == 10  # its 11th stage, the band 11
    # not strict: the best value so far is compared, so the early 1.0 keeps it going
    loose = hyperband(tmp_path, "max_iter: 100, s: 3, strict: false")
    drive(loose, "good", [1.0] * 12)
    assert "STOP" not in drive(loose, "late", [1.0, 1.0, 1.0] + [5.0] * 9)


def test_hyperband_skips_a_stage_without_a_usable_metric(tmp_path):
    sched = hyperband(tmp_path, "min_iter: 1, eta: 2")
    trial = SimpleNamespace(trial_id="x")
    assert sched.on_trial_result(None, trial, {"stages_done": 1, "val_gap": math.nan}) == \
        TrialScheduler.CONTINUE


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_a_search_without_run_cap_runs_until_stopped(tmp_path, method):
    resolved = load(tmp_path, f"method: {method}\nmetric: {{name: gap}}\nseeds: [0, 1]\n"
                    "resources: {fuse: false}\nparameters: {lr: {min: 0.01, max: 0.5}}\n")
    plan = space.build_search(resolved, tmp_path / "run")
    # Tune's num_samples -1: no end; no count to expect
    assert plan.num_samples == -1 and plan.total_trials is None
    assert space.trial_count(resolved.spec) is None
    text = space.describe(resolved)
    assert "Trials: until stopped" in text and "wssweep stop RUN_DIR" in text
    if method == "random":
        # the generator keeps drawing past any cap
        assert len(generated_settings(plan, seeds=(0, 1))) == 60


def test_keys_that_do_not_apply_are_noted_and_project_sets_wandb(tmp_path):
    resolved = load(tmp_path, "method: grid\nprogram: train.py\ncommand: [python, train.py]\n"
                    "controller: {type: local}\nproject: p\nentity: e\nwandb: {entity: mine}\n"
                    "parameters: {lr: {values: [0.1]}}\n")
    spec = resolved.spec
    # project sets wandb.project; wandb.entity given in the spec wins over entity
    assert (spec.wandb.project, spec.wandb.entity) == ("p", "mine")
    text = space.describe(resolved)
    for line in ("note: program: ignored (wssweep runs its experiment, not a script)",
                 "note: command: ignored", "note: controller: ignored", "note: project: sets",
                 "note: entity: ignored, the spec sets wandb.entity"):
        assert line in text


def test_new_domains_and_the_bayes_space_pickle(tmp_path):
    # Tune pickles param_space (with its W&B domains) and saves the searcher (with its space)
    plan = space.build_search(load(tmp_path, RANDOM_ALL), tmp_path / "run")
    restored = pickle.loads(pickle.dumps(plan.param_space))
    assert type(restored["setting"]["lr"]) is type(plan.param_space["setting"]["lr"])
    alg = space.build_search(load(tmp_path, BAYES_ALL), tmp_path / "run2").search_alg
    first = alg.suggest("t0")
    alg.save(str(tmp_path / "searcher.pkl"))
    again = space.build_search(load(tmp_path, BAYES_ALL), tmp_path / "run3").search_alg
    again.restore(str(tmp_path / "searcher.pkl"))
    # the restored searcher knows its trial and goes on suggesting
    assert "t0" in again._ot_trials and "setting" in again.suggest("t1") and first
