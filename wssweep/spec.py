"""Load, resolve and validate sweep specs and experiment configs.

A file given to ``wssweep`` is either a *sweep spec* (it has an ``experiment:`` key plus the search
space) or a bare *experiment config* (what one trial runs, as in ``configs/``). Either way the
experiment is resolved (a ``configs/`` reference or an inline mapping), overridden by dotted keys,
and validated against ``ExperimentConfig``. Every problem becomes an ``InputError`` naming the key
path, what was expected and what was given; that includes a key given twice in a YAML file (YAML
would silently keep the last), a boolean where a number goes, and NaN or an infinity.

The search space is W&B's sweep config (wandb/sweeps' ``schema.json``, search and stopping code):
``method``, ``metric`` (``name``, ``goal``, ``target``, ``impute``), ``parameters`` (``value``,
``values`` with optional ``probabilities``, every W&B ``distribution`` with its keys, nested
``parameters`` as dotted keys), ``run_cap``, ``early_terminate`` (hyperband); W&B's keys that do
not apply here (``program``, ``command``, ``controller``, ...) are accepted with a note, and
``project`` / ``entity`` set ``wandb.project`` / ``entity``. So an existing W&B sweep ports by
adding ``experiment:`` (and naming experiment keys and a reported metric). As in W&B, a
parameter's distribution is implied by its keys: ``min`` and ``max`` are ``int_uniform`` when
both are integers and ``uniform`` otherwise. Our own keys: ``experiment``, ``seeds``,
``resources``, ``wandb``, ``gap_tolerance``, ``reference``, ``correction``.

Two entry points:

- ``load_sweep_spec(path, overrides)`` (``wssweep run`` / ``validate``): the full check, including
  the rules that only matter for running the search (a ``grid`` enumerates only values and
  int_uniform or q_uniform ranges; W&B's required ``method`` and ``parameters``; a ``metric`` for
  bayes and hyperband) and every parameter's candidate values tried against the experiment,
  alone and combined (every setting of a grid). Random and bayes without ``run_cap`` run until
  stopped.
- ``load_trial_config(path, overrides)`` (``wssweep trial``): one setting of any file; it checks the
  spec's schema but not the search rules, since it runs no search.

``--set key=value`` overrides change the experiment, not the search: overriding a swept key (or one
nested under it, or ``seed``) is an error, since the sweep would overwrite it in every trial.

Example:
    >>> cfg = experiment_from_mapping({"model": {"name": "logreg"}}, ["lr=0.1", "seed=3"])
    >>> cfg.lr, cfg.seed
    (0.1, 3)
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import sys
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wssweep.comparisons import cold_keys
from wssweep.config import (
    NAME_MAX,
    ExperimentConfig,
    Shown,
    SpecRule,
    StrictModel,
    shown_int,
    union_members,
)
from wssweep.errors import InputError, given_text
from wssweep.files import path_kind, shown
from wssweep.metrics import METRIC, METRICS
from wssweep.verdicts import DEFAULT_CORRECTION

# Where `experiment: configs/x.yaml` is looked up after the spec's own folder and the cwd.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: Metrics a sweep may optimize (``wssweep.metrics``): ``nqm/final_loss`` comes from
#: ``kind: nqm`` experiments, the others from ``kind: network``.
REPORTED_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.optimizable)

#: W&B's distributions (wandb/sweeps, src/sweeps/config/schema.json) and the keys each takes
#: besides ``distribution``. Declared once: inference, the checks, ``ppf`` and the Tune and
#: Optuna spaces (``wssweep.space``) read it; tests/test_spec_wandb.py holds the README to it.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values",),
    "categorical_w_probabilities": ("values", "probabilities"),
    "int_uniform": ("min", "max"),
    "uniform": ("min", "max"),
    "q_uniform": ("min", "max", "q"),
    "log_uniform": ("min", "max"),  # min, max: natural-log exponents (W&B's v1)
    "log_uniform_values": ("min", "max"),
    "q_log_uniform": ("min", "max", "q"),
    "q_log_uniform_values": ("min", "max", "q"),
    "inv_log_uniform": ("min", "max"),  # value = exp(-x), x uniform in [min, max]
    "inv_log_uniform_values": ("min", "max"),
    "normal": ("mu", "sigma"),
    "q_normal": ("mu", "sigma", "q"),
    "log_normal": ("mu", "sigma"),
    "q_log_normal": ("mu", "sigma", "q"),
    "beta": ("a", "b"),
    "q_beta": ("a", "b", "q"),
}

#: What W&B's grid enumerates (grid_search.py): values, a constant, and these two ranges
#: (int_uniform: min .. max; q_uniform: numpy.arange(min, max, q), so max is left out).
GRID_DISTRIBUTIONS: tuple[str, ...] = ("constant", "categorical", "int_uniform", "q_uniform")
#: W&B's v1 forms, whose min and max are exponents; its library now points to the _values forms.
EXPONENT_DISTRIBUTIONS: dict[str, str] = {"log_uniform": "log_uniform_values",
                                          "q_log_uniform": "q_log_uniform_values",
                                          "inv_log_uniform": "inv_log_uniform_values"}
#: W&B's defaults for the keys it fills in (schema.json).
DISTRIBUTION_DEFAULTS: dict[str, float] = {"mu": 0.0, "sigma": 1.0, "a": 1.0, "b": 1.0, "q": 1.0}
#: Distributions with unbounded support draw their uniform variable u from [U_EDGE, 1 - U_EDGE]
#: (W&B draws from [0, 1], where u = 0 gives -inf): every value a trial can get is then between
#: the two that validation tries against the experiment. The tails cut are 1e-9 of each side.
U_EDGE = 1e-9
UNBOUNDED: frozenset[str] = frozenset({"normal", "q_normal", "log_normal", "q_log_normal"})
#: Most values one parameter of a grid enumerates (W&B has no limit; a grid this large would
#: not finish).
GRID_VALUES_MAX = 100_000
#: Most settings a grid may have (its parameters' values multiplied): validation tries each one
#: against the experiment, and the sweep records each. Larger spaces: method random or bayes.
GRID_SETTINGS_MAX = 100_000
#: Most bands an early_terminate with max_iter may make (log(max_iter) / log(eta), capped by s).
HYPERBAND_BANDS_MAX = 1000
#: W&B's rules for a project name and a tag (its wandb.Settings validators; a name breaking them
#: fails every trial's wandb.init): tests/test_spec.py checks they agree with W&B's own.
WANDB_PROJECT_PATTERN = r"^[^/\\#?%:]{1,128}$"
WANDB_TAG_CHARS = (1, 64)
#: int_uniform samples 64-bit integers (as W&B's numpy does).
INT64_MAX = 2**63 - 1

# A sweep name becomes a directory and an Optuna study name.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_DOTTED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def name_slug(name: str) -> str:
    """``name`` as a directory name: runs of other characters become '-'.

    Example:
        >>> name_slug("Elastic Sweep 07-06 1027")
        'Elastic-Sweep-07-06-1027'
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    return re.sub(r"^[^A-Za-z0-9]+", "", slug).rstrip("-")


class _Nothing:
    """What an error shows as given when a required key is absent."""

    def __repr__(self) -> str:
        return "nothing"


NOTHING = _Nothing()


class _Strict(StrictModel):
    """A sweep-spec section. Not frozen, unlike the experiment config: ``ParameterSpec`` fills in
    the distribution that its keys imply, and W&B's defaults."""


def _finite_number(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE]\d+", value.strip()):
        # YAML 1.1 reads 1e3 as text: its floats need a dot and a signed exponent.
        raise SpecRule("", "a finite number (YAML reads 1e3 as text: write 1.0e+3)", value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecRule("", "a finite number", value)
    # An int is compared, not converted: float(10**400) would raise OverflowError.
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        raise SpecRule("", "a finite number (within float range)", shown_int(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecRule("", "a finite number", value)
    return value


# An int stays an int (int_uniform needs integer bounds), a float a float; no strings or booleans.
Number = Annotated[int | float, BeforeValidator(_finite_number)]


def _json_integer(value: Any) -> Any:
    """An integer as W&B's JSON schema reads one: an int, or a float with no fraction (1.0); no
    string ('1') and no boolean."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecRule("", "an integer", value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _on_grid(x: float, q: float) -> bool:
    # Whether x is a multiple of q. A tiny q makes x / q infinite, which round() cannot take:
    # that is off any grid a search can use.
    ratio = x / q if q else math.inf
    return math.isfinite(ratio) and math.isclose(ratio, round(ratio))


def round_to_q(x: float, q: float) -> float | int:
    """W&B's quantization, ``numpy.round(x / q) * q`` (halves to even), an int when ``q`` is one.

    Where ``x / q`` overflows (``q: 1e-320``) the nearest multiple of ``q`` is ``x`` itself, to
    float precision, so ``x`` is kept (W&B would give inf).

    Example:
        >>> round_to_q(0.37, 0.25), round_to_q(7.4, 5), round_to_q(0.25, 1.0e-320)
        (0.25, 5, 0.25)
    """
    ratio = x / q
    if not math.isfinite(ratio):
        return int(round(x)) if isinstance(q, int) else x
    n = round(ratio)
    if isinstance(q, int):
        return n * q
    out = float(n) * q
    return out if math.isfinite(out) else x


def _between(lo: float, hi: float, u: float) -> float:
    # (1 - u) lo + u hi is exact at both ends and cannot overflow where hi - lo would.
    return (1 - u) * lo + u * hi


def _beta_ppf(a: float, b: float, u: float) -> float:
    if u <= 0 or u >= 1:  # the ends, as validation asks for them, without importing SciPy
        return 0.0 if u <= 0 else 1.0
    from scipy.special import betaincinv  # only beta pays for SciPy's import

    return float(betaincinv(a, b, u))


class ParameterSpec(_Strict):
    """One swept parameter, in W&B's sweep vocabulary (wandb/sweeps ``schema.json``).

    ``value`` (a constant), ``values`` (categorical; with ``probabilities``,
    categorical_w_probabilities), ``distribution`` with the keys ``DISTRIBUTIONS`` lists, or
    ``parameters`` (nested parameters, swept as dotted keys). As in W&B, the distribution is
    implied when absent: ``value`` is constant, ``values`` categorical, ``min`` and ``max``
    ``int_uniform`` when both are integers and ``uniform`` otherwise; ``mu``, ``sigma``, ``a``,
    ``b`` and ``q`` default to W&B's 0, 1, 1, 1 and 1.0.

    Example:
        >>> p = ParameterSpec.model_validate({"distribution": "q_log_uniform_values",
        ...                                   "min": 1, "max": 1000, "q": 1})
        >>> p.ppf(0.0), p.ppf(0.5), p.ppf(1.0)
        (1, 32, 1000)
    """

    value: Any = None
    values: list[Any] | None = Field(default=None, min_length=1)
    probabilities: list[Number] | None = Field(default=None, min_length=1)
    distribution: Literal[tuple(DISTRIBUTIONS)] | None = None  # type: ignore[valid-type]
    min: Number | None = None
    max: Number | None = None
    q: Number | None = None
    mu: Number | None = None
    sigma: Number | None = None
    a: Number | None = None
    b: Number | None = None
    parameters: dict[str, ParameterSpec] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        given = {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}
        if "parameters" in given:
            return self._check_nested(given)
        has_value = "value" in given
        if has_value and ("values" in given or self.distribution not in (None, "constant")):
            raise SpecRule("", "exactly one of value, values or distribution", given)
        if self.distribution is None:
            self.distribution = self._implied(given)
        dist = self.distribution
        takes = DISTRIBUTIONS[dist]
        for key, value in given.items():
            if key != "distribution" and key not in takes:
                raise SpecRule(key, f"no {key} with distribution {dist} (it takes "
                               f"{', '.join(takes)})", value)
        for key in takes:
            if key in given:
                continue
            if key in DISTRIBUTION_DEFAULTS:
                setattr(self, key, DISTRIBUTION_DEFAULTS[key])
            elif key in ("min", "max"):
                raise SpecRule(key, f"a number (distribution {dist} needs min and max)", None)
            elif key == "value":
                raise SpecRule(key, "a value (distribution constant)", NOTHING)
            else:
                raise SpecRule(key, f"a non-empty list (distribution {dist} draws from values"
                               + (" with these probabilities)" if key == "probabilities" else ")"),
                               None)
        if "min" in takes:
            self._check_range()
        self._check_shape()
        if dist == "categorical_w_probabilities":
            self._check_probabilities()
        self._check_edges()
        return self

    def _check_nested(self, given: dict[str, Any]) -> ParameterSpec:
        for key, value in given.items():
            if key != "parameters":
                raise SpecRule(key, f"no {key} with parameters (a parameter with parameters "
                               "nests others under its name, and takes nothing else)", value)
        if not self.parameters:
            raise SpecRule("parameters", "at least one nested parameter", self.parameters)
        return self

    @staticmethod
    def _implied(given: dict[str, Any]) -> str:
        """W&B's inference of a distribution from the keys given (its schemas, in order)."""
        if "value" in given:
            return "constant"
        if "values" in given:
            return "categorical_w_probabilities" if "probabilities" in given else "categorical"
        bounds = [given[k] for k in ("min", "max") if k in given]
        if bounds:
            # W&B: min/max without a distribution is int_uniform for integers, else uniform.
            return "int_uniform" if all(isinstance(b, int) for b in bounds) else "uniform"
        raise SpecRule("", "one of value, values or distribution (with min and max)", given)

    def _check_range(self) -> None:
        dist, lo, hi = self.distribution, self.min, self.max
        if dist == "int_uniform":
            for name in ("min", "max"):
                if not isinstance(getattr(self, name), int):
                    raise SpecRule(name, "an integer (distribution int_uniform)",
                                   getattr(self, name))
        if not lo < hi:
            raise SpecRule("max", f"a number greater than min ({lo})", hi)
        if dist.endswith("_values") and lo <= 0:
            raise SpecRule("min", f"a number greater than 0 ({dist} samples log(value))", lo)

    def _check_shape(self) -> None:
        for name in ("sigma", "a", "b", "q"):
            value = getattr(self, name)
            if name in DISTRIBUTIONS[self.distribution] and not value > 0:
                # sigma, a or b of 0 makes W&B's sampler return NaN; a q of 0 divides by zero.
                raise SpecRule(name, f"a number greater than 0 (distribution {self.distribution})",
                               value)

    def _check_probabilities(self) -> None:
        probs, values = self.probabilities, self.values
        if len(probs) != len(values):
            raise SpecRule("probabilities", f"one probability per value ({len(values)})", probs)
        if any(p < 0 for p in probs):
            raise SpecRule("probabilities", "numbers ≥ 0", probs)
        if not math.isclose(math.fsum(probs), 1.0, rel_tol=1e-5, abs_tol=1e-8):
            raise SpecRule("probabilities", "numbers that sum to 1", probs)

    def _check_edges(self) -> None:
        """Every value the distribution can give must be a finite number."""
        if self.distribution in ("constant", "categorical", "categorical_w_probabilities"):
            return
        for u in self.u_range:
            try:
                edge = self.ppf(u)
            except (OverflowError, ValueError):
                edge = math.inf
            if not math.isfinite(edge):
                keys = ", ".join(k for k in DISTRIBUTIONS[self.distribution] if k != "q")
                raise SpecRule("", f"{keys} whose values are finite numbers (distribution "
                               f"{self.distribution} reaches {edge} at its "
                               f"{'upper' if u > 0.5 else 'lower'} end)",
                               {k: getattr(self, k) for k in DISTRIBUTIONS[self.distribution]})

    @property
    def kind(self) -> str:
        """``constant``, ``categorical``, ``nested`` or the distribution's name."""
        if self.parameters is not None:
            return "nested"
        return self.distribution or "categorical"

    @property
    def u_range(self) -> tuple[float, float]:
        """Where the uniform variable behind a draw lies (``U_EDGE`` for unbounded support)."""
        return (U_EDGE, 1 - U_EDGE) if self.distribution in UNBOUNDED else (0.0, 1.0)

    @property
    def integral(self) -> bool:
        """Whether every value is an integer: int_uniform, or quantized by an integral q."""
        if self.distribution == "int_uniform":
            return True
        return self.distribution.startswith("q_") and float(self.q).is_integer()

    @property
    def tune_quniform(self) -> bool:
        """Whether Ray Tune's quniform draws this q_uniform exactly as W&B does: a float q, and
        both bounds on its grid (Tune rounds to multiples inside the bounds, W&B beyond them)."""
        return (self.distribution == "q_uniform" and isinstance(self.q, float)
                and _on_grid(self.min, self.q) and _on_grid(self.max, self.q))

    def ppf(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1]: W&B's transform of its uniform variable
        (``HyperParameter.ppf`` in wandb/sweeps params.py), q rounding included."""
        dist = self.distribution
        if dist == "constant":
            return self.value
        if dist == "categorical":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if dist == "categorical_w_probabilities":
            total = 0.0
            for value, p in zip(self.values, self.probabilities, strict=True):
                total += p
                if u < total:
                    return value
            return self.values[-1]
        lo, hi = self.min, self.max
        base = dist.removeprefix("q_")
        if dist == "int_uniform":
            # scipy's randint.ppf: ceil(u * (max + 1 - min) + min) - 1, kept inside [min, max]
            return max(lo, min(hi, math.ceil(_between(lo, hi + 1, u)) - 1))
        if base == "uniform":
            x = _between(lo, hi, u)
        elif base == "log_uniform":
            x = math.exp(_between(lo, hi, u))
        elif base == "log_uniform_values":
            x = math.exp(_between(math.log(lo), math.log(hi), u))
        elif dist == "inv_log_uniform":
            x = math.exp(-_between(hi, lo, u))
        elif dist == "inv_log_uniform_values":
            x = math.exp(_between(math.log(lo), math.log(hi), u))
        elif base in ("normal", "log_normal"):
            x = self.mu + self.sigma * NormalDist().inv_cdf(min(max(u, U_EDGE), 1 - U_EDGE))
            x = math.exp(x) if base == "log_normal" else x
        else:  # beta
            x = _beta_ppf(self.a, self.b, u)
        return round_to_q(x, self.q) if dist.startswith("q_") else x

    def grid_values(self) -> list[Any]:
        """What W&B's grid enumerates for this parameter (``GRID_DISTRIBUTIONS``)."""
        if self.distribution == "constant":
            return [self.value]
        if self.distribution == "int_uniform":
            return list(range(self.min, self.max + 1))
        if self.distribution == "q_uniform":
            import numpy as np  # W&B's own enumeration, float steps and all

            return np.arange(self.min, self.max, self.q).tolist()
        return list(self.values)

    def grid_size(self) -> int:
        """How many values ``grid_values`` gives, without building them."""
        if self.distribution == "int_uniform":
            return self.max - self.min + 1
        if self.distribution == "q_uniform":
            steps = (self.max - self.min) / self.q
            return math.ceil(steps) if math.isfinite(steps) else INT64_MAX
        return 1 if self.distribution == "constant" else len(self.values)

    def candidates(self, grid: bool = False) -> list[Any]:
        """The values to try against the experiment: the constant, each value, each value a grid
        enumerates (``grid``), or both ends of what a draw can give."""
        if self.distribution in ("constant", "categorical", "categorical_w_probabilities"):
            values = self.grid_values() if self.distribution == "constant" else self.values
            return [v for i, v in enumerate(values) if not any(_same(v, w) for w in values[:i])]
        if grid:
            return self.grid_values()
        lo, hi = (self.ppf(u) for u in self.u_range)
        return [lo] if _same(lo, hi) else [lo, hi]

    def default_value(self) -> Any:
        """The value a single trial uses: ``value``, the first of ``values``, or the centre
        (the median: the midpoint of a uniform range, the geometric one of a log range)."""
        if self.values is not None:
            return self.values[0]
        if self.distribution == "constant":
            return self.value
        lo, hi = self.min, self.max
        # Halves and roots before combining: lo + hi or lo * hi can overflow near float's limit.
        if self.distribution == "log_uniform_values":
            return math.sqrt(lo) * math.sqrt(hi)
        if self.distribution == "int_uniform":
            return int((lo + hi) // 2)
        if self.distribution in ("uniform", "q_uniform"):
            centre = lo / 2 + hi / 2
            return round_to_q(centre, self.q) if self.distribution == "q_uniform" else centre
        return self.ppf(0.5)


def flat_parameters(parameters: dict[str, ParameterSpec], prefix: str = "") -> dict[
        str, ParameterSpec]:
    """Nested parameters as dotted keys, as W&B nests their values in the run's config.

    Example:
        >>> nested = ParameterSpec.model_validate({"parameters": {"lr": {"value": 0.1}}})
        >>> list(flat_parameters({"optim": nested, "seedless": nested}))
        ['optim.lr', 'seedless.lr']
    """
    out: dict[str, ParameterSpec] = {}
    for key, param in parameters.items():
        if param.parameters is not None:
            out.update(flat_parameters(param.parameters, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = param
    return out


class MetricSpec(_Strict):
    """W&B's ``metric``: ``name`` (required once metric is given), ``goal``, ``target`` (the sweep
    ends when a finished trial reaches it), ``impute`` (what bayes is told for a failed trial)."""

    name: Literal[REPORTED_METRICS]  # type: ignore[valid-type]
    goal: Literal["minimize", "maximize"] = "minimize"
    target: Number | None = None
    # W&B's imputation for runs that fail (bayes_search.py): the worst value any finished trial
    # reached, this trial's best, or its latest reported value (0 where there is none, as W&B).
    impute: Literal["latest", "best", "worst"] | None = None
    # Optuna's TPE reads only finished trials, so a value imputed while running has no use: the
    # key is accepted and has no effect (named in the README).
    impute_while_running: Literal["latest", "best", "worst", "false", False] | None = None

    @property
    def mode(self) -> Literal["min", "max"]:
        """Ray Tune's spelling of the goal."""
        return "min" if self.goal == "minimize" else "max"

    @property
    def objective(self) -> str:
        """What the search and the early termination compare: the metric's validation twin for
        a metric on test data (``gap`` → ``val_gap``), else the metric itself."""
        return METRIC[self.name].objective

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets ``target`` for the goal (W&B: ≤ to minimize, ≥ to maximize)."""
        if self.target is None:
            return False
        return value <= self.target if self.goal == "minimize" else value >= self.target


class ResourcesSpec(_Strict):
    cpus_per_trial: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    trials_per_gpu: int | None = Field(default=None, ge=1)  # null: trials use no GPU
    # Tune's FailureConfig: retries after a node or worker is lost, each resuming from the trial's
    # last stage checkpoint; -1 retries forever. An exception the science raises is a result (the
    # trial reports it), not a failure, so it is not retried.
    max_failures: int = Field(default=3, ge=-1)
    # Trial groups (wssweep.science.group): the members of one Ray Tune trial train as one fused
    # model. seeds: the seeds of one setting (each method, hyperband and seeds until decided then
    # work per setting); settings: every grid setting that shares the model's shapes; false:
    # one (setting, seed) per trial, trained alone (the bit-reproducible path).
    fuse: Literal["seeds", "settings", False] = "seeds"


def _wandb_project(value: str) -> str:
    if not re.fullmatch(WANDB_PROJECT_PATTERN, value):
        raise SpecRule("", "a W&B project name: 1 to 128 characters, none of / \\ # ? % :",
                       value)
    return value


WandbTag = Annotated[str, Field(min_length=WANDB_TAG_CHARS[0], max_length=WANDB_TAG_CHARS[1])]


class WandbSpec(_Strict):
    project: Annotated[str, AfterValidator(_wandb_project)] = "wssweep"
    entity: str | None = None
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"  # auto: online with a key
    tags: list[WandbTag] = Field(default_factory=list)


class EarlyTerminateSpec(_Strict):
    """W&B's hyperband early termination over finished stages (``wssweep.space`` stops trials at
    exactly these bands, by W&B's rule).

    ``min_iter`` (bands at min_iter * eta**k, 100 of them, as W&B makes) or ``max_iter`` with
    ``s`` (bands max_iter / eta**k for k = 1..s, those ≥ 1); when both are given W&B uses
    ``max_iter``. ``strict`` (W&B's default true) compares a trial's value at the band, else its
    best so far.

    Example:
        >>> EarlyTerminateSpec(type="hyperband", max_iter=100, s=3).bands()
        [3, 11, 33]
    """

    type: Literal["hyperband"]
    min_iter: JsonInt | None = Field(default=None, ge=1)
    max_iter: JsonInt | None = None
    # W&B's schema says number, but its code runs range(s): an integer it is.
    s: int | None = Field(default=None, ge=1, strict=True)
    eta: Number = 3

    strict: bool = Field(default=True, strict=True)

    @model_validator(mode="after")
    def _one_form(self) -> EarlyTerminateSpec:
        given = self.model_dump(exclude_unset=True)
        if not self.eta > 1:
            raise SpecRule("eta", "a number greater than 1", self.eta)
        if self.max_iter is None and self.min_iter is None:
            raise SpecRule("", "min_iter, or max_iter with s", given)
        if self.max_iter is not None and self.s is None:
            # W&B's code reads s whenever max_iter is given (a KeyError without it).
            raise SpecRule("s", "an integer ≥ 1 with max_iter (the number of bands)", None)
        if self.max_iter is not None and self.max_iter / self.eta < 1:
            raise SpecRule("max_iter", f"at least eta ({self.eta}), so that the band "
                           "max_iter / eta is at least 1", self.max_iter)
        if self.max_iter is not None and min(
                self.s, math.log(self.max_iter) / math.log(self.eta)) > HYPERBAND_BANDS_MAX:
            raise SpecRule("eta", f"an eta and s that make at most {HYPERBAND_BANDS_MAX} bands "
                           "(min(s, log(max_iter) / log(eta)))", self.eta)
        return self

    def bands(self) -> list[int]:
        """Where trials are compared (finished stages), computed as W&B's hyperband_stopping."""
        if self.max_iter is not None:
            found, band = [], self.max_iter
            for _ in range(self.s):
                band /= self.eta
                if band < 1:
                    break
                found.append(int(band))
            return sorted(found)
        out, band = [], self.min_iter
        for _ in range(100):
            if not math.isfinite(band):  # a large eta: the later bands are past any stage
                break
            out.append(int(band))
            band *= self.eta
        return out


def _experiment_ref(value: Any) -> Any:
    if isinstance(value, str) and value.strip() or isinstance(value, dict):
        return value
    raise SpecRule("", "a configs/ YAML path or an inline mapping", value)


class SeedsUntil(_Strict):
    """Seeds until decided (``wssweep.sequential``): ``min`` seeds everywhere, then more only
    where the verdict is still open, at doubling looks, up to ``max``."""

    min: int = Field(ge=2, le=1000)
    max: int = Field(ge=2, le=1000)
    until: Literal["decided"]

    @model_validator(mode="after")
    def _max_above_min(self) -> SeedsUntil:
        if self.max < self.min:
            raise SpecRule("max", f"at least min ({self.min})", self.max)
        return self


class ControllerSpec(StrictModel):
    """W&B's ``controller``: where its sweep controller runs. wssweep's driver is the controller."""

    model_config = ConfigDict(extra="allow")  # W&B's schema allows more keys here
    type: Literal["local", "cloud"]


#: W&B keys that do not apply here, accepted with this note each (``SweepSpec.notes``).
IGNORED_KEYS: dict[str, str] = {
    "program": "wssweep runs its experiment, not a script",
    "command": "wssweep runs its experiment, not a command line",
    "controller": "wssweep's driver is the sweep's controller",
    "job": "a W&B Launch job; wssweep runs its experiment",
    "image_uri": "a W&B Launch image; wssweep runs its experiment",
    "apiVersion": "W&B's config version; nothing here depends on it",
    "kind": "W&B's config kind; nothing here depends on it",
}


def _method(value: Any) -> Any:
    if value == "custom":
        raise SpecRule("", "grid, random or bayes (method: custom hands the search to a W&B "
                       "Launch scheduler, which wssweep does not run)", value)
    return value


class SweepSpec(_Strict):
    """A sweep: an experiment plus the search over its settings (W&B sweep vocabulary)."""

    experiment: Annotated[str | dict[str, Any], BeforeValidator(_experiment_ref)]
    # W&B's display name. It becomes a directory name (hence the file system's limit), so one
    # that is not a plain file name runs as its slug (name_slug), with a note.
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = None
    # Required by W&B (and by load_sweep_spec); wssweep trial runs one setting of any method.
    method: Annotated[Literal["grid", "random", "bayes"], BeforeValidator(_method)] = "grid"
    metric: MetricSpec = Field(default_factory=lambda: MetricSpec(name="gap"))
    # Flattened once validated: nested parameters become dotted keys (flat_parameters).
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    # A list of seeds, or seeds until decided: {min: 3, max: 40, until: decided}.
    seeds: Annotated[
        Annotated[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)], Tag("list")]
        | Annotated[SeedsUntil, Tag("until")],
        # A mapping is seeds until decided, anything else a list: one kind of error, not both.
        Discriminator(lambda v: "until" if isinstance(v, dict | SeedsUntil) else "list"),
    ] = Field(default_factory=lambda: [0])
    # None with random or bayes: the sweep runs until stopped (W&B: until the sweep is stopped).
    run_cap: JsonInt | None = Field(default=None, gt=0)
    early_terminate: EarlyTerminateSpec | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    wandb: WandbSpec = Field(default_factory=WandbSpec)
    # Points of test accuracy that count as closed.
    gap_tolerance: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    # The cold start every warm start is judged against: swept keys the cold arm depends on and
    # their values (e.g. {lr: 0.003}); unset, the best cold recipe by validation accuracy.
    reference: dict[str, str | int | float | bool] | None = None
    # How the verdicts' error rate is controlled across the settings: holm (family-wise), bh
    # (false discovery rate) or none (each setting alone).
    correction: Literal["holm", "bh", "none"] = DEFAULT_CORRECTION
    # W&B's top-level keys. project and entity set wandb.project / wandb.entity (unless wandb:
    # sets them); the others do not apply (IGNORED_KEYS); scheduler and metrics are refused.
    project: str | None = Field(default=None, min_length=1)
    entity: str | None = None
    program: str | None = None
    command: list[Any] | None = None
    controller: ControllerSpec | None = None
    job: str | None = None
    image_uri: str | None = None
    apiVersion: str | None = None  # noqa: N815 (W&B's spelling)
    kind: Literal["sweep"] | None = None
    scheduler: Any = None
    metrics: Any = None

    @property
    def first_seeds(self) -> list[int]:
        """The seeds every setting runs: the list, or seeds 0 .. min − 1 until decided."""
        return (list(range(self.seeds.min)) if isinstance(self.seeds, SeedsUntil)
                else list(self.seeds))

    @property
    def seed_plan(self) -> SeedsUntil | None:
        """Seeds until decided, if the spec asks for it."""
        return self.seeds if isinstance(self.seeds, SeedsUntil) else None

    @property
    def until_stopped(self) -> bool:
        """A random or bayes search without run_cap: it draws settings until it is stopped."""
        return self.method != "grid" and self.run_cap is None

    @property
    def notes(self) -> list[str]:
        """One line per W&B key given that does not apply here, and per v1 distribution."""
        out = [f"{key}: ignored ({why})" for key, why in IGNORED_KEYS.items()
               if key in self.model_fields_set]
        if self._given_name is not None:
            out.append(f"name: {self._given_name!r} runs as {self.name} (a directory name)")
        for key in ("project", "entity"):
            if key in self.model_fields_set:
                used = getattr(self.wandb, key) == getattr(self, key)
                out.append(f"{key}: {'sets' if used else 'ignored, the spec sets'} wandb.{key}")
        for key, param in self.parameters.items():
            if param.distribution in EXPONENT_DISTRIBUTIONS:
                out.append(f"parameters.{key}: {param.distribution} takes min and max as "
                           f"natural-log exponents (W&B's library now asks for "
                           f"{EXPONENT_DISTRIBUTIONS[param.distribution]}, which takes values)")
        if self.metric.impute_while_running not in (None, False, "false"):
            out.append("metric.impute_while_running: no effect (Optuna's TPE reads only finished "
                       "trials)")
        return out

    @model_validator(mode="before")
    @classmethod
    def _launch_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("scheduler") is not None:
            raise SpecRule("scheduler", "no scheduler (a W&B Launch custom scheduler; wssweep "
                           "runs its own search: method grid, random or bayes)",
                           data["scheduler"])
        if data.get("metrics") is not None:
            raise SpecRule("metrics", "one metric: (metrics: is W&B's multi-objective search, "
                           "which needs method: custom, a W&B Launch scheduler)", data["metrics"])
        return data

    _given_name: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _name_slug(self) -> SweepSpec:
        if self.name is not None and not re.match(NAME_PATTERN, self.name):
            slug = name_slug(self.name)
            if not slug:
                raise SpecRule("name", "a name with a letter or digit (it names the run's "
                               "directory)", self.name)
            self._given_name, self.name = self.name, slug
        return self

    @model_validator(mode="after")
    def _wandb_keys(self) -> SweepSpec:
        # W&B's project and entity name the W&B project; wandb: in the spec says it first.
        for key in ("project", "entity"):
            if getattr(self, key) is not None and key not in self.wandb.model_fields_set:
                setattr(self.wandb, key, getattr(self, key))
        return self

    @model_validator(mode="after")
    def _flatten(self) -> SweepSpec:
        """Nested parameters become dotted keys; a key reached twice is an error."""
        flat: dict[str, ParameterSpec] = {}
        for key, param in self.parameters.items():
            inner = flat_parameters({key: param})
            for dotted in inner:
                if dotted in flat:
                    raise SpecRule(f"parameters.{key}", f"each swept key once ({dotted} is "
                                   "given flat and nested)", dotted)
            flat.update(inner)
        if list(flat) != list(self.parameters):  # an assignment would mark parameters as given
            self.parameters = flat
        return self

    @model_validator(mode="after")
    def _reference_keys(self) -> SweepSpec:
        cold = cold_keys(list(self.parameters))
        for key, value in (self.reference or {}).items():
            if key not in cold:
                raise SpecRule(f"reference.{key}", "a swept key the cold arm depends on (one "
                               f"of: {', '.join(cold) or 'none in this sweep'})", key)
            param = self.parameters[key]
            if param.values is not None:
                if not any(_same(value, v) for v in param.values):
                    raise SpecRule(f"reference.{key}", f"one of the swept values {param.values}",
                                   value)
            elif param.distribution == "constant":
                if not _same(value, param.value):
                    raise SpecRule(f"reference.{key}", f"the parameter's value {param.value!r}",
                                   value)
            elif self.method == "grid":
                # A name that matches no trial's value leaves the verdicts without a reference.
                if not any(_same(value, v) for v in param.grid_values()):
                    raise SpecRule(f"reference.{key}", f"one of the {param.grid_size()} values "
                                   f"the grid gives {key} ({param.distribution} from "
                                   f"{param.min} to {param.max})", value)
            elif param.distribution == "int_uniform":
                if not (type(value) is int and param.min <= value <= param.max):
                    raise SpecRule(f"reference.{key}", f"an integer from {param.min} to "
                                   f"{param.max} (what int_uniform draws)", value)
            else:
                raise SpecRule(f"reference.{key}", f"a swept key with values or an int_uniform "
                               f"range: a {param.distribution} draw never equals a named value",
                               value)
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | SeedsUntil) -> list[int] | SeedsUntil:
        if isinstance(seeds, list) and len(set(seeds)) != len(seeds):
            raise SpecRule("", "distinct seeds", seeds)
        return seeds

    @model_validator(mode="after")
    def _parameter_keys(self) -> SweepSpec:
        keys = list(self.parameters)
        for key in keys:
            where = f"parameters.{key}"
            if not _DOTTED_KEY.match(key):
                raise SpecRule(where, "a dotted key of the experiment config (e.g. warm.perturb)",
                               key)
            if key == "seed":
                raise SpecRule(where, "a key other than seed (the spec's seeds: list sets it)",
                               key)
            outer = next((k for k in keys if key.startswith(k + ".")), None)
            if outer is not None:
                raise SpecRule(where, f"a key not nested under another swept key ({outer})", key)
        return self

    @model_validator(mode="after")
    def _search_rules(self, info: ValidationInfo) -> SweepSpec:
        """Rules for running the search; ``wssweep trial`` (one setting) skips them."""
        if not (info.context or {}).get("search"):
            return self
        n_seeds = len(self.first_seeds)
        if self.method != "grid" and self.run_cap is not None and self.run_cap < n_seeds:
            raise SpecRule("run_cap", f"at least the number of seeds ({n_seeds}) with method "
                           f"{self.method}: each drawn setting runs on every seed", self.run_cap)
        if self.seed_plan is not None and self.until_stopped:
            raise SpecRule("run_cap", f"an integer ≥ {n_seeds} with method {self.method} and "
                           "seeds until decided (its rounds are planned from the cap)", None)
        for key, param in self.parameters.items():
            where = f"parameters.{key}"
            if self.method == "grid" and param.distribution not in GRID_DISTRIBUTIONS:
                raise SpecRule(f"{where}.distribution", "value, values, int_uniform or q_uniform "
                               "with method grid (W&B's grid enumerates only those; use method "
                               "random or bayes)", param.distribution)
            if param.distribution == "int_uniform" and max(-param.min, param.max) > INT64_MAX:
                raise SpecRule(f"{where}.max", "integer bounds within ±(2**63 - 1) "
                               "(int_uniform samples 64-bit integers)",
                               shown_int(max(param.max, param.min, key=abs)))
            if self.method == "grid" and param.grid_size() > GRID_VALUES_MAX:
                raise SpecRule(where, f"at most {GRID_VALUES_MAX} values for a grid to "
                               "enumerate", Shown(f"{param.grid_size()} values"))
        if self.method == "grid":
            sizes = [p.grid_size() for p in self.parameters.values()]
            if math.prod(sizes) > GRID_SETTINGS_MAX:
                raise SpecRule("parameters", f"a grid of at most {GRID_SETTINGS_MAX} settings "
                               "(method random or bayes with a run_cap samples a larger space)",
                               Shown(f"{math.prod(sizes)} settings "
                                     f"({' x '.join(map(str, sizes))} values)"))
        if self.method == "bayes":
            if not any(p.kind != "constant" for p in self.parameters.values()):
                raise SpecRule("parameters", "at least one parameter with values or a "
                               "distribution with method bayes", list(self.parameters))
            if self.seed_plan is not None:
                for key, param in self.parameters.items():
                    if param.distribution not in ROUNDS_DISTRIBUTIONS or (
                            param.distribution == "q_uniform" and not param.tune_quniform):
                        raise SpecRule(f"parameters.{key}.distribution", "value, values, "
                                       f"{', '.join(ROUNDS_DISTRIBUTIONS[2:])} with method bayes "
                                       "and seeds until decided (its rounds rebuild Optuna's "
                                       "study from these)", param.distribution)
                    if param.values is not None and not all(
                            v is None or isinstance(v, str | int | float) for v in param.values):
                        raise SpecRule(f"parameters.{key}.values", "strings, numbers, booleans "
                                       "or null with method bayes and seeds until decided "
                                       "(Optuna's categorical)", param.values)
        return self


#: What bayes with seeds until decided takes (``wssweep.optuna_rounds`` rebuilds Optuna's study
#: from each setting's values, through Tune's conversion).
ROUNDS_DISTRIBUTIONS: tuple[str, ...] = ("constant", "categorical", "int_uniform", "uniform",
                                         "log_uniform_values", "q_uniform")


def _check_wandb_required(spec: SweepSpec) -> None:
    """W&B's required keys, checked once the rest passed: a method, and parameters."""
    if "method" not in spec.model_fields_set:
        raise InputError("method", "grid, random or bayes (W&B requires method)", NOTHING)
    if not spec.parameters:
        raise InputError("parameters", "at least one parameter (W&B requires parameters; to run "
                         "the experiment as it is, give one constant, e.g. lr: {value: 0.01})",
                         NOTHING if "parameters" not in spec.model_fields_set else {})
    for why, needed in (("method bayes", spec.method == "bayes"),
                        ("early_terminate", spec.early_terminate is not None)):
        if needed and "metric" not in spec.model_fields_set:
            raise InputError("metric", f"a metric with {why} (W&B's search and hyperband compare "
                             "trials on it)", NOTHING)


@dataclass
class ResolvedSweep:
    """A validated sweep spec with its experiment resolved and ``--set`` overrides applied."""

    spec: SweepSpec
    experiment: dict[str, Any]  # the experiment mapping, overrides applied, before any setting
    path: Path
    overrides: list[str] = field(default_factory=list)
    smoke: bool = False  # scaled down by --smoke: a check that it runs, not a result

    @property
    def experiment_source(self) -> str:
        """The ``experiment:`` reference, or ``inline`` for a mapping."""
        ref = self.spec.experiment
        return ref if isinstance(ref, str) else "inline"

    def config_for(self, setting: dict[str, Any], seed: int) -> ExperimentConfig:
        """The config one trial runs: the experiment, the setting (dotted keys), the seed."""
        return experiment_from_mapping(self.experiment, setting={**setting, "seed": seed})


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model an annotation holds (directly, in a union, or as dict values) and if in a dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    if origin is dict:
        return _model_of(typing.get_args(annotation)[1])[0], True
    if origin in (typing.Union, types.UnionType, Annotated):
        for arg in typing.get_args(annotation):
            model, in_dict = _model_of(arg)
            if model is not None:
                return model, in_dict
    return None, False


def _known_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at ``loc`` (the path of an unknown key's parent) in ``schema``."""
    parts = [str(p) for p in loc]
    while parts:
        field_info = schema.model_fields.get(parts.pop(0))
        model, in_dict = _model_of(field_info.annotation) if field_info else (None, False)
        if model is None or (in_dict and not parts):
            return []
        if in_dict:
            parts.pop(0)  # the dict's own key, e.g. the parameter name
        schema = model
    return list(schema.model_fields)


_SHOULD = re.compile(
    r"^(?:Input|List|String|Tuple|Dictionary|Set|Value) should (?:be |have )?(?P<rest>.*?)"
    r"(?: after validation, not \d+)?$"
)


def _expected(msg: str) -> str:
    """Pydantic's message as what was expected: 'Input should be a valid integer' -> 'a valid
    integer'."""
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if msg.startswith("String should match pattern "):
        return "a string matching " + msg[len("String should match pattern "):]
    match = _SHOULD.match(msg)
    if not match:
        return msg
    # 'a valid integer, unable to parse string as an integer': the value is shown anyway.
    rest = match["rest"]
    return rest.split(", ")[0] if rest.startswith("a valid ") else rest


def _user_loc(schema: type[BaseModel], loc: tuple) -> list[str]:
    """``loc`` as the user's key path. After a field that takes one of several types, pydantic
    names the member that failed (``optim.warmup_init.float``): that is no key, so it goes."""
    out: list[str] = []
    annotation: Any = schema
    for part in loc:
        members = [m for m in union_members(annotation) if m is not type(None)]
        if len(members) > 1:
            annotation = Any  # no union of ours holds a model, so nothing below needs its type
            continue
        annotation = members[0] if members else Any
        out.append(str(part))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            annotation = info.annotation if info else Any
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        elif origin in (list, set, frozenset) and args:
            annotation = args[0]
        elif origin is tuple and args and isinstance(part, int):
            annotation = args[0] if args[-1] is Ellipsis else (
                args[part] if part < len(args) else Any)
        else:
            annotation = Any
    return out


def validation_error(exc: ValidationError, schema: type[BaseModel], prefix: str = "") -> InputError:
    """Turn pydantic's errors into one ``InputError`` whose message lists every bad key.

    A value that fits none of a field's types (``optim.warmup_init``: a number or 'catapult') is
    one line naming every type it could have been.
    """
    errors: dict[tuple[str, str], InputError] = {}
    for err in exc.errors():
        loc = _user_loc(schema, err["loc"])
        rule = (err.get("ctx") or {}).get("error")
        if isinstance(rule, SpecRule):
            key = prefix + ".".join(loc + [rule.key] if rule.key else loc)
            expected, given = rule.expected, rule.given
        else:
            key = prefix + ".".join(loc)
            given = err.get("input")
            if err["type"] == "extra_forbidden":
                known = _known_keys(schema, err["loc"][:-1])
                expected = "a known key" + (f" (one of: {', '.join(known)})" if known else "")
            elif err["type"] == "missing":
                expected, given = "a value (the key is required)", NOTHING
            elif err["type"] == "int_parsing_size":
                # pydantic reads an integral float only up to 64 bits: 1e19 needs its digits.
                expected = "an integer (a float this large cannot be read as one; write its digits)"
            else:
                expected = _expected(err["msg"])
        same = errors.get((key, given_text(given)))
        if same is not None:
            expected = f"{same.expected} or {expected}"
        errors[key, given_text(given)] = InputError(key, expected, given)
    first, *_ = errors.values()
    first.args = ("\n".join(str(e) for e in errors.values()),)
    return first


def _check_keys_once(node: yaml.Node | None, where: str, path: Path) -> None:
    """Refuse a key given twice in any mapping under ``node``: YAML silently keeps the last, so
    the first is lost without a word. ``where`` is the dotted key path of ``node``."""
    constructor = yaml.constructor.SafeConstructor()
    seen_nodes: set[int] = set()  # aliases make a node reachable twice, or from itself
    stack = [(node, where)]
    while stack:
        node, where = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            # reversed, so that the stack pops them in the file's order
            stack.extend(reversed([(item, f"{where}{i}.") for i, item in enumerate(node.value)]))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[Any, yaml.Node] = {}
        children = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *base' then a key of its own is how YAML overrides, not a clash
            try:
                name = constructor.construct_object(key_node, deep=True)
                hash(name)
            except (yaml.YAMLError, TypeError, ValueError):
                continue  # safe_load will name a key it cannot build
            dotted = f"{where}{name}"
            if name in first:
                a, b = first[name].start_mark, key_node.start_mark
                at = (f"line {a.line + 1} (columns {a.column + 1} and {b.column + 1})"
                      if a.line == b.line else f"lines {a.line + 1} and {b.line + 1}")
                raise InputError(dotted, "each key once in a mapping (YAML would silently keep "
                                 "only the last)", Shown(f"{name!r} twice, at {at} of {path}"))
            first[name] = key_node
            children.append((value_node, f"{dotted}."))
        stack.extend(reversed(children))


def _described(data: Any, text: str) -> Shown:
    """What a file's top level holds, for an error: 'an empty file', 'a list ([1, 2])', ..."""
    if data is None:
        if not text.strip():
            return Shown("an empty file")
        return Shown("a file with nothing but comments" if all(
            not line.strip() or line.lstrip().startswith(("#", "---", "..."))
            for line in text.splitlines()) else "null")
    kind = type(data).__name__
    shown = given_text(data)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return Shown(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({shown})")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where (its message quotes the lines, with a
    caret under the spot, over several).

    Example:
        >>> try:
        ...     yaml.safe_load("a: 1\\n---\\nb: 2\\n")
        ... except yaml.YAMLError as exc:
        ...     yaml_problem(exc)
        'expected a single document in the stream, but found another document at line 2, column 1'
    """
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())
    parts = [p for p in (exc.context, exc.problem) if p]
    where = exc.problem_mark or exc.context_mark
    at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
    return " ".join(", ".join(parts).split()) + at


def read_yaml(path: str | Path, key: str = "SPEC", within: str = "") -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is an ``InputError`` naming ``key``.

    A key given twice in any mapping is an error too, named by its dotted key path (after
    ``within``, e.g. ``experiment.``), with the file and the lines.
    """
    path = Path(path)
    if path_kind(path, key) != "file":
        raise InputError(key, "an existing YAML file", shown(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(key, "a UTF-8 text file", str(path)) from None
    except OSError as exc:  # e.g. Permission denied
        raise InputError(key, f"a readable file ({exc.strerror or exc})", str(path)) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        _check_keys_once(node, within, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise InputError(key, f"valid YAML ({yaml_problem(exc)})", str(path)) from None
    except ValueError as exc:  # a value the YAML type cannot hold: month 13, a 5000-digit int
        # Python's advice after ';' (sys.set_int_max_str_digits) is not the user's to take.
        why = str(exc).split(";")[0]
        raise InputError(key, f"valid YAML values ({why})", str(path)) from None
    except (KeyError, AttributeError):  # a tag given what it cannot read: !!bool maybe
        raise InputError(key, "valid YAML values (a tagged value its tag cannot read)",
                         str(path)) from None
    except RecursionError:
        raise InputError(key, "YAML nested less deeply (the parser ran out of stack)",
                         str(path)) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InputError(key, f"a YAML mapping (key: value lines) at the top level of {path}",
                         _described(data, text))
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as YAML, so ``lr=1e-3`` is a float."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError("--set", "key=value (for example lr=0.01)", text)
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError, KeyError, AttributeError, RecursionError):
        # Not YAML, or a value its tag cannot hold (!!bool maybe, month 13): the text itself,
        # which the schema then refuses by the key's type.
        value = raw
    return key.strip(), value


def set_dotted(mapping: dict[str, Any], key: str, value: Any, origin: str = "--set") -> None:
    """Set ``a.b.c`` in nested dicts, creating levels; a scalar in the way is an error. A mapping
    given for a mapping is merged into it, key by key, as W&B's nested parameters are: a swept
    ``warm`` of ``{intervention: dash}`` keeps the experiment's other ``warm`` keys.

    Example:
        >>> experiment = {"warm": {"granularity": "slice"}}
        >>> set_dotted(experiment, "warm", {"intervention": "dash"})
        >>> experiment
        {'warm': {'granularity': 'slice', 'intervention': 'dash'}}
    """
    parts = key.split(".")
    node = mapping
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise InputError(f"{origin} {key}", f"{where} to be a mapping", child)
        node = child
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        for sub, item in value.items():
            set_dotted(node, f"{parts[-1]}.{sub}", copy.deepcopy(item), origin)
        return
    node[parts[-1]] = value


def resolve_experiment(ref: str | dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """An ``experiment:`` value: an inline mapping, or a YAML file under the spec, cwd or repo."""
    if isinstance(ref, dict):
        return copy.deepcopy(ref)
    try:
        cwd = [Path.cwd()]
    except OSError:  # the cwd was deleted: look beside the spec and in the repo only
        cwd = []
    for root in (base_dir, *cwd, PACKAGE_ROOT):
        candidate = root / ref
        if path_kind(candidate, "experiment") == "file":
            return read_yaml(candidate, key="experiment", within="experiment.")
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


#: ``--smoke``: the same experiment, scaled down to run in seconds (keys absent from the
#: experiment's kind are skipped). A study's science is unchanged; only its size is.
SMOKE_EXPERIMENT: dict[str, dict[str, Any]] = {
    "network": {"data.train_size": 400, "data.test_size": 200, "protocol.stop.min_epochs": 1,
                "protocol.stop.max_epochs": 2},
    "nqm": {"nqm.d": 50, "nqm.total_steps": 200, "nqm.every": 50, "nqm.iters": 5,
            "nqm.n_pieces": 5},
}
SMOKE_CHUNKS = 3  # online/active stages at most
SMOKE_SEEDS = 2  # the first seeds of the spec
SMOKE_TRIALS = 4  # run_cap: grid settings in order, seeds inner


def smoke_experiment(experiment: dict[str, Any]) -> dict[str, Any]:
    """``experiment`` scaled down for ``--smoke``: small data, 2 epochs, 3 stages; a small NQM.

    Example:
        >>> smoke_experiment({"protocol": {"chunks": 10}})["protocol"]
        {'chunks': 3, 'stop': {'min_epochs': 1, 'max_epochs': 2}}
    """
    out = copy.deepcopy(experiment)
    for key, value in SMOKE_EXPERIMENT[out.get("kind", "network")].items():
        set_dotted(out, key, value, origin="--smoke")
    protocol = out.get("protocol", {})
    if out.get("kind", "network") == "network" and protocol.get("chunks", 10) > SMOKE_CHUNKS:
        set_dotted(out, "protocol.chunks", SMOKE_CHUNKS, origin="--smoke")
    return out


def smoke_spec(spec: SweepSpec) -> SweepSpec:
    """``spec`` cut for ``--smoke``: the first seeds and at most ``SMOKE_TRIALS`` trials."""
    seeds: list[int] | SeedsUntil = spec.first_seeds[:SMOKE_SEEDS]
    if spec.seed_plan is not None:
        # The same design with its one look at the smoke seeds: one round (each further round
        # is a Tune experiment of its own, which is seconds of start-up per look).
        seeds = SeedsUntil(min=SMOKE_SEEDS, max=SMOKE_SEEDS, until="decided")
    return spec.model_copy(update={"seeds": seeds,
                                   "run_cap": min(spec.run_cap or SMOKE_TRIALS, SMOKE_TRIALS)})


def load_sweep(path: str | Path) -> SweepSpec | None:
    """The sweep spec in ``path``, or ``None`` when the file is a bare experiment config.

    Checks the schema only, not the rules for running a search (see ``load_sweep_spec``).
    """
    data = read_yaml(path)
    if "experiment" not in data:
        return None
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, SweepSpec) from None


def load_trial_config(
    path: str | Path, overrides: list[str] | None = None, smoke: bool = False
) -> ExperimentConfig:
    """The config ``wssweep trial`` runs: one setting of the file, then ``--set`` overrides.

    For a sweep spec, each swept parameter takes its ``value``, first ``values`` entry or the
    centre of its range, and the seed is the first of ``seeds``. ``smoke`` scales the experiment
    down first (``smoke_experiment``).
    """
    path = Path(path)
    sweep = load_sweep(path)
    if sweep is None:
        experiment = read_yaml(path)
        return experiment_from_mapping(smoke_experiment(experiment) if smoke else experiment,
                                       overrides)
    experiment = resolve_experiment(sweep.experiment, path.parent)
    if smoke:
        experiment = smoke_experiment(experiment)
    setting = {"seed": sweep.first_seeds[0]}
    setting.update({key: param.default_value() for key, param in sweep.parameters.items()})
    return experiment_from_mapping(experiment, overrides, setting)


def _swept_clash(key: str, parameters: Iterable[str]) -> str | None:
    """The swept key (of ``parameters``) that ``key`` is, sits under, or contains; ``None`` if it
    touches none."""
    for swept in parameters:
        if key == swept or key.startswith(swept + ".") or swept.startswith(key + "."):
            return swept
    return None


def _validate(mapping: dict[str, Any], prefix: str) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(mapping)
    except ValidationError as exc:
        raise validation_error(exc, ExperimentConfig, prefix) from None


def _apply_overrides(
    experiment: dict[str, Any], overrides: list[str], spec: SweepSpec
) -> dict[str, Any]:
    """The experiment with each ``--set`` applied in turn; errors name ``--set <key>``."""
    current = copy.deepcopy(experiment)
    for text in overrides:
        key, value = parse_override(text)
        label = f"--set {key}"
        swept = _swept_clash(key, spec.parameters)
        if swept is not None:
            where = "" if swept == key else f" as {swept}"
            raise InputError(label, f"a key that is not swept (it is in parameters{where})", text)
        if key == "seed":
            raise InputError(label, "a key other than seed (the spec's seeds: list sets it)", text)
        set_dotted(current, key, value)
        try:
            _validate(current, prefix="--set ")
        except InputError as exc:
            path = exc.key.removeprefix("--set ")
            if _swept_clash(path, [key]) is not None:
                raise
            # A rule across keys broke at another key: it is still this override that broke it.
            raise InputError(label, f"a value that the rest of the experiment takes ({path}: "
                             f"expected {exc.expected}, got {exc.given!r})", value) from None
    return current


def _integer_only(key: str) -> bool:
    """Whether the experiment field at dotted ``key`` takes integers only (e.g. warmup_steps)."""
    model: type[BaseModel] = ExperimentConfig
    *parents, leaf = key.split(".")
    for part in parents:
        info = model.model_fields.get(part)
        nested = _model_of(info.annotation)[0] if info else None
        if nested is None:
            return False
        model = nested
    info = model.model_fields.get(leaf)
    if info is None:
        return False
    kinds = set(typing.get_args(info.annotation)) or {info.annotation}
    return kinds - {type(None)} == {int}


#: Most combinations of candidate values a random or bayes search has validated together (a grid
#: validates every setting it runs): beyond this many, only the first ones in spec order.
COMBINATIONS_CHECKED = 4096


def _probe(experiment: dict[str, Any], setting: dict[str, Any],
           combined: bool) -> ExperimentConfig:
    """The experiment with ``setting`` (swept key -> value) must be valid. An error is named by the
    swept key it is in; one in a key the setting does not touch (a rule across keys, such as
    ``nqm.momentum`` with ``nqm.method: greedy``) by the setting's first key, with the rule."""
    probe = copy.deepcopy(experiment)
    for key, value in setting.items():
        try:
            set_dotted(probe, key, value, origin="parameters")
        except InputError as exc:
            raise InputError(f"parameters.{key}", exc.expected, exc.given) from None
    try:
        return _validate(probe, prefix="parameters.")
    except InputError as exc:
        within = " in the combination " + ", ".join(
            f"{k}: {v!r}" for k, v in setting.items()) if combined else ""
        path = exc.key.removeprefix("parameters.")
        if _swept_clash(path, setting) is not None:
            if not combined:
                raise
            raise InputError(exc.key, exc.expected + within, exc.given) from None
        blamed = next(iter(setting))
        raise InputError(f"parameters.{blamed}", f"a value that the rest of the experiment takes "
                         f"({path}: expected {exc.expected}, got {exc.given!r}){within}",
                         setting[blamed]) from None


def _check_parameters(experiment: dict[str, Any], spec: SweepSpec) -> list[ExperimentConfig]:
    """Every candidate value of every parameter must make a valid experiment, and so must every
    combination of them (a rule across keys can refuse a pair whose halves pass alone): all the
    settings of a grid, the first ``COMBINATIONS_CHECKED`` of random and bayes (each parameter's
    values, or both ends of its range). Returns the experiments checked."""
    configs = []
    grid = spec.method == "grid"
    for key, param in spec.parameters.items():
        where = f"parameters.{key}"
        for value in param.candidates(grid):
            configs.append(_probe(experiment, {key: value}, combined=False))
        drawn = param.distribution not in ("constant", "categorical",
                                           "categorical_w_probabilities")
        if drawn and not param.integral and _integer_only(key):
            raise InputError(f"{where}.distribution", f"int_uniform or a q_ distribution with "
                             f"an integer q ({key} takes integers)", param.distribution)
    if len(spec.parameters) < 2:
        return configs
    keys = list(spec.parameters)
    combos = itertools.product(*(p.candidates(grid) for p in spec.parameters.values()))
    cap = None if spec.method == "grid" else COMBINATIONS_CHECKED
    for combo in itertools.islice(combos, cap):
        configs.append(_probe(experiment, dict(zip(keys, combo, strict=True)), combined=True))
    return configs


def _check_no_threads(experiment: dict[str, Any], overrides: list[str], spec: SweepSpec) -> None:
    """A sweep's trials each use ``resources.cpus_per_trial`` threads; a ``threads`` given for
    the experiment would be overridden without a word, so it is refused, named where it came
    from (``wssweep trial`` takes it)."""
    if "threads" in spec.parameters:
        where, given = "parameters.threads", spec.parameters["threads"].model_dump(
            exclude_unset=True)
    elif any(parse_override(text)[0] == "threads" for text in overrides):
        where, given = "--set threads", experiment["threads"]
    elif "threads" in experiment:
        where, given = "experiment.threads", experiment["threads"]
    else:
        return
    raise InputError(where, "no threads in a sweep: each trial runs resources.cpus_per_trial "
                     "threads (set that instead)", given)


def _check_metric(cfg: ExperimentConfig, spec: SweepSpec) -> None:
    """The metric must be one this experiment's kind reports; NQM trials report once."""
    if "kind" in spec.parameters:
        return
    nqm = cfg.kind == "nqm"
    if spec.metric.name.startswith("nqm/") != nqm:
        reported = [m for m in REPORTED_METRICS if m.startswith("nqm/") == nqm]
        raise InputError("metric.name", f"a metric a kind: {cfg.kind} trial reports (one of: "
                         f"{', '.join(reported)})", spec.metric.name)
    if nqm and spec.early_terminate is not None:
        raise InputError("early_terminate", "no early_terminate with a kind: nqm experiment "
                         "(it reports once, at the end)",
                         spec.early_terminate.model_dump(exclude_none=True))


def load_sweep_spec(
    path: str | Path, overrides: list[str] | None = None, smoke: bool = False,
    preflight: bool = True,
) -> ResolvedSweep:
    """Load, validate and resolve the sweep spec at ``path`` for running its search.

    ``smoke`` runs the same study in seconds: the experiment scaled down (``smoke_experiment``),
    the first seeds, at most ``SMOKE_TRIALS`` trials (``smoke_spec``).

    Checks the schema and the search rules, resolves the experiment, applies ``--set key=value``
    overrides to it (a swept key or ``seed`` cannot be overridden), and tries every parameter's
    candidate values (each of ``values``, the ``value``, or both ends of a range) against it, alone
    and combined (``_check_parameters``).
    Any problem is an ``InputError`` naming the key path (``parameters.<key>``, ``--set <key>``,
    ``experiment.<key>``, ...), what was expected and what was given.

    ``preflight`` then loads the data and builds the models of those experiments where they read
    files or run user code (``wssweep.preflight``), on this machine.
    """
    path = Path(path)
    overrides = list(overrides or [])
    data = read_yaml(path)
    if "experiment" not in data:
        raise InputError("experiment", "a sweep spec with an experiment: key (a configs/ file or "
                         "an inline mapping); run a bare experiment config with wssweep trial",
                         NOTHING)
    try:
        spec = SweepSpec.model_validate(data, context={"search": True})
    except ValidationError as exc:
        raise validation_error(exc, SweepSpec) from None
    experiment = resolve_experiment(spec.experiment, path.parent)
    if "experiment" in experiment and isinstance(spec.experiment, str):
        raise InputError("experiment", "an experiment config (as in configs/), not another sweep "
                         "spec", spec.experiment)
    _validate(experiment, prefix="experiment.")
    if smoke:
        spec, experiment = smoke_spec(spec), smoke_experiment(experiment)
    experiment = _apply_overrides(experiment, overrides, spec)
    cfg = _validate(experiment, prefix="experiment.")
    _check_no_threads(experiment, overrides, spec)
    candidates = _check_parameters(experiment, spec)
    _check_metric(cfg, spec)
    _check_wandb_required(spec)
    if preflight:
        from wssweep import preflight as machine

        machine.check([cfg, *candidates])
    return ResolvedSweep(spec=spec, experiment=experiment, path=path.resolve(), overrides=overrides,
                         smoke=smoke)
