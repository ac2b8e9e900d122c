"""Load, resolve and validate sweep specs and experiment configs.

A file given to ``wssweep`` is either a *sweep spec* (it has an ``experiment:`` key plus the search
space) or a bare *experiment config* (what one trial runs, as in ``configs/``). Either way the
experiment is resolved (a ``configs/`` reference or an inline mapping), overridden by dotted keys,
and validated against ``ExperimentConfig``. Every problem becomes an ``InputError`` naming the key
path, what was expected and what was given.

Example:
    >>> cfg = experiment_from_mapping({"model": {"name": "logreg"}}, ["lr=0.1", "seed=3"])
    >>> cfg.lr, cfg.seed
    (0.1, 3)
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wssweep.config import ExperimentConfig
from wssweep.errors import InputError

# Where `experiment: configs/x.yaml` is looked up after the spec's own folder and the cwd.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterSpec(_Strict):
    """One swept parameter, in W&B's sweep vocabulary."""

    value: Any = None
    values: list[Any] | None = Field(default=None, min_length=1)
    distribution: (
        Literal["categorical", "int_uniform", "uniform", "log_uniform_values", "q_uniform"] | None
    ) = None
    min: float | None = None
    max: float | None = None
    q: float | None = Field(default=None, gt=0)

    def default_value(self) -> Any:
        """The value a single trial uses: ``value``, the first of ``values``, or the centre."""
        if self.values is not None:
            return self.values[0]
        if self.distribution is None:
            return self.value
        lo, hi = self.min, self.max
        if self.distribution == "log_uniform_values":
            return math.sqrt(lo * hi)
        if self.distribution == "int_uniform":
            return int((lo + hi) // 2)
        return (lo + hi) / 2


class MetricSpec(_Strict):
    name: str = "gap"
    goal: Literal["minimize", "maximize"] = "minimize"


class SweepSpec(_Strict):
    """A sweep: an experiment plus the search over its settings (W&B sweep vocabulary)."""

    experiment: str | dict[str, Any]
    name: str | None = None
    description: str | None = None
    method: Literal["grid", "random", "bayes"] = "grid"
    metric: MetricSpec = Field(default_factory=MetricSpec)
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    run_cap: int | None = Field(default=None, gt=0)
    early_terminate: dict[str, Any] | None = None
    resources: dict[str, Any] = Field(default_factory=dict)
    wandb: dict[str, Any] = Field(default_factory=dict)
    gap_tolerance: float = Field(default=0.5, ge=0)  # points of test accuracy that count as closed


def _known_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at ``loc`` (the path of an unknown key's parent) in ``schema``."""
    for part in loc:
        field = schema.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        schema = annotation
    return list(schema.model_fields)


def validation_error(exc: ValidationError, schema: type[BaseModel], prefix: str = "") -> InputError:
    """Turn pydantic's errors into one ``InputError`` whose message lists every bad key."""
    errors = []
    for err in exc.errors():
        key = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = _known_keys(schema, err["loc"][:-1])
            expected = "a known key" + (f" (one of: {', '.join(known)})" if known else "")
        else:
            msg = err["msg"]
            expected = msg[len("Input should be ") :] if msg.startswith("Input should be ") else msg
        errors.append(InputError(key, expected, err.get("input")))
    first = errors[0]
    first.args = ("\n".join(str(e) for e in errors),)
    return first


def read_yaml(path: str | Path, key: str = "SPEC") -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is an ``InputError`` naming ``key``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(key, "an existing YAML file", str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(key, f"valid YAML ({exc})", str(path)) from None
    if not isinstance(data, dict):
        raise InputError(key, "a YAML mapping at the top level", type(data).__name__)
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as YAML, so ``lr=1e-3`` is a float."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError("--set", "key=value (for example lr=0.01)", text)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(mapping: dict[str, Any], key: str, value: Any, origin: str = "--set") -> None:
    """Set ``a.b.c`` in nested dicts, creating levels; a scalar in the way is an error."""
    parts = key.split(".")
    node = mapping
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise InputError(f"{origin} {key}", f"{where} to be a mapping", child)
        node = child
    node[parts[-1]] = value


def resolve_experiment(ref: str | dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """An ``experiment:`` value: an inline mapping, or a YAML file under the spec, cwd or repo."""
    if isinstance(ref, dict):
        return copy.deepcopy(ref)
    for root in (base_dir, Path.cwd(), PACKAGE_ROOT):
        candidate = root / ref
        if candidate.is_file():
            return read_yaml(candidate, key="experiment")
    raise InputError("experiment", "a configs/ YAML file or an inline mapping", ref)


def experiment_from_mapping(
    experiment: dict[str, Any],
    overrides: list[str] | None = None,
    setting: dict[str, Any] | None = None,
    prefix: str = "",
) -> ExperimentConfig:
    """Apply a setting (dotted key -> value), then ``key=value`` overrides, and validate."""
    experiment = copy.deepcopy(experiment)
    for key, value in (setting or {}).items():
        set_dotted(experiment, key, value, origin="parameters")
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(experiment, key, value)
    try:
        return ExperimentConfig.model_validate(experiment)
    except ValidationError as exc:
        raise validation_error(exc, ExperimentConfig, prefix) from None


def load_sweep(path: str | Path) -> SweepSpec | None:
    """The sweep spec in ``path``, or ``None`` when the file is a bare experiment config."""
    data = read_yaml(path)
    if "experiment" not in data:
        return None
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, SweepSpec) from None


def load_trial_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """The config ``wssweep trial`` runs: one setting of the file, then ``--set`` overrides.

    For a sweep spec, each swept parameter takes its ``value``, first ``values`` entry or the
    centre of its range, and the seed is the first of ``seeds``.
    """
    path = Path(path)
    sweep = load_sweep(path)
    if sweep is None:
        return experiment_from_mapping(read_yaml(path), overrides)
    experiment = resolve_experiment(sweep.experiment, path.parent)
    setting = {"seed": sweep.seeds[0]}
    setting.update({key: param.default_value() for key, param in sweep.parameters.items()})
    return experiment_from_mapping(experiment, overrides, setting)
