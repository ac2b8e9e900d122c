"""The science holds no second copy of a config default, and leaves user-input errors to the edge.

``wssweep.config.ExperimentConfig`` holds every default and validates every value (``wssweep
validate``). A science function that repeated a default could drift from the config without any
test noticing, so every parameter that is a config key is listed here with its key: it must have
no default, and the key must exist (so the table cannot name a key that was renamed or removed).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wssweep.config import ExperimentConfig, union_members
from wssweep.errors import InputError
from wssweep.science import interventions, meta, optim, protocols, schedules, train
from wssweep.science.interventions import dash, l2_init_penalty, shrink_perturb
from wssweep.science.meta import short_horizon_lr
from wssweep.science.optim import catapult_lr, make_optimizer
from wssweep.science.protocols import stage_pools
from wssweep.science.schedules import Schedule, make_schedule
from wssweep.science.train import StopRule, train_stage
from wssweep.spec import experiment_from_mapping

# (science callable, its parameter, the ExperimentConfig key it takes its value from)
CONFIG_PARAMETERS: list[tuple[Callable[..., Any], str, str]] = [
    (make_optimizer, "name", "optim.name"),
    (make_optimizer, "lr", "lr"),
    (make_optimizer, "momentum", "optim.momentum"),
    (make_optimizer, "betas", "optim.betas"),
    (make_optimizer, "weight_decay", "optim.weight_decay"),
    (catapult_lr, "optimizer_name", "optim.name"),
    (catapult_lr, "lr_target", "lr"),
    (make_schedule, "lr", "lr"),
    (make_schedule, "warmup_steps", "warmup_steps"),
    (make_schedule, "warmup_init", "optim.warmup_init"),
    (make_schedule, "catapult", "optim.warmup_init"),  # warmup_init: catapult
    (make_schedule, "kind", "optim.schedule"),
    (make_schedule, "decay_steps", "optim.decay_steps"),
    (make_schedule, "switch_step", "optim.switch_step"),
    (make_schedule, "ratio", "optim.ratio"),
    (Schedule, "lr", "lr"),
    (Schedule, "warmup_steps", "warmup_steps"),
    (Schedule, "warmup_init", "optim.warmup_init"),
    (Schedule, "catapult", "optim.warmup_init"),
    (Schedule, "kind", "optim.schedule"),
    (Schedule, "decay_steps", "optim.decay_steps"),
    (Schedule, "switch_step", "optim.switch_step"),
    (Schedule, "ratio", "optim.ratio"),
    (StopRule, "train_acc", "protocol.stop.train_acc"),
    (StopRule, "plateau_std", "protocol.stop.plateau_std"),
    (StopRule, "plateau_window", "protocol.stop.plateau_window"),
    (StopRule, "max_epochs", "protocol.stop.max_epochs"),
    (StopRule, "min_epochs", "protocol.stop.min_epochs"),
    (train_stage, "batch_size", "optim.batch_size"),
    (stage_pools, "kind", "protocol.kind"),
    (stage_pools, "fraction", "protocol.fraction"),
    (stage_pools, "chunks", "protocol.chunks"),
    (shrink_perturb, "shrink", "shrink"),  # through ExperimentConfig.resolved_shrink
    (shrink_perturb, "perturb", "warm.perturb"),
    (shrink_perturb, "noise", "warm.noise"),
    (dash, "shrink", "shrink"),  # through ExperimentConfig.resolved_shrink
    (dash, "alpha", "warm.dash_alpha"),
    (dash, "granularity", "warm.granularity"),
    (l2_init_penalty, "coef", "warm.l2_coef"),
    (short_horizon_lr, "horizon", "meta_horizon"),
    (short_horizon_lr, "batch_size", "optim.batch_size"),
    (short_horizon_lr, "score_batches", "warm.meta_score_batches"),
]

# The modules whose functions take validated values; InputError (a user-input error with a key
# path) stays where input the schema cannot cover is read (data files, user code, imports).
VALIDATED_MODULES = [optim, schedules, train, protocols, interventions, meta]


def config_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key of ``model`` as a dotted path, sections included."""
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(prefix + name)
        for member in union_members(info.annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                keys |= config_keys(member, f"{prefix}{name}.")
    return keys


KEYS = config_keys(ExperimentConfig)


def default_of(target: Callable[..., Any], parameter: str) -> Any:
    """The default of ``parameter`` (``inspect.Parameter.empty`` if none); dataclass fields too."""
    if dataclasses.is_dataclass(target):
        (field,) = [f for f in dataclasses.fields(target) if f.name == parameter]
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory
        return inspect.Parameter.empty
    return inspect.signature(target).parameters[parameter].default


def _id(row: tuple[Callable[..., Any], str, str]) -> str:
    return f"{row[0].__name__}.{row[1]}"


def test_the_key_walk_finds_nested_keys():
    # the walk reaches sections of sections, so a missing key in the table is a real miss
    assert {"lr", "optim.decay_steps", "protocol.stop.max_epochs", "warm.noise"} <= KEYS


@pytest.mark.parametrize("row", CONFIG_PARAMETERS, ids=_id)
def test_config_parameters_have_no_default_here(row):
    target, parameter, key = row
    # the key the parameter takes its value from is in the schema (the table cannot rot)
    assert key in KEYS, f"{key} is not an ExperimentConfig key"
    # and the science holds no second copy of its default
    assert default_of(target, parameter) is inspect.Parameter.empty, (
        f"{_id(row)} has a default; the config's {key} holds it")


def test_every_dataclass_field_of_the_table_is_one():
    # a name in the table that is not a field (a typo) would otherwise fail as a bare unpack
    for target, parameter, _ in CONFIG_PARAMETERS:
        if dataclasses.is_dataclass(target):
            assert parameter in {f.name for f in dataclasses.fields(target)}, _id((target,
                                                                                 parameter, ""))


def input_error_uses(source: str) -> list[str]:
    """Lines of ``source`` that raise or import ``InputError``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", None)
            if name == InputError.__name__:
                found.append(f"line {node.lineno}: raise {name}")
        if isinstance(node, ast.ImportFrom) and any(
                alias.name == InputError.__name__ for alias in node.names):
            found.append(f"line {node.lineno}: import {InputError.__name__}")
    return found


def test_the_input_error_scan_finds_raises_and_imports():
    # the scan is not vacuous: each way of raising it is caught
    source = ("from wssweep.errors import InputError\n"
              "raise InputError('k', 'e', 1)\n"
              "raise errors.InputError('k', 'e', 1)\n"
              "raise InputError\n"
              "raise ValueError('fine')\n")
    assert input_error_uses(source) == ["line 1: import InputError", "line 2: raise InputError",
                                        "line 3: raise InputError", "line 4: raise InputError"]


@pytest.mark.parametrize("module", VALIDATED_MODULES, ids=lambda m: m.__name__)
def test_no_input_error_where_values_come_validated(module):
    source = Path(inspect.getfile(module)).read_text(encoding="utf-8")
    # a bad value here is the caller's bug (ValueError), not the user's input: the config said so
    assert input_error_uses(source) == []


def test_a_negative_warmup_start_rate_is_refused_at_the_edge():
    # the schedule no longer reports it as user input, so the schema must
    with pytest.raises(InputError) as info:
        experiment_from_mapping({"warmup_steps": 10, "optim": {"warmup_init": -0.1}})
    assert info.value.key.endswith("optim.warmup_init")
