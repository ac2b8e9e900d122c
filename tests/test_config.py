"""The experiment schema, and every shipped config and sweep validating against it."""

from pathlib import Path

import pytest

from wssweep.config import INPUT_NDIM, ExperimentConfig
from wssweep.errors import InputError
from wssweep.spec import _validate, load_trial_config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "sweeps").glob("*.yaml"))


def test_something_is_shipped():
    # one config per protocol plus the NQM, and the quickstart sweep
    assert {p.stem for p in SHIPPED} >= {"online_mnist1d_mlp", "batch_mnist1d_mlp",
                                         "active_mnist1d_mlp", "nqm", "quickstart"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_files_validate(path):
    # a config for files the user has names its data.root on the command line
    needs_root = "data.root" in path.read_text() and "root: null" in path.read_text()
    cfg = load_trial_config(path, ["data.root=/data"] if needs_root else None)
    # each file resolves to a complete experiment of a known kind
    assert cfg.kind in {"network", "nqm"}


@pytest.mark.parametrize(
    ("intervention", "shrink", "expected"),
    [("shrink_perturb", None, 0.4), ("dash", None, 0.3), ("none", None, 1.0), ("dash", 0.5, 0.5)],
)
def test_shrink_defaults_follow_the_authors_code(intervention, shrink, expected):
    spec = {"shrink": shrink, "warm": {"intervention": intervention}}
    cfg = ExperimentConfig.model_validate(spec)
    # λ is the config's when given, else the intervention's published default
    assert cfg.resolved_shrink() == expected


def test_configs_are_frozen():
    cfg = ExperimentConfig()
    # a validated config cannot drift after validation
    with pytest.raises(Exception, match="frozen"):
        cfg.lr = 1.0


def test_canonical_resets_only_keys_the_experiment_never_reads():
    from wssweep.config import ExperimentConfig

    def canon(**kw):
        return ExperimentConfig.model_validate(kw).canonical()

    # no warmup: its start rate is unread; with warmup it matters
    assert canon(optim={"warmup_init": "catapult"}) == canon()
    assert canon(warmup_steps=10, optim={"warmup_init": "catapult"}) != canon(warmup_steps=10)
    # plain warm start: shrink is unread; DASH reads it
    assert canon(shrink=0.5) == canon()
    assert canon(shrink=0.5, warm={"intervention": "dash"}) != canon(warm={"intervention": "dash"})
    # noiseless shrink-and-perturb: the noise convention is unread
    sp = {"intervention": "shrink_perturb", "perturb": 0.0}
    assert canon(warm={**sp, "noise": "gaussian"}) == canon(warm=sp)
    assert canon(warm={**sp, "perturb": 0.1, "noise": "gaussian"}) != canon(
        warm={**sp, "perturb": 0.1})


# Rules that span keys, each refused by the schema with the key path (they used to be checked
# only when a trial ran: a spec could validate and then fail).
CROSS_FIELD_RULES = [
    ({"data": {"name": "custom"}}, "data.loader", "package.module:function"),
    ({"data": {"name": "digits", "loader": "a.b:c"}}, "data.loader", "no loader unless"),
    ({"data": {"name": "cifar10"}}, "data.root", "downloads nothing"),
    ({"data": {"name": "digits", "kwargs": {"x": 1}}}, "data.kwargs", "no kwargs for"),
    ({"data": {"kwargs": {"not_an_arg": 1}}}, "data.kwargs.not_an_arg", "template_len"),
    ({"data": {"num_samples": 9}}, "data.num_samples", ">= 10"),
    ({"data": {"kwargs": {"num_samples": 5}}}, "data.kwargs.num_samples", ">= 10"),
    ({"data": {"name": "synthetic_cifar", "kwargs": {"blur": 1}}}, "data.kwargs.blur",
     "noise, max_shift"),
    ({"data": {"name": "synthetic_cifar", "kwargs": {"noise": -1}}}, "data.kwargs.noise", ">= 0"),
    ({"data": {"name": "synthetic_cifar", "kwargs": {"max_shift": 1.5}}},
     "data.kwargs.max_shift", "an integer"),
    ({"data": {"name": "synthetic_cifar", "num_samples": 5}}, "data.num_samples", "at least 6"),
    ({"model": {"name": "custom"}}, "model.factory", "package.module:function"),
    ({"model": {"name": "mlp", "factory": "a.b:c"}}, "model.factory", "no factory unless"),
    ({"model": {"name": "mlp", "kwargs": {"h": 1}}}, "model.kwargs", "no kwargs unless"),
    ({"model": {"name": "custom", "factory": "a.b:c", "kwargs": {"num_classes": 3}}},
     "model.kwargs.num_classes", "passed from the data"),
    ({"model": {"name": "resnet18"}}, "model.name", "images"),
    ({"data": {"name": "synthetic_cifar"}, "model": {"name": "conv1d"}}, "model.name", "1-D"),
    ({"warm": {"meta_lr_min": 0.1, "meta_lr_max": 0.01}}, "warm.meta_lr_max", "above"),
]


@pytest.mark.parametrize(("experiment", "key", "expected"), CROSS_FIELD_RULES,
                         ids=[rule[1] for rule in CROSS_FIELD_RULES])
def test_cross_field_rules_are_in_the_schema(experiment, key, expected):
    with pytest.raises(InputError) as err:
        _validate(experiment, prefix="experiment.")
    # the rule is refused at the edge, naming the key path and what it expected
    assert err.value.key == f"experiment.{key}" and expected in err.value.expected


@pytest.mark.parametrize(("data", "model"), [("synthetic_cifar", "resnet18"),
                                             ("digits", "conv1d"), ("mnist1d", "conv1d")])
def test_models_on_the_inputs_they_take_validate(data, model):
    # the shape rule refuses only models that cannot take the data
    assert _validate({"data": {"name": data}, "model": {"name": model}}, "").model.name == model


@pytest.mark.parametrize("name", ["mnist1d", "digits", "synthetic_cifar"])
def test_declared_input_dimensions_match_the_loaded_data(name, tmp_path):
    from wssweep.science.data import load_dataset

    data = load_dataset(name, cache_dir=str(tmp_path), num_samples=60)
    # the schema's shape rule uses the dimensions the loader really produces
    assert len(data.input_shape) == INPUT_NDIM[name]


def test_shipped_nqm_sweep_passes_the_full_check():
    from wssweep.spec import load_sweep_spec

    for smoke in (False, True):
        resolved = load_sweep_spec(REPO / "sweeps" / "meta_horizon_nqm.yaml", smoke=smoke)
        # the NQM study validates, as a sweep and scaled down by --smoke
        assert resolved.experiment["kind"] == "nqm"
    # and so does the shipped NQM config with every method
    for method in ("online", "greedy", "optimal_schedule"):
        cfg = load_trial_config(REPO / "configs" / "nqm.yaml", [f"nqm.method={method}"])
        assert cfg.nqm.method == method and cfg.meta_horizon >= 1


def test_nqm_rules_apply_to_kind_nqm_only():
    # a network experiment never reads nqm:, so no NQM rule refuses it
    cfg = ExperimentConfig.model_validate({"nqm": {"method": "greedy", "momentum": 0.5}})
    assert cfg.kind == "network" and cfg.meta_horizon == 0
    # greedy needs no horizon: the default meta_horizon 0 is fine there
    assert ExperimentConfig.model_validate({"kind": "nqm", "nqm": {"method": "greedy"}})
    # the curvature bound follows d: d = 1 has every h_i = 1 whatever the power
    assert ExperimentConfig.model_validate(
        {"kind": "nqm", "meta_horizon": 1, "nqm": {"d": 1, "spectrum_power": 1000}})
