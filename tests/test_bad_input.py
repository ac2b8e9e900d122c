"""Bad input generated from the schema, and the input checks that no table of cases can list.

Every leaf key of the experiment config (``ExperimentConfig`` and its sections, walked from
``model_fields``) gets a value of the wrong type and one out of range; each, put in the experiment
of a spec, must be an ``InputError`` whose message starts with ``experiment.<key>:``. A new key
gets its cases without anyone writing them, and a key for which none can be made fails the
coverage test until it is given a reason.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tests.test_spec_errors import GIVEN, MALFORMED, write_case
from wssweep.config import ExperimentConfig, ImportPath, PathText, union_members
from wssweep.errors import InputError
from wssweep.spec import (
    ParameterSpec,
    _finite_number,
    _on_grid,
    experiment_from_mapping,
    load_sweep_spec,
    load_trial_config,
)

REPO = Path(__file__).resolve().parents[1]
BY_ID = {case[0]: case for case in MALFORMED}


# --- the leaf keys of the experiment schema, and a wrong-type and an out-of-range value each ----


def leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    """Every key whose value is not itself a section, as a dotted path, with its field."""
    leaves = []
    for name, info in model.model_fields.items():
        nested = [m for m in union_members(info.annotation)
                  if isinstance(m, type) and issubclass(m, BaseModel)]
        if nested:
            leaves += leaf_fields(nested[0], f"{prefix}{name}.")
        else:
            leaves.append((f"{prefix}{name}", info))
    return leaves


LEAVES = leaf_fields(ExperimentConfig)


@dataclass
class Case:
    key: str  # the leaf key, as in the experiment
    kind: str  # wrong_type or out_of_range
    value: Any  # what the experiment gets at key
    error_key: str  # the key path the message must start with
    shows: str | None  # text of the given value the message must show (None: shown summarized)


def _bounds(metadata: list[Any]) -> dict[str, float]:
    """A field's numeric constraints (gt, ge, lt, le) from its annotated_types metadata."""
    found = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(item, name)
    return found


def _element_metadata(annotation: Any) -> list[Any]:
    """The constraints inside ``Annotated[float, Field(...)]`` (a tuple's element)."""
    return [m for arg in typing.get_args(annotation)[1:] if isinstance(arg, FieldInfo)
            for m in arg.metadata]


def _holds(annotation: Any, alias: Any) -> bool:
    return annotation == alias or alias in typing.get_args(annotation)


def _out_of_range_number(members: tuple[Any, ...], metadata: list[Any]) -> Any:
    """A number just past a bound (the lower first), else one no bound allows: .inf for a
    float, an integer too large for a float for an int."""
    bounds, is_int = _bounds(metadata), float not in members
    kind, step = (int, 1) if is_int else (float, 0.5)
    if "gt" in bounds:
        return kind(bounds["gt"])
    if "ge" in bounds:
        return kind(bounds["ge"] - step)
    if "lt" in bounds:
        return kind(bounds["lt"])
    if "le" in bounds:
        return kind(bounds["le"] + step)
    return 10**400 if is_int else math.inf


# A key's out-of-range case is skipped only for these kinds, where no value of the right type is
# out of range.
NO_RANGE = {
    "bool": "a boolean is true or false; anything else is a wrong type, not out of range",
    "dict": "free-form keyword arguments for the user's own function; any mapping is in range",
}


def cases_for(key: str, info: FieldInfo) -> tuple[list[Case], str | None]:
    """The wrong-type and out-of-range cases of one leaf, and why one is missing (or None)."""
    annotation = info.annotation
    members = tuple(m for m in union_members(annotation) if m is not type(None))
    origins = {typing.get_origin(m) for m in members}
    where = f"experiment.{key}"
    if tuple in origins:
        (pair,) = [m for m in members if typing.get_origin(m) is tuple]
        elements = typing.get_args(pair)
        last = len(elements) - 1
        bad = _out_of_range_number(union_members(elements[last]), _element_metadata(elements[last]))
        value = [*info.default[:last], bad]
        return [Case(key, "wrong_type", "x", where, "'x'"),
                Case(key, "out_of_range", value, f"{where}.{last}", repr(bad))], None
    if dict in origins:
        wrong = Case(key, "wrong_type", "not a mapping", where, "'not a mapping'")
        return [wrong], NO_RANGE["dict"]
    if members == (bool,):
        return [Case(key, "wrong_type", "maybe", where, "'maybe'")], NO_RANGE["bool"]
    if int in members or float in members:
        # the issue's rule: a boolean is never a number (Python would take it as 1)
        bad = _out_of_range_number(members, info.metadata)
        shows = None if isinstance(bad, int) and bad > 10**300 else repr(bad)
        return [Case(key, "wrong_type", True, where, "True"),
                Case(key, "out_of_range", bad, where, shows)], None
    if all(typing.get_origin(m) is typing.Literal for m in members):
        return [Case(key, "wrong_type", 17, where, "17"),
                Case(key, "out_of_range", "no_such_choice", where, "'no_such_choice'")], None
    if members == (str,):
        wrong = Case(key, "wrong_type", ["a"], where, "['a']")
        if _holds(annotation, ImportPath):
            return [wrong, Case(key, "out_of_range", "no_colon", where, "'no_colon'")], None
        if _holds(annotation, PathText):
            # the issue's case: a 5,000-character path, which no file system opens
            return [wrong, Case(key, "out_of_range", "x" * 5000, where, None)], None
    raise AssertionError(f"{key}: no generated cases for {annotation}; add them to cases_for")


CASES: list[Case] = []
SKIPPED: dict[str, str] = {}
for _key, _info in LEAVES:
    _cases, _why = cases_for(_key, _info)
    CASES += _cases
    if _why is not None:
        SKIPPED[_key] = _why


def nested(key: str, value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for ``a.b``."""
    *parents, leaf = key.split(".")
    out: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        out = {part: out}
    return out


def spec_text(case: Case) -> str:
    return yaml.safe_dump({"experiment": nested(case.key, case.value)}, width=10**6)


def test_generated_cases_cover_every_leaf_key():
    keys = [key for key, _ in LEAVES]
    # the walk finds the sections' keys and the top level's, each once
    assert len(keys) == len(set(keys)) >= 60
    assert {"lr", "optim.betas", "optim.warmup_init", "protocol.stop.max_epochs"} <= set(keys)
    wrong = [c.key for c in CASES if c.kind == "wrong_type"]
    out = [c.key for c in CASES if c.kind == "out_of_range"]
    # every leaf has exactly one wrong-type case
    assert sorted(wrong) == sorted(keys)
    # and exactly one out-of-range case, unless it is skipped (never both)
    assert sorted(out + list(SKIPPED)) == sorted(keys)
    # only booleans and free-form mappings are skipped, each with its reason
    assert set(SKIPPED.values()) <= set(NO_RANGE.values())
    assert all(typing.get_origin(info.annotation) is dict or info.annotation is bool
               for key, info in LEAVES if key in SKIPPED)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.key}-{c.kind}" for c in CASES])
def test_every_leaf_key_rejects_a_bad_value_by_its_key(tmp_path, case):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(case))
    with pytest.raises(InputError) as info:
        load_sweep_spec(spec)
    message = str(info.value)
    # the message starts with the experiment's key path and what was expected
    assert message.startswith(f"{case.error_key}: expected "), message
    # the error's key is that path
    assert info.value.key == case.error_key
    # one line: the value is not reported as failing several ways
    assert "\n" not in message, message
    # and it shows what was given (huge values summarized)
    assert case.shows is None or f"got {case.shows}" in message, message


# --- the same, through the real process ----------------------------------------------------------

THROUGH_CLI = ["lr-wrong_type", "optim.betas-out_of_range", "data.root-out_of_range",
               "protocol.chunks-out_of_range", "optim.warmup_init-out_of_range"]
BY_CASE_ID = {f"{c.key}-{c.kind}": c for c in CASES}

# MALFORMED cases of the issue, through the real process too (overlong paths, duplicate keys,
# an empty file, a booleans as a number, q_uniform overflow).
MALFORMED_THROUGH_CLI = ["experiment_path_too_long", "duplicate_in_experiment_file",
                         "spec_empty", "parameter_lr_boolean", "q_too_small",
                         "yaml_nested_too_deep"]


def run_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wssweep", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def _rejected_by_run_and_validate(tmp_path: Path, spec: Path, key: str) -> list[str]:
    """Run ``run`` and ``validate`` on ``spec``; each one's stderr, checked for the contract."""
    before = sorted(p.name for p in tmp_path.iterdir())
    storage = tmp_path / "runs"
    errors = []
    for args in (["run", str(spec), "--storage", str(storage), "--name", "x"],
                 ["validate", str(spec)]):
        out = run_process(*args, cwd=tmp_path)
        # bad input: exit status 2
        assert out.returncode == 2, out.stderr
        # the message names the key path and what was expected
        assert f"wssweep: bad input: {key}: expected " in out.stderr, out.stderr
        # no traceback on either stream
        assert "Traceback" not in out.stdout + out.stderr
        errors.append(out.stderr)
    # no run directory (nor storage directory, nor anything else) was created
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return errors


@pytest.mark.parametrize("case_id", THROUGH_CLI)
def test_process_rejects_a_generated_case(tmp_path, case_id):
    case = BY_CASE_ID[case_id]
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(case))
    for err in _rejected_by_run_and_validate(tmp_path, spec, case.error_key):
        # showing what was given
        assert case.shows is None or case.shows in err


@pytest.mark.parametrize("case_id", MALFORMED_THROUGH_CLI)
def test_process_rejects_an_issue_case(tmp_path, case_id):
    _, yaml_text, overrides, key = BY_ID[case_id]
    assert not overrides
    spec = write_case(tmp_path, yaml_text)
    for err in _rejected_by_run_and_validate(tmp_path, spec, key):
        assert GIVEN[case_id] in err


@pytest.mark.parametrize("command", ["run", "validate", "trial"])
@pytest.mark.parametrize("spec", ["x" * 5000 + ".yaml", "d/" * 2500 + "s.yaml"],
                         ids=["long_name", "long_path"])
def test_process_rejects_a_spec_path_too_long(tmp_path, command, spec):
    args = [command, spec] + (["--storage", str(tmp_path / "runs")] if command == "run" else [])
    out = run_process(*args, cwd=tmp_path)
    # an unusable spec path is bad input named SPEC, with why and the path shortened
    assert out.returncode == 2, out.stderr
    assert ("wssweep: bad input: SPEC: expected a path the file system accepts (File name too "
            "long)") in out.stderr
    assert f"({len(spec)} characters)" in out.stderr
    # no traceback, nothing created
    assert "Traceback" not in out.stdout + out.stderr
    assert list(tmp_path.iterdir()) == []


# --- what must still pass ------------------------------------------------------------------------


def test_booleans_still_set_boolean_keys(tmp_path):
    spec = write_case(tmp_path, "experiment: {cold_at_chosen_lr: true, model: {bias: false}}\n"
                      "method: grid\nparameters: {warm.keep_optimizer: {values: [true, false]}}\n")
    resolved = load_sweep_spec(spec)
    cfg = resolved.config_for({"warm.keep_optimizer": True}, seed=0)
    # a boolean key takes true and false, inline, swept or overridden
    assert (cfg.cold_at_chosen_lr, cfg.model.bias, cfg.warm.keep_optimizer) == (True, False, True)
    assert experiment_from_mapping({}, ["model.bias=false"]).model.bias is False


def test_numbers_that_are_fine_stay_fine():
    cfg = experiment_from_mapping({"optim": {"betas": [0, 0.5], "warmup_init": "catapult"}},
                                  ["lr=1", "warmup_steps=10", "shrink=0", "optim.momentum=0"])
    # an int where a float goes, zeros at inclusive bounds, 'catapult' where a rate may go
    assert (cfg.lr, cfg.shrink, cfg.optim.betas, cfg.optim.warmup_init) == (
        1.0, 0.0, (0.0, 0.5), "catapult")


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    spec = write_case(tmp_path, "experiment:\n  warm:\n"
                      "    <<: {perturb: 0.1, intervention: shrink_perturb}\n"
                      "    perturb: 0.2\n"
                      "  optim: &sgd {name: sgd, momentum: 0.5}\n"
                      "method: grid\n"
                      "parameters: {optim: {values: [*sgd, {<<: *sgd, momentum: 0.9}]}}\n")
    resolved = load_sweep_spec(spec)
    # a key after '<<:' overrides the merged one, as YAML means it to: no duplicate
    assert resolved.experiment["warm"] == {"perturb": 0.2, "intervention": "shrink_perturb"}
    # and an anchor used twice (once merged) is not a key given twice either
    assert [v["momentum"] for v in resolved.spec.parameters["optim"].values] == [0.5, 0.9]


def test_a_bare_config_with_a_key_twice_names_key_and_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 0.1\nwarm:\n  perturb: 0.1\n  intervention: dash\n  perturb: 0.2\n")
    with pytest.raises(InputError) as info:
        load_trial_config(path)
    # the key path within the file, the lines and the file
    assert str(info.value).startswith("warm.perturb: expected each key once in a mapping")
    assert f"'perturb' twice, at lines 3 and 5 of {path}" in str(info.value)


def test_max_failures_retries_by_default_and_forever_on_minus_1(tmp_path):
    grid = "method: grid\nparameters: {lr: {value: 0.01}}\n"
    spec = write_case(tmp_path, "experiment: {}\n" + grid)
    # node or worker loss is retried 3 times by default
    assert load_sweep_spec(spec).spec.resources.max_failures == 3
    spec.write_text("experiment: {}\n" + grid + "resources: {max_failures: -1}\n")
    # -1: Tune retries forever
    assert load_sweep_spec(spec).spec.resources.max_failures == -1


# --- the number checks cannot overflow ------------------------------------------------------------


@pytest.mark.parametrize(("x", "q"), [(0.25, 1e-320), (1e308, 1e-10), (10**308, 0.5),
                                      (-1e308, 1e-300), (5, 5e-324), (1.0, 1e308)])
def test_on_grid_never_overflows(x, q):
    # a ratio too large for a float is off any grid, not an OverflowError
    assert _on_grid(x, q) in (True, False)


@pytest.mark.parametrize("value", [10**400, -(10**400), math.inf, -math.inf, math.nan, True, "1e3"])
def test_finite_number_refuses_without_overflow(value):
    # every one is a rule broken (SpecRule, a ValueError), never an OverflowError
    with pytest.raises(ValueError) as info:
        _finite_number(value)
    assert not isinstance(info.value, OverflowError)


@pytest.mark.parametrize("param", [
    {"distribution": "uniform", "min": 1e308, "max": 1.7e308},
    {"distribution": "log_uniform_values", "min": 10.0, "max": 1e308},
    {"distribution": "q_uniform", "min": 0, "max": 1e308, "q": 1e300},
    {"distribution": "int_uniform", "min": -(10**300), "max": 10**300},
])
def test_a_range_centre_stays_finite_near_the_float_limit(param):
    centre = ParameterSpec.model_validate(param).default_value()
    # the centre a single trial uses is finite and inside the range
    assert math.isfinite(centre) and param["min"] <= centre <= param["max"]
