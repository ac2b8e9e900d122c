"""W&B's own sweep configs (tests/wandb_configs.py), ported as a W&B user would: what W&B accepts
wssweep accepts, what W&B refuses wssweep refuses, naming the key path.

Porting (``port``) adds ``experiment:`` and renames each parameter to an experiment key that
takes the same kind of value, and the metric to one wssweep reports (W&B's metric is whatever
the script logs; ours is the gap, or warm accuracy to maximize).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.wandb_configs import DOCS, EXAMPLES_REPO, INVALID, SWEEPS, VALID
from wssweep import space
from wssweep.errors import InputError
from wssweep.spec import DISTRIBUTIONS, load_sweep_spec

REPO = Path(__file__).resolve().parents[1]

# A custom model, whose kwargs take any value: the key of last resort for a parameter (a normal
# draws negative numbers, values may be strings or mappings). Its factory is not imported here
# (preflight=False): the spec is what is tested.
EXPERIMENT: dict[str, Any] = {"data": {"name": "digits"},
                              "model": {"name": "custom", "factory": "tests.plugins:tiny_net"}}
# Experiment keys by the values they take, each used once per config before the next.
NONNEGATIVE = ["optim.weight_decay", "warm.perturb"]
KEYS: dict[str, list[str]] = {
    "count": ["warmup_steps", *NONNEGATIVE],  # integers ≥ 0
    "rate": ["lr", *NONNEGATIVE],  # numbers > 0
    "fraction": ["shrink", *NONNEGATIVE],  # numbers in [0, 1]
    "nonnegative": NONNEGATIVE,
}
# W&B's parameter names (schema.json#/definitions/parameters, propertyNames).
WANDB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# W&B distributions whose every value is > 0 (no q: rounding can give 0).
POSITIVE = {"log_uniform", "log_uniform_values", "inv_log_uniform", "inv_log_uniform_values",
            "log_normal"}


def _numbers(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def value_kind(param: Any) -> str:
    """What a W&B parameter's values are, read from its config as W&B's schema does."""
    if not isinstance(param, dict) or "parameters" in param:
        return "any"
    values = [param["value"]] if "value" in param else param.get("values")
    dist = param.get("distribution")
    if values is not None:
        if not values or not _numbers(values):
            return "any"
        if all(isinstance(v, int) and v >= 0 for v in values):
            return "count"
        return "rate" if min(values) > 0 else ("nonnegative" if min(values) >= 0 else "any")
    lo, hi = param.get("min"), param.get("max")
    if dist in POSITIVE:
        return "rate"
    if dist in ("beta", "q_beta"):
        return "fraction"
    if not _numbers([lo, hi]) or dist not in (None, "uniform", "int_uniform"):
        return "any"
    if isinstance(lo, int) and isinstance(hi, int) and dist != "uniform" and lo >= 0:
        return "count"
    if lo >= 0 and hi <= 1:
        return "fraction"
    return "rate" if lo > 0 else ("nonnegative" if lo >= 0 else "any")


def port(config: Any) -> tuple[Any, dict[str, str]]:
    """``config`` as a wssweep spec, and the parameter renames (W&B name -> experiment key)."""
    if not isinstance(config, dict):
        return config, {}
    spec = {"experiment": copy.deepcopy(EXPERIMENT), **copy.deepcopy(config)}
    names: dict[str, str] = {}
    params = spec.get("parameters")
    if isinstance(params, dict):
        free = {kind: list(keys) for kind, keys in KEYS.items()}
        renamed = {}
        for name, param in params.items():
            choices = free.get(value_kind(param), [])
            key = choices[0] if choices else f"model.kwargs.{name}"
            if not WANDB_NAME.match(name):
                key = name  # a name W&B refuses stays, to be refused here too
            for keys in free.values():
                if key in keys:
                    keys.remove(key)
            names[name] = key
            renamed[key] = param
        spec["parameters"] = renamed
    metric = spec.get("metric")
    if isinstance(metric, dict) and "name" in metric:
        metric["name"] = "warm/test_acc" if metric.get("goal") == "maximize" else "gap"
    for key in ("metrics",):
        if isinstance(spec.get(key), list):
            spec[key] = [{**m, "name": "gap"} if isinstance(m, dict) else m for m in spec[key]]
    return spec, names


def renamed_key(key: str, names: dict[str, str]) -> str:
    """``key`` (in W&B's parameter names) in the ported spec's names."""
    for name, new in names.items():
        old = f"parameters.{name}"
        if key == old or key.startswith(old + "."):
            return f"parameters.{new}" + key[len(old):]
    return key


def write(folder: Path, spec: Any) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _id(case: dict[str, Any]) -> str:
    return case["source"].removeprefix(SWEEPS + " ").removeprefix(DOCS + "/").removeprefix(
        EXAMPLES_REPO + " ")


def test_the_suite_is_large_and_every_case_cites_its_source():
    # at least 100 configs W&B accepts and 50 it refuses
    assert len(VALID) >= 100 and len(INVALID) >= 50
    # each from W&B's sweeps repository (tests, examples, schema, code) or its docs
    assert all(c["source"].startswith((SWEEPS, EXAMPLES_REPO, DOCS)) for c in VALID + INVALID)
    # among them wandb/examples' published example sweeps
    assert sum(c["source"].startswith(EXAMPLES_REPO) for c in VALID) >= 15


@pytest.mark.parametrize("case", VALID, ids=[_id(c) for c in VALID])
def test_a_config_wandb_accepts_is_accepted(tmp_path, case):
    spec, names = port(case["config"])
    resolved = load_sweep_spec(write(tmp_path, spec), preflight=False)
    swept = resolved.spec.parameters
    # every parameter is swept, nested ones as dotted keys under the renamed one
    assert all(any(k == new or k.startswith(new + ".") for k in swept) for new in names.values())
    # the search builds what validate describes
    text = space.describe(resolved)
    assert "Trials: " in text and "Parameters:" in text
    # a random or bayes search without run_cap runs until stopped, and says so
    if resolved.spec.method != "grid" and "run_cap" not in case["config"]:
        assert space.trial_count(resolved.spec) is None and "until stopped" in text


@pytest.mark.parametrize("case", INVALID, ids=[_id(c) for c in INVALID])
def test_a_config_wandb_refuses_is_refused_naming_the_key(tmp_path, case):
    spec, names = port(case["config"])
    with pytest.raises(InputError) as info:
        load_sweep_spec(write(tmp_path, spec), preflight=False)
    # the error names the key path of the problem
    assert info.value.key == renamed_key(case["key"], names), str(info.value)
    assert str(info.value).startswith(f"{info.value.key}: expected ")


# A sample through the CLI: exit 2, the key path, no traceback.
CLI_SAMPLE = INVALID[::8]


def test_validate_refuses_a_sample_with_exit_2_and_no_traceback(tmp_path):
    for i, case in enumerate(CLI_SAMPLE):
        folder = tmp_path / str(i)
        folder.mkdir()
        spec, names = port(case["config"])
        out = subprocess.run([sys.executable, "-m", "wssweep", "validate",
                              str(write(folder, spec))], capture_output=True, text=True,
                             cwd=folder, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 2, (case["source"], out.stderr)
        assert "Traceback" not in out.stderr + out.stdout
        assert f"{renamed_key(case['key'], names)}: expected" in out.stderr, out.stderr


# W&B's own schema (wandb/sweeps src/sweeps/config/schema.json, MIT licence, copied unchanged):
# the cases are what W&B says they are.
SCHEMA = json.loads((Path(__file__).parent / "wandb_sweep_schema.json").read_text())


def wandb_violations(config: dict[str, Any]) -> list[str]:
    """What W&B's ``schema_violations_from_proposed_config`` reports, bar its deprecation notes
    and its Launch scheduler rules: the JSON schema (with W&B's float and integer formats), a
    required ``parameters``, min below max, probabilities that fit their values."""
    formats = jsonschema.FormatChecker()
    formats.checks("float")(lambda v: isinstance(v, float))
    formats.checks("integer")(lambda v: isinstance(v, int))
    found = [e.message for e in jsonschema.Draft7Validator(
        SCHEMA, format_checker=formats).iter_errors(config)]
    params = config.get("parameters")
    if params is None:
        found.append("parameters is required")
    for name, p in (params or {}).items() if isinstance(params, dict) else ():
        if isinstance(p, dict) and "min" in p and "max" in p and not p["min"] < p["max"]:
            found.append(f"{name}: min is not less than max")
        probs = p.get("probabilities") if isinstance(p, dict) else None
        if probs is not None and (len(probs) != len(p.get("values", [])) or
                                  not math.isclose(sum(probs), 1.0, rel_tol=1e-5)):
            found.append(f"{name}: probabilities do not fit the values")
    return found


@pytest.mark.parametrize("case", VALID, ids=[_id(c) for c in VALID])
def test_wandbs_schema_accepts_each_valid_case(case):
    assert wandb_violations(case["config"]) == []


SCHEMA_INVALID = [c for c in INVALID if "schema.json" in c["source"]
                  or "test_config.py::test_min_max" in c["source"]]


@pytest.mark.parametrize("case", SCHEMA_INVALID, ids=[_id(c) for c in SCHEMA_INVALID])
def test_wandbs_schema_refuses_each_case_taken_from_it(case):
    assert wandb_violations(case["config"])


def test_the_readme_lists_every_distribution_with_its_keys():
    text = (REPO / "README.md").read_text()
    section = text.split("### The sweep spec")[1].split("\n### ")[0]
    for dist, keys in DISTRIBUTIONS.items():
        # each distribution, and each key it takes, is in the spec section
        assert f"`{dist}`" in section, dist
        assert all(f"`{key}`" in section for key in keys), dist
