"""What the schema cannot see, checked before a sweep starts: the data's files and the user's code.

The schema (``wssweep.config``) decides every rule about values. What is left is a fact of the
machine or of user code: a ``data.root`` holding the dataset's files (and files that are that
dataset), a custom loader that imports and returns valid data, a custom factory that imports,
takes its ``kwargs`` and returns a Module, and a model that takes the data's shape.
:func:`check` loads each distinct dataset once and builds each distinct model once, on the CPU
and exactly as a trial does, so each of the science's remaining ``InputError``s is raised here,
named under ``experiment.``, before anything is created (docs/architecture.md, "Validation").

Configs whose data and model are built in and need no files skip all of this (:func:`needed`):
the schema alone decides them, and ``validate`` stays instant.

Example:
    >>> from wssweep.config import ExperimentConfig
    >>> cfg = ExperimentConfig.model_validate({"data": {"name": "custom", "loader": "a.b:c"}})
    >>> needed(cfg), needed(ExperimentConfig())
    (True, False)
    >>> check([cfg])
    Traceback (most recent call last):
    ...
    wssweep.errors.InputError: experiment.data.loader: expected an import path ...
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from wssweep.config import FILE_DATASETS
from wssweep.errors import InputError

if TYPE_CHECKING:
    from wssweep.config import ExperimentConfig


def needed(cfg: ExperimentConfig) -> bool:
    """Whether ``cfg`` reads files or runs user code (or generates data with user args)."""
    if cfg.kind != "network":
        return False
    data = cfg.data
    return (data.name in FILE_DATASETS or data.name == "custom" or bool(data.kwargs)
            or cfg.model.name == "custom")


def _user_code(key: str, what: str, path: str | None, exc: Exception) -> InputError:
    return InputError(key, f"{what} that runs (it raised {type(exc).__name__}: {exc})", path)


def check_device(configs: Iterable[ExperimentConfig], prefix: str = "experiment.") -> None:
    """Refuse ``device: cuda`` where torch has no CUDA GPU: every trial would fail on its first
    tensor ("Torch not compiled with CUDA enabled"). ``auto`` falls back to the CPU.

    Example:
        >>> from wssweep.config import ExperimentConfig
        >>> check_device([ExperimentConfig(device="cpu"), ExperimentConfig(device="auto")])
    """
    if not any(cfg.device == "cuda" for cfg in configs):
        return  # without importing torch
    import torch

    if not torch.cuda.is_available():
        raise InputError(prefix + "device", "'cpu' or 'auto' on this machine (its torch "
                         f"{torch.__version__} sees no CUDA GPU)", "cuda")


def check(configs: Iterable[ExperimentConfig], prefix: str = "experiment.") -> None:
    """Check the device of ``configs``, then load each distinct dataset and build each distinct
    model once.

    Raises the first problem as an ``InputError`` whose key is ``prefix`` + the config key.
    """
    configs = list(configs)
    check_device(configs, prefix)
    configs = [cfg for cfg in configs if needed(cfg)]
    if not configs:
        return  # without importing torch and the science (2 s of every validate and run)
    import torch

    from wssweep.science.experiment import load_experiment_data
    from wssweep.science.interventions import DASH_LAYER_TYPES
    from wssweep.science.models import build_model, last_linear

    datasets, models = {}, set()
    try:
        for cfg in configs:
            data_key = cfg.data.model_dump_json()
            if data_key not in datasets:
                try:
                    datasets[data_key] = load_experiment_data(cfg, torch.device("cpu"))
                except InputError:
                    raise
                except Exception as exc:  # the user's loader failed: a trial would too
                    if cfg.data.name != "custom":  # a built-in generator, given data.kwargs
                        raise InputError("data.kwargs", f"keyword arguments {cfg.data.name} "
                                         f"accepts (with these it raised {type(exc).__name__}: "
                                         f"{exc})", cfg.data.kwargs) from exc
                    raise _user_code("data.loader", "a loader", cfg.data.loader, exc) from exc
            data = datasets[data_key]
            model_key = (data_key, cfg.model.model_dump_json(), cfg.warm.intervention)
            if model_key in models:
                continue
            models.add(model_key)
            try:
                model = build_model(cfg.model, input_shape=data.input_shape,
                                    num_classes=data.num_classes, seed=0)
            except InputError:
                raise
            except Exception as exc:  # the user's factory failed: a trial would too
                raise _user_code("model.factory", "a factory", cfg.model.factory, exc) from exc
            if cfg.warm.intervention == "dash" and not any(
                    isinstance(m, DASH_LAYER_TYPES) for m in model.modules()):
                raise InputError("model.factory", "a model with a Linear or Conv layer "
                                 "(warm.intervention dash shrinks them)", cfg.model.factory)
            if cfg.warm.intervention == "reset_last_layer":
                try:
                    last_linear(model)
                except ValueError:
                    raise InputError("model.factory", "a model with an nn.Linear layer "
                                     "(warm.intervention reset_last_layer re-initialises the "
                                     "last one)", cfg.model.factory) from None
    except InputError as exc:
        key = exc.key if exc.key.startswith(prefix) else prefix + exc.key
        raise InputError(key, exc.expected, exc.given) from exc
