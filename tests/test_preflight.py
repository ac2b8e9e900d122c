"""Validate once, at the edge: every ``InputError`` the science can still raise is caught by
``wssweep validate`` before a sweep starts.

The schema decides every rule about values (tests/test_config.py). What the science still checks
is a fact of the machine or of user code: the files under ``data.root``, what a custom loader
returns, a custom factory. ``wssweep.preflight`` loads the data and builds the models once, so
each of those is raised at validation. This test walks the science's source for every
``raise InputError(...)`` and requires a case below that ``validate`` refuses with exit 2 and the
key path, raised at exactly that line.
"""

from __future__ import annotations

import ast
import pickle
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from wssweep import cli
from wssweep.errors import InputError
from wssweep.spec import load_sweep_spec

SCIENCE = Path(__file__).resolve().parents[1] / "wssweep" / "science"
HERE = "tests.test_preflight:"


def loader(case: str):
    """A custom data loader that returns what ``case`` names: each a way a loader goes wrong."""
    x, y = torch.zeros(8, 4), torch.arange(8) % 2
    good = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    bad = {
        "missing_keys": {"x_train": x},
        "not_data": 3,
        "not_arrays": {**good, "x_train": [object()] * 8},
        "x_1d": {**good, "x_train": torch.zeros(8)},
        "y_2d": {**good, "y_train": torch.zeros(8, 1, dtype=torch.long)},
        "lengths": {**good, "y_train": y[:5]},
        "float_labels": {**good, "y_train": y.float()},
        "bool_inputs": {**good, "x_train": torch.zeros(8, 4, dtype=torch.bool)},
        "negative_label": {**good, "y_train": y - 1},
        "empty": {**good, "x_train": torch.zeros(0, 4), "y_train": torch.zeros(0, dtype=int)},
        "shapes": {**good, "x_test": torch.zeros(8, 5)},
        "classes_text": {**good, "num_classes": "two"},
        "too_few_classes": {**good, "num_classes": 1},
        "empty_test": {**good, "x_test": torch.zeros(0, 4), "y_test": torch.zeros(0, dtype=int)},
        "one_class": {**good, "y_train": y * 0, "y_test": y * 0},
        "image_2d": {**good, "x_train": torch.zeros(8, 2, 3), "x_test": torch.zeros(8, 2, 3)},
        "length_2": {**good, "x_train": torch.zeros(8, 2), "x_test": torch.zeros(8, 2)},
    }
    return bad.get(case, good)


def takes_width(width: int = 4) -> nn.Module:
    return nn.Linear(4, 2)


def not_a_module() -> int:
    return 3


def _cifar_files(root: Path, first_batch: object) -> None:
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for name in names:
        (root / name).write_bytes(pickle.dumps(first_batch if name == "data_batch_1" else {}))


def _svhn_files(root: Path, train: dict | bytes) -> None:
    from scipy.io import savemat

    for name in ("train_32x32.mat", "test_32x32.mat"):
        if isinstance(train, bytes):
            (root / name).write_bytes(train)
        else:
            savemat(root / name, train)


def custom(case: str, model: dict | None = None) -> dict:
    return {"data": {"name": "custom", "loader": HERE + "loader", "kwargs": {"case": case}},
            "model": model or {"name": "logreg"}}


def cifar(root: Path, batch: object) -> dict:
    _cifar_files(root, batch)
    return {"data": {"name": "cifar10", "root": str(root)}, "model": {"name": "logreg"}}


def svhn(root: Path, train: dict | bytes) -> dict:
    _svhn_files(root, train)
    return {"data": {"name": "svhn", "root": str(root)}, "model": {"name": "logreg"}}


# (case id, a function of a temporary directory giving the experiment, the key validate names)
CASES = [
    ("root_missing_files", lambda d: {"data": {"name": "cifar10", "root": str(d)},
                                      "model": {"name": "logreg"}}, "data.root"),
    ("cifar_not_a_dict", lambda d: cifar(d, [1, 2]), "data.root"),
    ("cifar_keys", lambda d: cifar(d, {b"other": 1}), "data.root"),
    ("cifar_shape", lambda d: cifar(d, {b"data": np.zeros((2, 5)), b"labels": [0, 1]}),
     "data.root"),
    ("svhn_unreadable", lambda d: svhn(d, b"garbage" * 30), "data.root"),
    ("svhn_shape", lambda d: svhn(d, {"X": np.zeros((4, 4)), "y": np.zeros((1, 1))}), "data.root"),
    ("svhn_labels", lambda d: svhn(d, {"X": np.zeros((32, 32, 3, 2)), "y": np.zeros((3, 1))}),
     "data.root"),
    *((f"loader_{case}", lambda d, c=case: custom(c), "data.loader") for case in (
        "missing_keys", "not_data", "not_arrays", "x_1d", "y_2d", "lengths", "float_labels",
        "bool_inputs", "negative_label", "empty", "shapes", "classes_text", "too_few_classes",
        "empty_test", "one_class")),
    ("loader_import", lambda d: {"data": {"name": "custom", "loader": "tests.no_such:f"}},
     "data.loader"),
    ("loader_attribute", lambda d: {"data": {"name": "custom", "loader": "math:no_such"}},
     "data.loader"),
    ("loader_not_callable", lambda d: {"data": {"name": "custom", "loader": "math:pi"}},
     "data.loader"),
    ("factory_kwargs", lambda d: custom("good", {"name": "custom", "factory": HERE + "takes_width",
                                                 "kwargs": {"depth": 2}}), "model.kwargs"),
    ("factory_returns", lambda d: custom("good", {"name": "custom",
                                                  "factory": HERE + "not_a_module"}),
     "model.factory"),
    ("conv1d_on_images", lambda d: custom("image_2d", {"name": "conv1d"}), "model.name"),
    ("resnet18_on_vectors", lambda d: custom("good", {"name": "resnet18"}), "model.name"),
    ("conv1d_too_short", lambda d: custom("length_2", {"name": "conv1d"}), "model.name"),
]


def write_spec(directory: Path, experiment: dict) -> Path:
    spec = directory / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"experiment": experiment, "method": "grid",
                                    "parameters": {"lr": {"value": 0.01}}, "seeds": [0]}))
    return spec


def raised_at(exc: BaseException) -> tuple[str, int]:
    """Where in the science the first error of ``exc``'s chain was raised: (file, line)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return Path(frame.filename).name, frame.lineno


def science_raise_sites() -> set[tuple[str, int]]:
    """Every ``raise InputError(...)`` (or of a local helper building one) in the science."""
    sites = set()
    for path in sorted(SCIENCE.glob("*.py")):
        tree = ast.parse(path.read_text())
        builders = {"InputError"} | {
            fn.name for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
            and fn.returns is not None and ast.unparse(fn.returns) == "InputError"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and ast.unparse(node.exc.func) in builders:
                sites.add((path.name, node.lineno))
    return sites


@pytest.mark.parametrize(("case", "experiment", "key"), CASES, ids=[c[0] for c in CASES])
def test_validate_refuses_what_a_trial_would(case, experiment, key, tmp_path, capsys):
    spec = write_spec(tmp_path, experiment(tmp_path))
    before = sorted(tmp_path.rglob("*"))
    status = cli.main(["validate", str(spec)])
    err = capsys.readouterr().err
    # exit 2, the key path named, no traceback, nothing created
    assert status == 2, err
    assert f"experiment.{key}: expected" in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before


def test_every_input_error_of_the_science_is_caught_by_validate(tmp_path):
    hit = {}
    for case, experiment, key in CASES:
        directory = tmp_path / case
        directory.mkdir()
        with pytest.raises(InputError) as err:
            load_sweep_spec(write_spec(directory, experiment(directory)))
        assert err.value.key == f"experiment.{key}", case
        hit.setdefault(raised_at(err.value), case)
    sites = science_raise_sites()
    # the walk finds the science's checks (guards against a walk that finds nothing)
    assert len(sites) >= 20
    # every check the science still makes is reached by a case, and so caught by validate
    assert sites - set(hit) == set(), sorted(sites - set(hit))
    # and every case lands on one of them (a case raised elsewhere shows no science check)
    assert set(hit) - sites == set()


def test_run_on_a_cluster_leaves_the_machine_checks_to_the_trials(tmp_path):
    spec = write_spec(tmp_path, custom("not_data"))
    # the driver of a cluster run need not hold the data: the schema alone is checked there
    assert load_sweep_spec(spec, preflight=False).experiment["data"]["name"] == "custom"


def test_built_in_data_and_models_need_no_preflight(tmp_path, monkeypatch):
    import wssweep.science.experiment as experiment

    def refuse(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(experiment, "load_experiment_data", refuse)
    spec = write_spec(tmp_path, {"data": {"name": "digits"}, "model": {"name": "mlp"}})
    # the schema alone decides built-in data and models: validate loads nothing
    assert load_sweep_spec(spec).experiment["model"]["name"] == "mlp"


def no_layers() -> nn.Module:
    return nn.Sequential(nn.Flatten())


@pytest.mark.parametrize(("intervention", "needs"), [("dash", "Linear or Conv"),
                                                      ("reset_last_layer", "nn.Linear")])
def test_an_intervention_the_model_cannot_take_is_refused(intervention, needs, tmp_path):
    experiment = custom("good", {"name": "custom", "factory": HERE + "no_layers"})
    experiment["warm"] = {"intervention": intervention}
    with pytest.raises(InputError) as err:
        load_sweep_spec(write_spec(tmp_path, experiment))
    # the custom model lacks the layer the warm start acts on: refused before a trial fails
    assert err.value.key == "experiment.model.factory" and needs in err.value.expected


def test_validating_a_built_in_experiment_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from wssweep.cli import main; "
            "assert main(['validate', 'sweeps/quickstart.yaml']) == 0; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    # built-in data and models need no preflight: validate stays instant (no 2 s torch import)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "False"


# --- the device: a machine fact too ----------------------------------------------------------


def test_device_cuda_where_torch_sees_no_gpu_is_refused_before_anything_runs(monkeypatch,
                                                                              tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tmp_path / "cuda.yaml"
    spec.write_text("experiment: {device: cuda}\nmethod: grid\nparameters:\n"
                    "  lr: {values: [0.01, 0.1]}\n")
    # every trial would fail on its first tensor: validate and run refuse it, naming the key
    with pytest.raises(InputError) as info:
        load_sweep_spec(spec)
    assert info.value.key == "experiment.device" and info.value.given == "cuda"
    assert "'cpu' or 'auto' on this machine" in info.value.expected
    # `wssweep trial` runs here too: the same, exit 2 and no traceback
    code = cli.main(["trial", str(spec)])
    err = capsys.readouterr().err
    assert code == 2 and "device: expected 'cpu' or 'auto' on this machine" in err, err
    # auto falls back to the CPU, and where torch has CUDA the spec stands
    load_sweep_spec(spec, ["device=auto"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    load_sweep_spec(spec)


def test_a_swept_device_is_checked_for_each_of_its_values(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tmp_path / "devices.yaml"
    spec.write_text("experiment: {}\nmethod: grid\nparameters:\n"
                    "  device: {values: [cpu, cuda]}\n")
    with pytest.raises(InputError, match="experiment.device: expected 'cpu' or 'auto'"):
        load_sweep_spec(spec)


def test_keyword_arguments_a_built_in_generator_refuses_are_named_as_such(tmp_path):
    spec = tmp_path / "kwargs.yaml"
    spec.write_text("experiment: {data: {kwargs: {iid_noise_scale: abc}, num_samples: 100, "
                    f"cache_dir: {tmp_path / 'cache'}}}}}\nmethod: grid\n"
                    "parameters: {shrink: {values: [0.5]}}\n")
    with pytest.raises(InputError) as info:
        load_sweep_spec(spec)
    # the generator's own arguments are at fault, not a loader the spec never named
    assert info.value.key == "experiment.data.kwargs"
    assert info.value.given == {"iid_noise_scale": "abc"}
    assert info.value.expected.startswith("keyword arguments mnist1d accepts (with these it "
                                          "raised ")
