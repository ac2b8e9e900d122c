"""One trial end to end: every protocol, arm, intervention and model on small data."""

import math

import pytest
import torch
from torch import nn

from wssweep.config import ExperimentConfig
from wssweep.errors import InputError
from wssweep.science.experiment import derive_seed, run_trial

# A few epochs on a few hundred digits: enough to exercise every path in well under a second.
SMALL = {
    "data": {"name": "digits", "train_size": 240, "test_size": 120},
    "model": {"name": "mlp", "width": 16},
    "protocol": {"kind": "online", "chunks": 3, "stop": {"max_epochs": 3}},
    "optim": {"name": "adam", "batch_size": 32},
    "lr": 0.01,
}


def config(**changes) -> ExperimentConfig:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in SMALL.items()}
    for key, value in changes.items():
        section, _, leaf = key.partition("__")
        if leaf:
            merged.setdefault(section, {})[leaf] = value
        else:
            merged[section] = value
    return ExperimentConfig.model_validate(merged)


def check_metrics(m: dict, stages: int) -> None:
    # both arms trained every stage and report finite percent accuracies
    assert len(m["warm/stage_test_acc"]) == len(m["cold/stage_test_acc"]) == stages
    assert 0 <= m["warm/test_acc"] <= 100 and 0 <= m["cold/test_acc"] <= 100
    # the gap is the paired difference, in points
    assert math.isclose(m["gap"], m["cold/test_acc"] - m["warm/test_acc"])
    # the saving is cold steps over warm steps after the first stage
    assert math.isclose(m["saving"], m["cold/steps"] / m["warm/steps"])


@pytest.mark.parametrize("kind", ["batch", "online", "active"])
def test_each_protocol_runs(kind):
    m = run_trial(config(protocol__kind=kind))
    check_metrics(m, 2 if kind == "batch" else 3)
    # stage 1 is shared: both arms report the same first stage
    assert m["warm/stage_test_acc"][0] == m["cold/stage_test_acc"][0]


def test_active_protocol_picks_chunks_of_the_planned_size():
    m = run_trial(config(protocol__kind="active"))
    # 240 examples, 24 held out for validation: 216 in 3 chunks, the pool grows 72, 144, 216
    assert m["warm/stage_n_train"] == m["cold/stage_n_train"] == [72, 144, 216]


@pytest.mark.parametrize(
    "warm",
    [
        {"intervention": "none"},
        {"intervention": "none", "keep_optimizer": True},
        {"intervention": "shrink_perturb", "noise": "fresh_init", "perturb": 0.1},
        {"intervention": "shrink_perturb", "noise": "gaussian", "perturb": 0.01},
        {"intervention": "dash"},
        {"intervention": "dash", "granularity": "filter"},
        {"intervention": "reset_last_layer"},
        {"intervention": "l2_init"},
    ],
)
def test_each_warm_arm_runs(warm):
    check_metrics(run_trial(config(warm=warm)), 3)


def test_interventions_change_the_warm_arm_but_not_the_cold_one():
    plain = run_trial(config())
    shrunk = run_trial(config(warm={"intervention": "shrink_perturb"}, shrink=0.3))
    # the cold arm does not depend on the warm arm's intervention
    assert plain["cold/stage_test_acc"] == shrunk["cold/stage_test_acc"]
    # the warm arm does (after the shared first stage)
    assert plain["warm/stage_train_acc"][1:] != shrunk["warm/stage_train_acc"][1:]


@pytest.mark.parametrize(
    "model",
    [{"name": "logreg"}, {"name": "mlp", "activation": "tanh", "depth": 3},
     {"name": "conv1d"}, {"name": "resnet18"}],
)
def test_each_model_runs(model):
    if model["name"] == "conv1d":
        data = {"name": "mnist1d", "train_size": 240, "test_size": 120}
    elif model["name"] == "resnet18":
        data = {"name": "synthetic_cifar", "num_samples": 96}
    else:
        data = SMALL["data"]
    m = run_trial(config(model=model, data=data))
    # every model trains both arms through every stage (a ResNet-18 on 72 images in 3 epochs
    # need not learn: this checks that it runs, not how well)
    assert len(m["warm/stage_test_acc"]) == len(m["cold/stage_test_acc"]) == 3
    assert all(0 <= a <= 100 for arm in ("warm", "cold") for a in m[f"{arm}/stage_test_acc"])
    if not m["diverged"]:
        check_metrics(m, 3)


@pytest.mark.parametrize("name", ["sgd", "adam", "gi_adam"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "two_regime"])
def test_optimizers_and_schedules_with_warmup(name, schedule):
    m = run_trial(config(optim={"name": name, "schedule": schedule, "batch_size": 32,
                                "momentum": 0.9 if name == "sgd" else 0.0,
                                "decay_steps": 10, "switch_step": 5},
                         protocol={"kind": "online", "chunks": 3, "stop": {"max_epochs": 10}},
                         warmup_steps=4, lr=0.1 if name == "sgd" else 0.03))
    check_metrics(m, 3)


def test_catapult_warmup_records_its_search():
    m = run_trial(config(optim={"name": "sgd", "warmup_init": "catapult", "batch_size": 32},
                         warmup_steps=20, lr=0.5))
    # the catapult search ran at every stage and cost a handful of forward passes each
    assert len(m["warm/stage_catapult_lr"]) == 3
    assert all(0 < fp < 60 for fp in m["warm/stage_catapult_forward_passes"])


def test_meta_horizon_picks_the_warm_rate_and_pays_for_it():
    m = run_trial(config(meta_horizon=5, warm={"meta_lr_min": 1e-4, "meta_lr_max": 1.0,
                                               "meta_candidates": 5}))
    grid = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    # every warm stage after the first trained at a rate from the candidate grid
    assert all(any(math.isclose(lr, g) for g in grid) for lr in m["warm/stage_lr"][1:])
    # the candidates' steps count as compute the warm start spent: 5 candidates x 5 steps x 2
    assert m["warm/meta_steps"] == 50
    # lr_chosen summarises the choices; it is absent when the horizon is off
    assert m["lr_chosen"] is not None and run_trial(config())["lr_chosen"] is None


def test_same_seed_same_numbers_and_seeds_differ():
    a, b = run_trial(config()), run_trial(config())
    c = run_trial(config(seed=1))
    drop = [k for k in a if "seconds" in k]
    strip = [{k: v for k, v in m.items() if k not in drop} for m in (a, b, c)]
    # bit-identical on CPU with one thread
    assert strip[0] == strip[1]
    # another seed is another split, init and batch order
    assert strip[0] != strip[2]


def test_divergence_is_a_result_not_an_exception():
    m = run_trial(config(lr=1e5, optim={"name": "sgd"}, model={"name": "mlp", "depth": 3}))
    # the trial is marked diverged, and the gap is not reported as a number
    assert m["diverged"] is True and m["gap"] is None


def test_nqm_kind_runs_without_a_network():
    m = run_trial(ExperimentConfig.model_validate(
        {"kind": "nqm", "meta_horizon": 5, "nqm": {"d": 50, "total_steps": 200, "every": 50}}))
    # the NQM reports its long-horizon loss and the rate it chose
    assert math.isfinite(m["nqm/final_loss"]) and m["lr_chosen"] > 0


@pytest.mark.parametrize("method", ["online", "greedy", "optimal_schedule"])
def test_a_validated_nqm_spec_runs(tmp_path, method):
    from wssweep.spec import load_sweep_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("experiment: configs/nqm.yaml\nmethod: grid\nmetric: {name: nqm/final_loss}\n"
                    "parameters: {meta_horizon: {values: [1, 20]}}\n")
    resolved = load_sweep_spec(spec, [f"nqm.method={method}", "nqm.iters=5"], smoke=True)
    for horizon in (1, 20):
        # every setting validate accepts runs to its metrics, the horizon as validated
        m = run_trial(resolved.config_for({"meta_horizon": horizon}, seed=0))
        assert math.isfinite(m["nqm/final_loss"]) and m["lr_chosen"] > 0, (method, horizon)


def test_derived_seeds_are_stable_and_distinct():
    # the same purpose gives the same seed; different purposes differ
    assert derive_seed(0, "batches", 1) == derive_seed(0, "batches", 1)
    assert len({derive_seed(0, "batches", j) for j in range(10)}) == 10


# --- your own model and data, defined only here, plugged in by import path ---------------------

def tiny_net(input_shape, num_classes, hidden: int = 8) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def blobs(n: int = 200, classes: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(classes, 5, generator=g)
    y = torch.arange(n) % classes
    x = centres[y] + torch.randn(n, 5, generator=g)
    return x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :]


def test_user_model_and_dataset_by_import_path():
    m = run_trial(config(
        model={"name": "custom", "factory": "tests.science.test_experiment:tiny_net",
               "kwargs": {"hidden": 12}},
        data={"name": "custom", "loader": "tests.science.test_experiment:blobs",
              "kwargs": {"n": 300}},
        warm={"intervention": "dash"}))
    check_metrics(m, 3)
    # separable blobs are learnt by the user's network in both arms
    assert m["cold/test_acc"] > 80 and m["warm/test_acc"] > 80


def test_bad_import_path_is_an_input_error_naming_the_key():
    with pytest.raises(InputError, match="model.factory"):
        run_trial(config(model={"name": "custom", "factory": "tests.nowhere:net"}))


def test_progress_records_are_monotone_and_end_at_the_final_gap():
    records = []
    m = run_trial(config(), progress=records.append)
    stages = [r for r in records if r["event"] == "stage"]
    epochs = [r for r in records if r["event"] == "epoch"]
    # one stage record per stage, counting the stages both arms have finished
    assert [r["stages_done"] for r in stages] == [1, 2, 3]
    # the epoch counter runs over both arms without going back
    assert [r["step"] for r in epochs] == list(range(1, len(epochs) + 1))
    # every epoch of every stage and arm was reported (stage 1 once: it is shared)
    assert len(epochs) == sum(m["warm/stage_epochs"]) + sum(m["cold/stage_epochs"][1:])
    # the last stage record carries the trial's final gap
    assert stages[-1]["gap"] == m["gap"]


def test_cold_at_chosen_rate_trains_a_third_arm_at_the_warm_rates():
    m = run_trial(config(meta_horizon=5, cold_at_chosen_lr=True,
                         warm={"meta_lr_min": 1e-4, "meta_lr_max": 1.0, "meta_candidates": 5}))
    # the third arm reports every stage, and its gap is paired with the warm arm
    assert len(m["cold_chosen/stage_test_acc"]) == 3
    assert math.isclose(m["gap_chosen"], m["cold_chosen/test_acc"] - m["warm/test_acc"])
    # it is a cold start: its steps differ from the warm arm's (no meta steps) and from cold's
    assert m["cold_chosen/steps"] != m["warm/steps"]


def test_cold_at_chosen_rate_without_a_horizon_is_the_cold_arm():
    m = run_trial(config(cold_at_chosen_lr=True))
    # with meta-optimization off the chosen rate is lr, so the third arm is the cold arm
    assert m["gap_chosen"] == m["gap"]
    assert m["cold_chosen/stage_test_acc"] == m["cold/stage_test_acc"]


@pytest.mark.parametrize("kind", ["online", "active"])
def test_cached_baseline_gives_the_same_trial(kind, tmp_path):
    from wssweep.cache import ArtifactCache
    from wssweep.science.experiment import STAGE1_SUFFIX, baseline_key

    cache = ArtifactCache(tmp_path)
    plain = config(protocol={"kind": kind, "chunks": 3, "stop": {"max_epochs": 3}})
    shrunk = config(protocol={"kind": kind, "chunks": 3, "stop": {"max_epochs": 3}},
                    warm={"intervention": "shrink_perturb", "keep_optimizer": True}, shrink=0.5)
    fresh_log, reused_log = [], []
    fresh = run_trial(shrunk, fresh_log.append)
    first = run_trial(plain, cache=cache)
    reused = run_trial(shrunk, reused_log.append, cache=cache)
    drop = {"warm/seconds", "cold/seconds", "warm/stage_seconds", "cold/stage_seconds",
            "baseline_reused"}
    # one baseline for both settings of the seed: stage 1 and the cold arm, and stage 1 stored
    # alone as soon as it was trained (for trials waiting on the cold arm)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted(
        f"{baseline_key(plain)}{suffix}.pt" for suffix in ("", STAGE1_SUFFIX))
    # the trial that loaded them reports exactly what training them itself gave
    assert {k: v for k, v in reused.items() if k not in drop} == {
        k: v for k, v in fresh.items() if k not in drop}
    # and the cold arm is the one the first trial trained
    assert reused["cold/stage_seconds"] == first["cold/stage_seconds"]
    # each stage record counts the cold steps up to its stage, though all were loaded at once
    def stage_steps(log):
        return [(r["stage"], r["cold/steps"]) for r in log if r["event"] == "stage"]
    assert stage_steps(reused_log) == stage_steps(fresh_log)


def test_baseline_key_ignores_warm_settings_only():
    from wssweep.science.experiment import baseline_key

    base = config()
    # warm-only keys leave the key alone; the seed, the rate and the data change it
    assert baseline_key(base) == baseline_key(config(shrink=0.2, meta_horizon=3,
                                                     warm={"intervention": "dash"}))
    assert baseline_key(base) != baseline_key(config(seed=1))
    assert baseline_key(base) != baseline_key(config(lr=0.02))


def test_both_arms_are_scored_on_one_validation_split():
    m = run_trial(config())
    # stage 1 is shared, so its validation accuracy is the same in both arms
    assert m["warm/stage_val_acc"][0] == m["cold/stage_val_acc"][0]
    # every stage of both arms has a validation accuracy, and the final one is reported
    assert all(0 <= a <= 100 for arm in ("warm", "cold") for a in m[f"{arm}/stage_val_acc"])
    assert m["warm/val_acc"] == m["warm/stage_val_acc"][-1]
    assert math.isclose(m["val_gap"], m["cold/val_acc"] - m["warm/val_acc"])
    # 10 % of the 240 training examples are held out before the stages: the last stage has 216
    assert m["warm/stage_n_train"][-1] == 216
    # a larger share holds out more
    assert run_trial(config(protocol__val_fraction=0.25))["warm/stage_n_train"][-1] == 180


def test_l2_init_pulls_toward_the_weights_at_initialisation(monkeypatch):
    from wssweep.science import experiment
    from wssweep.science.interventions import snapshot_params
    from wssweep.science.models import build_model

    anchors = []
    real = experiment.l2_init_penalty

    def recording(model, init, coef):
        anchors.append(init)
        return real(model, init, coef)

    monkeypatch.setattr(experiment, "l2_init_penalty", recording)
    cfg = config(warm={"intervention": "l2_init"})
    run_trial(cfg)
    assert anchors, "the warm arm trained with no L2-init penalty"
    # the anchor is the model as initialised (the DASH paper's L2-init, after Kumar et al.),
    # not the weights after stage 1
    fresh = build_model(cfg.model, input_shape=(64,), num_classes=10,
                        seed=derive_seed(cfg.seed, "init"))
    initial = snapshot_params(fresh)
    assert anchors[0].keys() == initial.keys()
    assert all(torch.equal(anchors[0][k], initial[k]) for k in initial)


def test_dash_logs_its_factors_per_stage():
    records = []
    m = run_trial(config(warm={"intervention": "dash"}), progress=records.append)
    means, lows, highs = (m[f"warm/stage_dash_factor_{k}"] for k in ("mean", "min", "max"))
    # stage 1 shrinks nothing; every later stage has its factors, within [λ, 1], in order
    assert means[0] is None and all(v is not None for v in means[1:])
    shrink = config(warm={"intervention": "dash"}).resolved_shrink()
    for lo, mean, hi in zip(lows[1:], means[1:], highs[1:], strict=True):
        assert shrink - 1e-6 <= lo <= mean <= hi <= 1 + 1e-6
    # each layer's [mean, min, max] per stage, for the MLP's weights and biases
    layers = m["warm/stage_dash_layers"][-1]
    assert layers and all(lo <= mean <= hi for mean, lo, hi in layers.values())
    assert min(lo for _, lo, _ in layers.values()) == lows[-1]
    # the last stage's are the trial's, and each stage record carries its own (for W&B)
    assert m["warm/dash_factor_mean"] == means[-1]
    staged = [r for r in records if r.get("event") == "stage" and "warm/dash_factor_mean" in r]
    assert [r["warm/dash_factor_mean"] for r in staged] == means[1:]


def claimed_elsewhere(tmp_path, cfg):
    """A shared cache (``tmp_path / "shared"``) where another trial of ``cfg``'s seed has stored
    stage 1 and holds the claim on the cold arm: (that claimant's cache, the baseline key, the
    finished artifact it will store, ``run_trial(cfg)``'s metrics)."""
    from wssweep.cache import ArtifactCache
    from wssweep.science.experiment import STAGE1_SUFFIX, baseline_key

    key = baseline_key(cfg)
    elsewhere = ArtifactCache(tmp_path / "elsewhere")
    alone = run_trial(cfg, cache=elsewhere)
    claimant = ArtifactCache(tmp_path / "shared")
    claimant.save(key + STAGE1_SUFFIX, elsewhere.load(key + STAGE1_SUFFIX))
    assert claimant.claim(key)
    return claimant, key, elsewhere.load(key), alone


def test_a_trial_reports_a_cold_arm_another_trial_stored_meanwhile_from_its_next_stage_on(
        tmp_path):
    from wssweep.cache import ArtifactCache

    cfg = config(seed=0)
    claimant, key, finished, alone = claimed_elsewhere(tmp_path, cfg)
    log = []

    def progress(record: dict) -> None:
        log.append(record)
        if record["event"] == "stage" and record["stage"] == 2:
            claimant.save(key, finished)  # stored during the trial's last stage
            claimant.release(key)

    got = run_trial(cfg, progress, cache=ArtifactCache(tmp_path / "shared"))
    cold = [s.test_acc for s in finished["cold"]]
    stages = {r["stage"]: r for r in log if r["event"] == "stage"}
    # before it was stored, no cold accuracy and no gap; after, the stored arm's
    assert stages[2]["cold/test_acc"] is None and stages[2]["gap"] is None
    assert stages[3]["cold/test_acc"] == cold[2]
    assert got["baseline_reused"] and got["cold/test_acc"] == alone["cold/test_acc"]
    assert got["gap"] == alone["gap"]


def test_a_trial_under_early_termination_waits_for_a_cold_arm_being_trained_before_a_stage(
        tmp_path):
    from tests.test_cache import in_thread, joined, wait_until_blocked
    from wssweep.cache import ArtifactCache

    cfg = config(seed=0)
    claimant, key, finished, alone = claimed_elsewhere(tmp_path, cfg)
    log = []
    thread = in_thread(lambda: run_trial(cfg, log.append, cache=ArtifactCache(tmp_path / "shared"),
                                         wait_for_cold=True))
    wait_until_blocked(tmp_path / "shared" / f"{key}.lock", thread[0], "the trial")
    # it waits after its warm arm's first stage, before that stage's record
    assert max(r["stages_done"] for r in log) == 1
    claimant.save(key, finished)
    claimant.release(key)
    got = joined(*thread)
    stages = [r for r in log if r["event"] == "stage"]
    assert [r["cold/test_acc"] for r in stages] == [s.test_acc for s in finished["cold"]]
    assert all(r["gap"] is not None for r in stages)
    assert got["gap"] == alone["gap"]
