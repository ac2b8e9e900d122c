"""Loading, resolving and validating specs and experiment configs."""

from pathlib import Path

import pytest

from wssweep.errors import InputError
from wssweep.spec import experiment_from_mapping, load_trial_config, parse_override

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_quickstart_resolves_to_its_first_setting():
    cfg = load_trial_config(REPO / "sweeps" / "quickstart.yaml")
    # the experiment comes from the configs/ file the sweep names
    assert cfg.data.name == "mnist1d" and cfg.protocol.kind == "online"
    # a swept parameter takes its first value (shrink 1, perturb 0: the plain warm start), and
    # the seed is the first of seeds
    assert (cfg.resolved_shrink(), cfg.warm.perturb, cfg.seed) == (1.0, 0.0, 0)


def test_overrides_apply_after_the_setting_and_parse_as_yaml(tmp_path):
    path = write(tmp_path, "experiment: {lr: 0.1}\nparameters: {lr: {values: [0.3]}}\n")
    cfg = load_trial_config(path, ["lr=1e-3", "warm.intervention=dash", "model.bias=false"])
    # --set wins over the sweep's setting, and 1e-3 is read as a number
    assert cfg.lr == 1e-3
    # dotted keys reach nested sections; YAML booleans become booleans
    assert cfg.warm.intervention == "dash" and cfg.model.bias is False


def test_distribution_parameters_take_the_centre(tmp_path):
    path = write(tmp_path, "experiment: {}\nparameters:\n"
                 "  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.01}\n"
                 "  warmup_steps: {distribution: int_uniform, min: 0, max: 10}\n")
    cfg = load_trial_config(path)
    # log-uniform: the geometric centre; int-uniform: the integer midpoint
    assert abs(cfg.lr - 1e-3) < 1e-12 and cfg.warmup_steps == 5


@pytest.mark.parametrize(
    ("overrides", "key", "given"),
    [
        (["shrink=1.5"], "shrink", "1.5"),
        (["lr=-0.1"], "lr", "-0.1"),
        (["lr=fast"], "lr", "fast"),
        (["warmup_steps=-3"], "warmup_steps", "-3"),
        (["model.nmae=mlp"], "model.nmae", "mlp"),
        (["optim.name=rmsprop"], "optim.name", "rmsprop"),
        (["protocol.chunks=1"], "protocol.chunks", "1"),
        (["protocol.fraction=1.0"], "protocol.fraction", "1.0"),
        (["warm.noise=uniform"], "warm.noise", "uniform"),
        (["bogus=1"], "bogus", "1"),
    ],
)
def test_bad_values_name_the_key_the_expectation_and_the_value(overrides, key, given):
    with pytest.raises(InputError) as info:
        experiment_from_mapping({}, overrides)
    message = str(info.value)
    # the message starts with the dotted key path
    assert message.startswith(f"{key}: expected ")
    # and shows what was given
    assert given in message


def test_override_without_equals_sign_is_an_input_error():
    with pytest.raises(InputError, match="--set: expected key=value"):
        parse_override("lr0.1")


def test_missing_spec_and_missing_experiment_file(tmp_path):
    # a spec path that does not exist names the path
    with pytest.raises(InputError, match="nope.yaml"):
        load_trial_config(tmp_path / "nope.yaml")
    # an experiment reference that resolves nowhere names the experiment key
    with pytest.raises(InputError, match="^experiment: expected"):
        load_trial_config(write(tmp_path, "experiment: configs/missing.yaml\n"))


def test_malformed_yaml_and_non_mapping(tmp_path):
    # broken YAML is an input error, not a parser traceback
    with pytest.raises(InputError, match="valid YAML"):
        load_trial_config(write(tmp_path, "lr: [0.1\n"))
    # a list at the top level is not a spec
    with pytest.raises(InputError, match="mapping"):
        load_trial_config(write(tmp_path, "- 1\n- 2\n"))


def test_unknown_sweep_key_is_rejected(tmp_path):
    with pytest.raises(InputError) as info:
        load_trial_config(write(tmp_path, "experiment: {}\nmethd: grid\n"))
    # a misspelt top-level sweep key is named
    assert str(info.value).startswith("methd: expected a known key (one of: experiment, name")


def test_a_wandb_style_spec_runs_one_setting_of_each_distribution(tmp_path):
    path = write(tmp_path, "experiment: {}\nmethod: random\nprogram: train.py\nparameters:\n"
                 "  lr: {distribution: log_normal, mu: -4, sigma: 1}\n"
                 "  shrink: {distribution: q_beta, a: 2, b: 2, q: 0.25}\n"
                 "  optim:\n    parameters:\n      momentum: {distribution: constant, value: 0.5}\n"
                 "  warmup_steps: {distribution: q_normal, mu: 10, sigma: 2, q: 1}\n")
    cfg = load_trial_config(path)
    # the median of each: exp(mu), the rounded median, the constant, mu rounded
    assert abs(cfg.lr - 0.01831563888873418) < 1e-12 and cfg.shrink == 0.5
    assert (cfg.optim.momentum, cfg.warmup_steps) == (0.5, 10)


def test_a_large_eta_makes_bands_until_they_pass_any_float():
    from wssweep.spec import EarlyTerminateSpec

    # min_iter * eta**k overflows a float long before W&B's 100 bands: the later ones, past
    # every stage a trial has, are left out rather than failing the spec
    bands = EarlyTerminateSpec(type="hyperband", min_iter=2, eta=10000.0).bands()
    assert bands[:3] == [2, 20000, 200000000] and 1 < len(bands) < 100
    assert all(isinstance(b, int) for b in bands)
    # an eta that stays finite keeps W&B's 100
    assert len(EarlyTerminateSpec(type="hyperband", min_iter=1, eta=3).bands()) == 100


@pytest.mark.parametrize("project", ["wssweep", "my-project_2", "a" * 128, "team/project",
                                     "p" * 129, "a:b", "50%", "why?", "back\\slash", "#1", ""])
def test_wandb_project_rule_agrees_with_wandbs_own(project):
    from pydantic import ValidationError
    from wandb.errors import UsageError
    from wandb.sdk.wandb_settings import Settings

    from wssweep.spec import WandbSpec

    try:
        Settings(project=project or None)
        wandb_ok = bool(project)  # W&B reads an empty project as none given
    except (UsageError, ValidationError):
        wandb_ok = False
    try:
        WandbSpec(project=project)
        ours = True
    except ValidationError:
        ours = False
    assert ours == wandb_ok


@pytest.mark.parametrize("tag", ["study", "t" * 64, "", "t" * 65])
def test_wandb_tag_rule_agrees_with_wandbs_own(tag):
    from pydantic import ValidationError
    from wandb.sdk.wandb_settings import Settings

    from wssweep.spec import WandbSpec

    try:
        Settings(run_tags=(tag,))
        wandb_ok = True
    except ValidationError:
        wandb_ok = False
    try:
        WandbSpec(tags=[tag])
        ours = True
    except ValidationError:
        ours = False
    assert ours == wandb_ok
