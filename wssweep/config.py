"""The experiment config: what one trial runs, validated by a schema (pydantic).

Every key is documented here with its unit; unknown keys, out-of-range values and values that
break a rule across keys (the data's and the model's, a model against the data's shape, those of
``kind: nqm``) are rejected with the dotted key path (see ``wssweep.spec.validation_error``), so
the science, which trusts its config, never refuses a value at run time. What no schema can see
(files, user code) is checked by ``wssweep.preflight``. The four headline axes of a warm-start
study sit at the top level under fixed names: ``lr``, ``warmup_steps``, ``shrink``,
``meta_horizon``.

Example:
    >>> cfg = ExperimentConfig.model_validate({"lr": 0.01, "model": {"name": "logreg"}})
    >>> cfg.model.name, cfg.protocol.kind, cfg.resolved_shrink()
    ('logreg', 'online', 1.0)
"""

from __future__ import annotations

import functools
import json
import math
import sys
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class SpecRule(ValueError):
    """A rule broken inside a model; ``key`` is relative to where pydantic places the error.

    Raised from validators; ``wssweep.spec.validation_error`` turns it into an ``InputError`` whose
    key path is the model's location plus ``key``.
    """

    def __init__(self, key: str, expected: str, given: object) -> None:
        super().__init__(f"{key or '<here>'}: expected {expected}, got {given!r}")
        self.key = key
        self.expected = expected
        self.given = given


class Shown:
    """A given value shown as this text in an error (not as a Python repr): a summary of a value
    too long to print, or a description such as 'an empty file'."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def shown_int(value: int) -> Shown:
    """A huge integer summarized: its repr could run to thousands of digits (or fail to print)."""
    try:
        text = str(value)
    except ValueError:  # beyond Python's int-to-str digit limit
        return Shown(f"an integer of more than {sys.get_int_max_str_digits()} digits")
    return Shown(f"{text[:12]}... (an integer of {len(text.lstrip('-'))} digits)")


def union_members(annotation: Any) -> tuple[Any, ...]:
    """The types a value of ``annotation`` may take: union members, ``Annotated`` unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return union_members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(annotation) for m in union_members(arg))
    return (annotation,)


def _number_problem(value: Any, annotation: Any, key: str = "") -> SpecRule | None:
    """Why ``value`` is not a number where ``annotation`` takes one, looking into lists, tuples
    and dicts; ``None`` if it is fine (or the annotation takes no number there)."""
    members = union_members(annotation)
    numeric = any(m in (int, float) for m in members) and not (
        bool in members or Any in members)
    if isinstance(value, bool):
        if numeric:
            kind = "a number" if float in members else "an integer"
            return SpecRule(key, f"{kind}, not a boolean", value)
        return None
    if isinstance(value, int) and numeric and abs(value) > sys.float_info.max:
        return SpecRule(key, f"a number within float range (at most {sys.float_info.max:.4g} "
                        "in size)", shown_int(value))
    for member in members:
        origin, args = typing.get_origin(member), typing.get_args(member)
        if isinstance(value, list | tuple) and origin in (list, tuple, set, frozenset) and args:
            fixed = origin is tuple and args[-1] is not Ellipsis
            for i, item in enumerate(value):
                item_type = (args[i] if i < len(args) else Any) if fixed else args[0]
                problem = _number_problem(item, item_type, f"{key}.{i}" if key else str(i))
                if problem is not None:
                    return problem
        if isinstance(value, dict) and origin is dict and len(args) == 2:
            for name, item in value.items():
                problem = _number_problem(item, args[1], f"{key}.{name}" if key else str(name))
                if problem is not None:
                    return problem
    return None


@functools.cache
def _annotation(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].annotation


class StrictModel(BaseModel):
    """The base of every schema (experiment config and sweep spec): unknown keys are errors, and a
    number is a number.

    A typo in a spec must not run a wrong study, so unknown keys are refused. YAML reads ``true``
    as a boolean, which Python would take as 1 (``lr: true`` would run at rate 1), and reads
    ``.inf`` / ``.nan`` as floats that no setting means; so booleans are refused wherever a field
    takes an int or a float (and not a bool), NaN and infinities everywhere, and so are integers
    too large for a float (the science computes in floats).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        problem = _number_problem(value, _annotation(cls, info.field_name))
        if problem is not None:
            raise problem
        return value


class _Strict(StrictModel):
    # Frozen: a validated config cannot drift from what was checked.
    model_config = ConfigDict(frozen=True)


def _import_path(value: str) -> str:
    # The form wssweep.science.imports.import_object takes; checked here so validate catches it.
    module, sep, attr = value.partition(":")
    if not (sep and module and attr and ":" not in attr):
        raise SpecRule("", "an import path 'package.module:function'", value)
    return value


# The longest file name (path component) and path most filesystems take, in bytes: NAME_MAX and
# Linux's PATH_MAX.
NAME_MAX, PATH_MAX = 255, 4096


def _path_text(value: str) -> str:
    # A path no filesystem can open would otherwise pass validate and fail only in the trial.
    if not value or "\0" in value:
        raise SpecRule("", "a file system path (not empty, no NUL character)", value)
    size = len(value.encode("utf-8", "surrogatepass"))
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in value.split("/"))
    if size > PATH_MAX or longest > NAME_MAX:
        shown = Shown(f"{value[:40]!r}... ({len(value)} characters)") if size > 80 else value
        raise SpecRule("", f"a path of at most {PATH_MAX} bytes whose every name is at most "
                       f"{NAME_MAX} bytes", shown)
    return value


#: ``package.module:function``, as ``data.loader`` and ``model.factory`` take.
ImportPath = Annotated[str, AfterValidator(_import_path)]
#: A directory or file path, checked only for what no filesystem takes (existence is checked
#: where it is used, on the machine that runs the trial).
PathText = Annotated[str, AfterValidator(_path_text)]
# Adam's and GI-Adam's β: the optimizer refuses anything outside [0, 1).
Beta = Annotated[float, Field(ge=0, lt=1)]


#: Datasets read from files under ``data.root``.
FILE_DATASETS = ("cifar10", "cifar100", "svhn")
#: Datasets that take ``data.kwargs``: mnist1d's generation args, synthetic_cifar's options, or
#: the custom loader's keyword arguments.
KWARGS_DATASETS = ("mnist1d", "synthetic_cifar", "custom")
#: Dimensions of one example of each built-in dataset (a test loads them and checks): the
#: models need 1-D inputs (conv1d) or images (resnet18).
INPUT_NDIM = {"mnist1d": 1, "digits": 1, "cifar10": 3, "cifar100": 3, "svhn": 3,
              "synthetic_cifar": 3}
# make_dataset draws num_samples // 10 examples of each of the 10 classes.
MNIST1D_MIN_SAMPLES = 10
# synthetic_cifar holds out a sixth for test, and each split needs an example.
SYNTHETIC_MIN_SAMPLES = 6
#: synthetic_cifar's options: pixel noise std (signal std ≈ 1) and the largest random shift, px.
SYNTHETIC_OPTIONS = {"noise": 3.0, "max_shift": 8}


def mnist1d_args() -> dict[str, Any]:
    """mnist1d's own generation args (its ``get_dataset_args``), without the download URL."""
    import mnist1d.data  # lazy: it imports matplotlib

    args = mnist1d.data.get_dataset_args(as_dict=True)
    args.pop("url", None)  # only get_dataset (which downloads) uses it; we never do
    return args


def _check_mnist1d(kwargs: dict[str, Any], num_samples: int | None) -> None:
    if kwargs:
        known = mnist1d_args()
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise SpecRule(f"kwargs.{unknown[0]}", f"an mnist1d dataset arg (one of: "
                           f"{', '.join(sorted(known))})", kwargs[unknown[0]])
    total = num_samples if num_samples is not None else kwargs.get("num_samples")
    if total is not None and (not isinstance(total, int) or total < MNIST1D_MIN_SAMPLES):
        key = "num_samples" if num_samples is not None else "kwargs.num_samples"
        raise SpecRule(key, f"an integer >= {MNIST1D_MIN_SAMPLES} for mnist1d (10 classes)",
                       total)


def _check_synthetic(kwargs: dict[str, Any], num_samples: int | None) -> None:
    for name, value in kwargs.items():
        if name not in SYNTHETIC_OPTIONS:
            raise SpecRule(f"kwargs.{name}", "a synthetic_cifar option (one of: "
                           f"{', '.join(SYNTHETIC_OPTIONS)})", value)
        integral = name == "max_shift"
        kinds = (int,) if integral else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) \
                or value < 0:
            raise SpecRule(f"kwargs.{name}", f"{'an integer' if integral else 'a number'} >= 0",
                           value)
    if num_samples is not None and num_samples < SYNTHETIC_MIN_SAMPLES:
        raise SpecRule("num_samples", f"at least {SYNTHETIC_MIN_SAMPLES} for synthetic_cifar "
                       "(a sixth is held out for test)", num_samples)


class DataConfig(_Strict):
    name: Literal[
        "mnist1d", "digits", "cifar10", "cifar100", "svhn", "synthetic_cifar", "custom"
    ] = "mnist1d"
    root: PathText | None = None  # local directory of CIFAR/SVHN files (no download, ever)
    cache_dir: PathText | None = None  # where generated MNIST-1D is cached (~/.cache/wssweep)
    num_samples: int | None = Field(default=None, gt=0)  # generated sets: examples in all
    train_size: int | None = Field(default=None, gt=0)  # keep the first N training examples
    test_size: int | None = Field(default=None, gt=0)  # keep the first N test examples
    loader: ImportPath | None = None  # name=custom: 'package.module:function' giving a dataset
    kwargs: dict[str, Any] = Field(default_factory=dict)  # keyword arguments for the loader

    @model_validator(mode="after")
    def _fits_the_dataset(self) -> DataConfig:
        if self.name == "custom" and self.loader is None:
            raise SpecRule("loader", "an import path 'package.module:function' (data.name is "
                           "custom)", None)
        if self.name != "custom" and self.loader is not None:
            raise SpecRule("loader", "no loader unless data.name is custom", self.loader)
        if self.name in FILE_DATASETS and self.root is None:
            raise SpecRule("root", f"the local directory of the {self.name} files (wssweep "
                           "downloads nothing)", None)
        if self.kwargs and self.name not in KWARGS_DATASETS:
            raise SpecRule("kwargs", f"no kwargs for data.name {self.name} (only "
                           f"{', '.join(KWARGS_DATASETS)} take them)", self.kwargs)
        if self.name == "mnist1d":
            _check_mnist1d(self.kwargs, self.num_samples)
        if self.name == "synthetic_cifar":
            _check_synthetic(self.kwargs, self.num_samples)
        return self


#: Top-level config keys that change only the warm arm: stage 1 and the cold arm do not depend on
#: them, so settings that differ only in these share their cold arm (and its baseline cache).
WARM_ONLY_KEYS = frozenset({"warm", "shrink", "meta_horizon", "cold_at_chosen_lr", "threads"})
#: Swept keys that choose or tune the warm start's intervention; the rest of a setting is the
#: recipe the intervention is compared within (against the plain warm start of that recipe).
INTERVENTION_KEYS = frozenset({"warm.intervention", "shrink", "warm.perturb", "warm.noise",
                               "warm.dash_alpha", "warm.granularity", "warm.l2_coef"})


#: What a custom model factory is given from the data, never from ``model.kwargs``.
FROM_THE_DATA = ("input_shape", "num_classes")
#: Models that need inputs of one shape: conv1d 1-D signals, resnet18 images (C, H, W).
MODEL_INPUT_NDIM = {"conv1d": 1, "resnet18": 3}


class ModelConfig(_Strict):
    name: Literal["logreg", "mlp", "conv1d", "resnet18", "custom"] = "mlp"
    width: int = Field(default=100, gt=0)  # MLP hidden units per layer
    depth: int = Field(default=2, ge=0)  # MLP hidden layers
    activation: Literal["relu", "tanh"] = "relu"
    bias: bool = True
    resnet_width: Literal["narrow", "standard"] = "narrow"  # 16..128 (Ash & Adams) or 64..512
    init_scale: float = Field(default=1.0, gt=0)  # multiplies the default init of every weight
    factory: ImportPath | None = None  # name=custom: 'package.module:function' giving a Module
    kwargs: dict[str, Any] = Field(default_factory=dict)  # keyword arguments for the factory

    @model_validator(mode="after")
    def _custom_only(self) -> ModelConfig:
        if self.name == "custom" and self.factory is None:
            raise SpecRule("factory", "an import path 'package.module:function' (model.name is "
                           "custom)", None)
        if self.name != "custom" and self.factory is not None:
            raise SpecRule("factory", "no factory unless model.name is custom", self.factory)
        if self.name != "custom" and self.kwargs:
            raise SpecRule("kwargs", "no kwargs unless model.name is custom", self.kwargs)
        for reserved in FROM_THE_DATA:
            if reserved in self.kwargs:
                # A second, possibly different value would be a silent bug.
                raise SpecRule(f"kwargs.{reserved}", "no such key (it is passed from the data)",
                               self.kwargs[reserved])
        return self


class StopConfig(_Strict):
    train_acc: float = Field(default=0.99, gt=0, le=1)  # stop when train accuracy reaches this
    plateau_std: float = Field(default=0.002, ge=0)  # ... or when the std of the last epochs' train
    plateau_window: int = Field(default=3, ge=2)  # accuracy (fraction) over this window is below it
    max_epochs: int = Field(default=100, gt=0)  # ... or at this many epochs per stage
    min_epochs: int = Field(default=1, gt=0)


class ProtocolConfig(_Strict):
    kind: Literal["batch", "online", "active"] = "online"
    fraction: float = Field(default=0.5, gt=0, lt=1)  # batch: share of the data in stage 1
    chunks: int = Field(default=10, ge=2)  # online/active: equal chunks, stage j trains on 1..j
    # Share of the training data held out before the stages begin, the same for both arms and
    # every stage: every selection (the search, ASHA, the reference cold start, the
    # recommendation) reads it; test accuracy is only reported.
    val_fraction: float = Field(default=0.1, gt=0, le=0.5)
    stop: StopConfig = Field(default_factory=StopConfig)


class OptimConfig(_Strict):
    name: Literal["sgd", "adam", "gi_adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0, lt=1)  # SGD heavy-ball momentum
    betas: tuple[Beta, Beta] = (0.9, 0.999)  # Adam / GI-Adam
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=128, gt=0)  # examples per optimizer step
    schedule: Literal["constant", "cosine", "two_regime"] = "constant"
    # The warmup's start rate, or Kalra & Barkeshli's η_c.
    warmup_init: Annotated[float, Field(ge=0)] | Literal["catapult"] = 0.0
    decay_steps: int = Field(default=1000, gt=0)  # cosine: steps from lr down to lr/10
    switch_step: int = Field(default=0, ge=0)  # two_regime: steps at lr before the small-step phase
    ratio: float = Field(default=0.1, gt=0, le=1)  # two_regime: small rate = ratio * lr


class WarmConfig(_Strict):
    """How the warm arm carries its model into each new stage."""

    intervention: Literal["none", "shrink_perturb", "dash", "reset_last_layer", "l2_init"] = "none"
    keep_optimizer: bool = False  # keep the optimizer state (momentum, Adam moments) across stages
    perturb: float = Field(default=0.1, ge=0)  # σ of shrink-and-perturb (Ash & Adams' code: 0.1)
    noise: Literal["fresh_init", "gaussian"] = "fresh_init"
    dash_alpha: float = Field(default=0.3, gt=0, le=1)  # EMA coefficient of DASH's gradient
    granularity: Literal["slice", "filter"] = "slice"  # DASH on conv weights
    l2_coef: float = Field(default=1e-2, ge=0)  # L2-init penalty strength (DASH repo: 1e-2)
    meta_lr_min: float = Field(default=1e-4, gt=0)  # meta-horizon candidate rates: a log grid
    meta_lr_max: float = Field(default=1.0, gt=0)  # from min to max ...
    meta_candidates: int = Field(default=9, ge=2)  # ... with this many points
    meta_score_batches: int = Field(default=5, gt=0)  # batches after the horizon that score it

    @model_validator(mode="after")
    def _meta_grid_rises(self) -> WarmConfig:
        # A reversed or empty range would search one rate, or the same rates backwards.
        if self.meta_lr_max <= self.meta_lr_min:
            raise SpecRule("meta_lr_max", f"a rate above meta_lr_min ({self.meta_lr_min:g})",
                           self.meta_lr_max)
        return self


class NQMConfig(_Strict):
    """The noisy quadratic model (Wu et al. 2018): no network, exact expected loss."""

    d: int = Field(default=1000, gt=0)  # dimensions
    spectrum_power: float = Field(default=1.0, ge=0)  # curvature h_i = i^-power
    noise_scale: float = Field(default=1.0, ge=0)  # σ_i² = noise_scale * h_i
    theta0_std: float = Field(default=1.0, ge=0)  # θ₀ ~ N(0, std² I)
    total_steps: int = Field(default=10_000, gt=0)  # the long horizon the loss is reported at
    every: int = Field(default=100, gt=0)  # online look-ahead re-chooses the rate every K steps
    momentum: float = Field(default=0.0, ge=0, lt=1)
    method: Literal["online", "greedy", "optimal_schedule"] = "online"
    iters: int = Field(default=300, gt=0)  # optimal_schedule: gradient steps on the log-rates
    n_pieces: int = Field(default=30, gt=0)  # optimal_schedule: piecewise-constant rate pieces


#: Largest ``nqm.theta0_std``: θ₀ and θ₀² (the loss is computed from it) stay finite floats for
#: any draw.
THETA0_STD_MAX = 1e150


class ExperimentConfig(_Strict):
    """One trial: data, model, protocol, recipe, warm-start intervention, and the four axes."""

    kind: Literal["network", "nqm"] = "network"
    seed: int = Field(default=0, ge=0)  # init, data split and batch order; both arms share it
    lr: float = Field(default=0.01, gt=0)  # target learning rate
    warmup_steps: int = Field(default=0, ge=0)  # linear warmup per stage, optimizer steps; 0 = none
    shrink: float | None = Field(default=None, ge=0, le=1)  # λ; default 0.4 (S&P), 0.3 (DASH)
    # Network: steps per candidate rate, 0 = off (use lr). kind: nqm: the look-ahead H (online) or
    # the schedule's T (optimal_schedule), so there it must be >= 1.
    meta_horizon: int = Field(default=0, ge=0)
    # Also train a cold arm at the warm arm's chosen rate (gap_chosen): separates a rate chosen
    # too small, which hurts any start, from what warm starting itself costs.
    cold_at_chosen_lr: bool = False
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int = Field(default=1, gt=0)  # torch CPU threads per trial
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    warm: WarmConfig = Field(default_factory=WarmConfig)
    nqm: NQMConfig = Field(default_factory=NQMConfig)

    @model_validator(mode="after")
    def _model_fits_data(self) -> ExperimentConfig:
        needs, has = MODEL_INPUT_NDIM.get(self.model.name), INPUT_NDIM.get(self.data.name)
        if self.kind == "network" and needs is not None and has is not None and needs != has:
            shape = "1-D inputs" if needs == 1 else "images (C, H, W)"
            fits = sorted(n for n, d in INPUT_NDIM.items() if d == needs)
            raise SpecRule("model.name", f"a model for data.name {self.data.name} "
                           f"({self.model.name} takes {shape}: data.name one of "
                           f"{', '.join(fits)} or custom)", self.model.name)
        return self

    @model_validator(mode="after")
    def _nqm_rules(self) -> ExperimentConfig:
        # The NQM code trusts its config (wssweep.science.nqm.run_nqm): every rule that a run
        # would otherwise break at run time is checked here, so validate refuses it first.
        if self.kind != "nqm":
            return self
        nqm = self.nqm
        if nqm.method in ("online", "optimal_schedule") and self.meta_horizon < 1:
            what = ("the look-ahead horizon H" if nqm.method == "online"
                    else "the horizon T the schedule is optimized for")
            raise SpecRule("meta_horizon", f"an integer >= 1 for kind: nqm with nqm.method "
                           f"{nqm.method} ({what}; 0 means off only for kind: network)",
                           self.meta_horizon)
        if nqm.method == "greedy" and nqm.momentum != 0:
            raise SpecRule("nqm.momentum", "0 with nqm.method greedy (the greedy rate is the "
                           "closed form for plain SGD)", nqm.momentum)
        if nqm.theta0_std > THETA0_STD_MAX:
            raise SpecRule("nqm.theta0_std", f"at most {THETA0_STD_MAX:g} (θ₀² must be a finite "
                           "float)", nqm.theta0_std)
        if float(nqm.d) ** -nqm.spectrum_power <= 0.0:
            # h_d = d^-power underflows to 0, and the NQM needs every curvature > 0.
            most = -math.log(sys.float_info.min * sys.float_info.epsilon) / math.log(nqm.d)
            raise SpecRule("nqm.spectrum_power", f"at most about {most:.4g} with nqm.d {nqm.d} "
                           "(the smallest curvature d^-power must be a float > 0)",
                           nqm.spectrum_power)
        return self

    def canonical(self) -> dict[str, Any]:
        """The config as a mapping with inert keys (ones this config never reads) at defaults.

        Two configs with the same canonical form run the same experiment, so a grid runs it once:
        e.g. the noise convention when shrink-and-perturb adds no noise, ``shrink`` when there is
        no shrinking intervention, the warmup's start rate when there is no warmup.

        Example:
            >>> a = ExperimentConfig.model_validate({"warm": {"perturb": 0.0, "noise": "gaussian",
            ...     "intervention": "shrink_perturb"}})
            >>> b = a.model_copy(update={"warm": a.warm.model_copy(update={"noise": "fresh_init"})})
            >>> a.canonical() == b.canonical(), a.model_dump() == b.model_dump()
            (True, False)
        """
        out = self.model_dump()
        w, o, defaults = out["warm"], out["optim"], ExperimentConfig().model_dump()
        inert = []
        if w["intervention"] not in ("shrink_perturb", "dash"):
            inert.append(("shrink",))
        if w["intervention"] != "shrink_perturb" or w["perturb"] == 0:
            inert += [("warm", "noise")] + ([("warm", "perturb")] if w["intervention"]
                                            != "shrink_perturb" else [])
        if w["intervention"] != "dash":
            inert += [("warm", "dash_alpha"), ("warm", "granularity")]
        if w["intervention"] != "l2_init":
            inert.append(("warm", "l2_coef"))
        if self.meta_horizon == 0:
            inert += [("warm", k) for k in ("meta_lr_min", "meta_lr_max", "meta_candidates",
                                            "meta_score_batches")]
        if self.warmup_steps == 0:
            inert.append(("optim", "warmup_init"))
        if o["schedule"] != "two_regime":
            inert += [("optim", "switch_step"), ("optim", "ratio")]
        if o["schedule"] != "cosine":
            inert.append(("optim", "decay_steps"))
        if self.kind == "network":
            inert.append(("nqm",))
        for path in inert:
            *parents, leaf = path
            node, default = out, defaults
            for part in parents:
                node, default = node[part], default[part]
            node[leaf] = default[leaf]
        return out

    def baseline_recipe(self) -> str:
        """What determines stage 1 and the cold arm: the config without its warm-only keys
        (``WARM_ONLY_KEYS``), as sorted JSON. Configs with the same recipe share a baseline
        (``wssweep.science.experiment.baseline_key`` adds the device type and the code).

        Example:
            >>> a = ExperimentConfig.model_validate({"shrink": 0.5})
            >>> a.baseline_recipe() == a.model_copy(update={"shrink": 0.9}).baseline_recipe()
            True
        """
        return json.dumps(self.model_dump(exclude=set(WARM_ONLY_KEYS)), sort_keys=True,
                          default=str)

    def fusion_signature(self) -> str | None:
        """What trials must share to train as one fused group (``wssweep.science.group``): the
        data (its seed aside), the model, the optimizer type, the batch size, the protocol's
        stages and the device; ``None`` for a kind that does not train networks (nqm).

        Seeds, rates, warmups, schedules, optimizer settings, stop rules and warm settings may
        differ within a group.

        Example:
            >>> a = ExperimentConfig.model_validate({"seed": 0})
            >>> b = a.model_copy(update={"seed": 1, "lr": 0.5})
            >>> a.fusion_signature() == b.fusion_signature()
            True
            >>> nqm = ExperimentConfig.model_validate({"kind": "nqm", "meta_horizon": 1})
            >>> nqm.fusion_signature() is None
            True
        """
        if self.kind != "network":
            return None
        p = self.protocol
        return json.dumps({"device": self.device, "data": self.data.model_dump(),
                           "model": self.model.model_dump(), "optim": self.optim.name,
                           "batch_size": self.optim.batch_size,
                           "protocol": [p.kind, p.chunks, p.fraction, p.val_fraction]},
                          sort_keys=True, default=str)

    def resolved_shrink(self) -> float:
        """λ actually used: the config's, else the intervention's published default."""
        if self.shrink is not None:
            return self.shrink
        return {"shrink_perturb": 0.4, "dash": 0.3}.get(self.warm.intervention, 1.0)
