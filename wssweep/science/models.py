"""The models warm-start studies train, each built from a seed so cold and warm arms share inits.

Every builder returns a plain ``torch.nn.Module`` whose weights depend only on the arguments: the
same ``seed`` gives bit-identical weights, and building a model never moves the caller's random
number generator (so building a fresh model for shrink-and-perturb mid-run changes nothing else).

Architectures (as in Ash & Adams 2020, §3 and their code, and Shin et al. 2024, §5):

* ``logreg``: flatten + one Linear layer (Ash & Adams' convex control).
* ``mlp``: flatten, ``depth`` hidden Linear layers of ``width`` with ReLU or tanh, then a Linear
  classifier. ``depth=2, width=100`` is Ash & Adams' official MLP.
* ``conv1d``: the MNIST-1D paper's ``ConvBase`` (three strided Conv1d layers + Linear).
* ``resnet18``: CIFAR ResNet-18 (3×3 stride-1 stem, no max-pool). ``resnet_width="narrow"``
  (16/32/64/128) is Ash & Adams' official variant; ``"standard"`` (64/128/256/512) is the usual one.
* ``custom``: any user factory given by an import path.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from wssweep.errors import InputError
from wssweep.science.imports import import_object

if TYPE_CHECKING:
    from wssweep.config import ModelConfig

RESNET_WIDTHS = {"narrow": (16, 32, 64, 128), "standard": (64, 128, 256, 512)}


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv–BN layers with an identity or 1×1-conv shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: BasicBlock [2, 2, 2, 2], 3×3 stride-1 stem, no max-pool, BN, avg pool.

    ``widths`` are the four stage widths; Ash & Adams' code uses (16, 32, 64, 128). The global
    pool is adaptive so any image size works (on 32×32 it equals their 4×4 average pool).
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers: list[nn.Module] = []
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(
                nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes))
            )
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


def _conv_out(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class ConvBase(nn.Module):
    """The MNIST-1D paper's ConvBase: three strided Conv1d+ReLU layers, flatten, Linear.

    Inputs of shape (N, L) (or (N, 1, L)) are reshaped to (N, 1, L). ``linear_in`` is computed
    from ``length``: 125 for the standard L = 40.
    """

    def __init__(self, length: int, num_classes: int, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        out = _conv_out(_conv_out(_conv_out(length, 5, 2, 1), 3, 2, 1), 3, 2, 1)
        if out < 1:
            raise InputError("model.name", "conv1d inputs of length >= 4", length)
        self.linear = nn.Linear(channels * out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], 1, x.shape[-1])
        h = self.conv3(self.conv2(self.conv1(h).relu()).relu()).relu()
        return self.linear(h.flatten(1))


def _mlp(in_features: int, num_classes: int, width: int, depth: int, act: str, bias: bool):
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = in_features
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width, bias=bias), nn.ReLU() if act == "relu" else nn.Tanh()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes, bias=bias))
    return nn.Sequential(*layers)


def _call_factory(
    factory: str,
    kwargs: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
) -> nn.Module:
    """Import and call a user factory; see ``build_model`` for the calling convention."""
    fn = import_object(factory, "model.factory")
    call_kwargs = dict(kwargs)
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no inspectable signature
        sig = None
    if sig is not None:
        params = sig.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for name, value in (("input_shape", input_shape), ("num_classes", num_classes)):
            param = params.get(name)
            named = param is not None and param.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            )
            if named or takes_any:
                call_kwargs[name] = value
        try:
            sig.bind(**call_kwargs)
        except TypeError as exc:
            raise InputError(
                "model.kwargs", f"keyword arguments that {factory} accepts ({exc})", kwargs
            ) from None
    model = fn(**call_kwargs)
    if not isinstance(model, nn.Module):
        raise InputError(
            "model.factory", "a factory that returns a torch.nn.Module", type(model).__name__
        )
    return model


def build_model(
    spec: ModelConfig, *, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> nn.Module:
    """Build a freshly initialised model; the same arguments always give bit-identical weights.

    ``spec`` is the validated ``model:`` section of an experiment config (its defaults and
    checks live there). ``input_shape`` is one example's shape without the batch dimension:
    (40,) for MNIST-1D, (64,) for sklearn digits, (3, 32, 32) for CIFAR. The model is built
    inside ``torch.random.fork_rng`` after seeding with ``seed``, so the caller's (global) RNG is
    left exactly as it was. Then every weight with ``ndim >= 2`` (Linear and Conv weights, not
    biases or norm parameters) is multiplied by ``spec.init_scale``; 1.0 keeps PyTorch's init.

    ``width``, ``depth``, ``activation`` and ``bias`` configure ``mlp`` (``bias=False`` gives the
    bias-free ReLU network of Ash & Adams' Prop. 1); ``resnet_width`` configures ``resnet18``.

    ``custom`` imports ``factory`` (``package.module:function``) and calls it with
    ``**kwargs`` plus ``input_shape=`` and ``num_classes=`` for each of the two that the factory
    accepts (as a named parameter or through ``**kw``); a factory that accepts neither just gets
    ``**kwargs``. The factory must return an ``nn.Module``; it runs under the same seeding and
    ``init_scale``.

    Raises ``InputError`` only for what the schema cannot see: a factory that cannot be imported,
    does not take ``kwargs`` or returns no Module, and inputs a built-in model cannot take
    (``wssweep validate`` builds each model once, so it reports these first: wssweep.preflight).

    Example:
        >>> from wssweep.config import ModelConfig
        >>> m = build_model(ModelConfig(name="mlp"), input_shape=(40,), num_classes=10, seed=0)
        >>> m(torch.zeros(5, 40)).shape
        torch.Size([5, 10])
        >>> m2 = build_model(ModelConfig(name="mlp"), input_shape=(40,), num_classes=10, seed=0)
        >>> all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters()))
        True
    """
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"input_shape must be non-empty positive sizes, got {input_shape!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")

    builders: dict[str, Callable[[], nn.Module]] = {
        "logreg": lambda: nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), num_classes)),
        "mlp": lambda: _mlp(math.prod(shape), num_classes, spec.width, spec.depth,
                            spec.activation, spec.bias),
        "conv1d": lambda: _conv1d(shape, num_classes),
        "resnet18": lambda: _resnet18(shape, num_classes, spec.resnet_width),
        "custom": lambda: _call_factory(spec.factory, dict(spec.kwargs), shape, num_classes),
    }
    # fork_rng restores the CPU RNG on exit. Seed only the CPU generator: torch.manual_seed would
    # also (lazily) reseed CUDA, which fork_rng(devices=[]) does not restore.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        model = builders[spec.name]()
    if spec.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim >= 2:
                    p.mul_(spec.init_scale)
    return model


def _conv1d(shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(shape) == 2 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 1:
        raise InputError("model.name", "conv1d on 1-D inputs of shape (L,) or (1, L)", shape)
    return ConvBase(shape[0], num_classes)


def _resnet18(shape: tuple[int, ...], num_classes: int, resnet_width: str) -> nn.Module:
    if len(shape) != 3:
        raise InputError("model.name", "resnet18 on image inputs of shape (C, H, W)", shape)
    return ResNet18(shape[0], num_classes, RESNET_WIDTHS[resnet_width])


#: The models whose forward pass runs under autocast on CUDA: their convolutions are most of
#: the work and bfloat16 runs them on the Tensor cores; the MLPs and logreg stay float32 (too
#: small to gain, and the reference the studies compare against).
AMP_MODELS = (ConvBase, ResNet18)
AMP_DTYPE = torch.bfloat16  # float16 would need a GradScaler (skipped steps): not used
#: The models trained in channels_last on CUDA: cuDNN's NHWC kernels are faster for 2-D convs.
CHANNELS_LAST_MODELS = (ResNet18,)


def amp_dtype(model: nn.Module, device: torch.device | str, *,
              bf16: bool | None = None) -> torch.dtype | None:
    """The autocast dtype to train ``model`` with on ``device``, or ``None`` for no autocast.

    bfloat16 for the conv models (``AMP_MODELS``) with float32 weights on a CUDA device with
    native bfloat16 (``bf16``; ``None`` asks ``torch.cuda``, and only for a CUDA device); on the
    CPU, for float64 weights, for the MLPs and logreg, and on a GPU without bfloat16, ``None``
    (float16 would need a ``GradScaler``, whose skipped steps the stage loops do not count).

    Example:
        >>> from wssweep.config import ModelConfig
        >>> conv = build_model(ModelConfig(name="conv1d"), input_shape=(40,), num_classes=10,
        ...                    seed=0)
        >>> amp_dtype(conv, "cpu"), amp_dtype(conv, "cuda", bf16=True)
        (None, torch.bfloat16)
    """
    device = torch.device(device)
    if device.type != "cuda" or not isinstance(model, AMP_MODELS):
        return None
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return None
    if bf16 is None:
        bf16 = cuda_bf16_native()
    return AMP_DTYPE if bf16 else None


def cuda_bf16_native() -> bool:
    """Whether the current CUDA device runs bfloat16 natively (not emulated, as before Ampere)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.4 has no emulation flag and reports native support only
        return torch.cuda.is_bf16_supported()


def memory_format(model: nn.Module, device: torch.device | str) -> torch.memory_format | None:
    """``torch.channels_last`` for ResNet-18 (``CHANNELS_LAST_MODELS``) on CUDA, where its
    parameters and input batches are trained in that layout; ``None`` (as built) otherwise.

    Example:
        >>> from wssweep.config import ModelConfig
        >>> net = build_model(ModelConfig(name="resnet18", resnet_width="narrow"),
        ...                   input_shape=(3, 8, 8), num_classes=10, seed=0)
        >>> memory_format(net, "cpu"), memory_format(net, "cuda")
        (None, torch.channels_last)
    """
    if torch.device(device).type == "cuda" and isinstance(model, CHANNELS_LAST_MODELS):
        return torch.channels_last
    return None


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` in ``model.modules()`` order (the classifier head in our models).

    Raises ``ValueError`` if the model has no Linear layer.

    Example:
        >>> from wssweep.config import ModelConfig
        >>> m = build_model(ModelConfig(name="mlp"), input_shape=(8,), num_classes=3, seed=0)
        >>> last_linear(m).out_features
        3
    """
    found: nn.Linear | None = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            found = module
    if found is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return found
