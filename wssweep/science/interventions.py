"""Warm-start interventions between stages: shrink-and-perturb, DASH, last-layer reset, L2-init.

All of them work in place on any ``nn.Module``. Shrink-and-perturb is Ash & Adams, "On
Warm-Starting Neural Network Training" (NeurIPS 2020, arXiv 1910.08475, §4); DASH, last-layer
reset and L2-init follow Shin, Oh, Cho, Yun, "DASH" (NeurIPS 2024, arXiv 2410.23495, §4 and its
baselines as the authors' code implements them). None of them touches an optimizer: whether
optimizer state is kept or rebuilt is the protocol's choice, not the intervention's.

Their settings have no defaults here: the experiment config holds them (``warm.*``, and
``ExperimentConfig.resolved_shrink`` for each intervention's published λ) and has checked them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wssweep.science.models import last_linear

NOISES = ("fresh_init", "gaussian")
GRANULARITIES = ("slice", "filter")

# Normalization layers keep their parameters in the Gaussian S&P variant (DASH repo's baseline
# perturbs only Conv/Linear). _NormBase covers every BatchNorm and InstanceNorm flavour.
_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())

# The layers DASH shrinks: weights laid out (out, in, *kernel). ConvTranspose is excluded because
# its weight is (in, out, *kernel), so "per output row" would mean something else.
DASH_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def shrink_perturb(
    model: nn.Module,
    shrink: float,
    perturb: float,
    *,
    noise: str,
    fresh: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Shrink and perturb in place: θ ← shrink·θ + perturb·ε (Ash & Adams 2020).

    ``noise="fresh_init"`` (the authors' official code): ε is the matching parameter of
    ``fresh``, a freshly initialised model of the same architecture, so each layer's noise has
    that layer's own init scale. Every parameter is transformed, BatchNorm γ/β included, and
    every buffer (BatchNorm running mean/var and ``num_batches_tracked``) is copied from
    ``fresh``, because their code continues with the fresh model object. shrink 0, perturb 1 is
    therefore an exact re-init to ``fresh``.

    ``noise="gaussian"`` (the paper's formula; the DASH repo's S&P baseline): ε ~ N(0, 1) i.i.d.
    drawn from ``generator`` (the global RNG if None), so ``perturb`` is the noise std. Only the
    parameters of non-normalization modules are transformed (weights and biases of Linear, Conv,
    ...); BatchNorm/GroupNorm/LayerNorm parameters and all buffers are untouched, as in the
    DASH repo. ``fresh`` is ignored.

    shrink 1 with perturb 0 is a plain warm start: nothing is computed or reset, so every
    parameter and buffer stays bit-identical (``fresh`` may then be None).

    Raises ``ValueError`` for an unknown ``noise``, or a missing or mismatched ``fresh``.

    Example:
        >>> from wssweep.config import ModelConfig
        >>> from wssweep.science.models import build_model
        >>> spec = ModelConfig(name="mlp")
        >>> m = build_model(spec, input_shape=(4,), num_classes=2, seed=0)
        >>> fresh = build_model(spec, input_shape=(4,), num_classes=2, seed=1)
        >>> shrink_perturb(m, 0.0, 1.0, noise="fresh_init", fresh=fresh)
        >>> all(torch.equal(a, b) for a, b in zip(m.parameters(), fresh.parameters()))
        True
    """
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    if shrink == 1 and perturb == 0:
        return  # plain warm start: leave the model bit-identical, no BN reset
    with torch.no_grad():
        if noise == "fresh_init":
            params, buffers = _matched_fresh(model, fresh)
            for p, eps in params:
                p.mul_(shrink).add_(eps.to(p.device, p.dtype), alpha=perturb)
            for b, fresh_b in buffers:
                b.copy_(fresh_b)
            return
        seen: set[int] = set()
        for module in model.modules():
            if isinstance(module, _NORM_TYPES):
                continue
            for p in module.parameters(recurse=False):
                if id(p) in seen:  # a parameter shared by two modules is perturbed once
                    continue
                seen.add(id(p))
                device = generator.device if generator is not None else p.device
                eps = torch.randn(p.shape, generator=generator, device=device, dtype=p.dtype)
                p.mul_(shrink).add_(eps.to(p.device), alpha=perturb)


def _matched_fresh(
    model: nn.Module, fresh: nn.Module | None
) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
    """Pair each parameter and buffer of ``model`` with ``fresh``'s, checking names and shapes."""
    if not isinstance(fresh, nn.Module):
        raise ValueError("noise='fresh_init' needs fresh=, a freshly initialised copy of the model")
    pairs = []
    for kind, mine, theirs in (
        ("parameters", dict(model.named_parameters()), dict(fresh.named_parameters())),
        ("buffers", dict(model.named_buffers()), dict(fresh.named_buffers())),
    ):
        if mine.keys() != theirs.keys():
            diff = sorted(set(mine) ^ set(theirs))
            raise ValueError(f"fresh model's {kind} do not match the model's: {diff[:5]}")
        for key, t in mine.items():
            if t.shape != theirs[key].shape:
                raise ValueError(
                    f"fresh model's {key} has shape {tuple(theirs[key].shape)}, "
                    f"the model's has {tuple(t.shape)}"
                )
        pairs.append([(t, theirs[key]) for key, t in mine.items()])
    return pairs[0], pairs[1]


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine along the last dim, 0 where either vector is zero (so DASH's factor becomes λ).

    Computed in float64 (where the device has it) so a row exactly parallel to its direction gets
    a factor of exactly 1 and is left bit-identical.
    """
    if a.device.type != "mps":
        a, b = a.double(), b.double()
    denom = a.norm(dim=-1) * b.norm(dim=-1)
    dot = (a * b).sum(dim=-1)
    return torch.where(denom > 0, dot / denom.clamp_min(torch.finfo(denom.dtype).tiny), 0.0)


def _factor(w: Tensor, g: Tensor, shrink: float) -> Tensor:
    """DASH's factor clamp(cos(w, g), shrink, 1) per group (last dim), in ``w``'s dtype."""
    return _cosine(w, g).clamp(min=shrink, max=1.0).to(w.dtype)


def dash(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    shrink: float,
    alpha: float,
    granularity: str,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> dict[str, float]:
    """Direction-Aware SHrinking (Shin et al. 2024), in place, as in the authors' code.

    1. With every module in eval mode (BN uses running stats), walk ``batches`` in the order
       given (oldest data first, so the newest data dominates) and keep an EMA of the *negative*
       gradient of ``loss_fn(model(x), y)`` for each Linear/Conv weight and bias:
       G ← (1−α)·G + α·(−∇L_batch), from G = 0.
    2. Under no_grad, multiply each group of weights by clamp(cos(W, G), shrink, 1):
       Linear weight: one factor per output row. Conv1d/2d/3d weight (out, in, *k):
       ``granularity="slice"`` (official code) one factor per (out, in) kernel slice over its
       k (k·k, ...) entries; ``"filter"`` one per output filter over in×k entries. Bias: one
       factor for the whole vector. A zero vector (weight or G) gets cosine 0, i.e. factor
       ``shrink``.

    Normalization parameters and buffers are untouched, parameters that do not require grad are
    skipped, and no optimizer is involved. Each module's train/eval mode is restored afterwards
    and the model's ``.grad`` fields are cleared (set to None). Batches are moved to the model's
    device.

    Returns logging stats: ``factor/<param name>``, ``factor_min/<param name>`` and
    ``factor_max/<param name>`` (the mean, least and largest factor of that tensor),
    ``mean_factor`` (the mean of the tensors' means), ``min_factor`` and ``max_factor`` (over
    every factor of every tensor) and ``num_batches``.

    Example:
        >>> from wssweep.config import ModelConfig
        >>> from wssweep.science.models import build_model
        >>> m = build_model(ModelConfig(name="mlp"), input_shape=(4,), num_classes=3, seed=0)
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> stats = dash(m, [(x, y)], shrink=0.3, alpha=0.3, granularity="slice")
        >>> 0.3 <= stats["mean_factor"] <= 1.0
        True
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if not 0.0 <= shrink <= 1.0:
        raise ValueError(f"shrink (DASH's lower clamp λ) must be in [0, 1], got {shrink!r}")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha (the EMA coefficient) must be in (0, 1], got {alpha!r}")

    targets: list[tuple[str, nn.Module, Tensor]] = []  # (param name, owning module, tensor)
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        if not isinstance(module, DASH_LAYER_TYPES):
            continue
        for attr in ("weight", "bias"):
            p = getattr(module, attr, None)
            if isinstance(p, Tensor) and p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                targets.append((f"{mod_name}.{attr}" if mod_name else attr, module, p))
    if not targets:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv layer for DASH to shrink")
    tensors = [p for _, _, p in targets]
    ema = [torch.zeros_like(p) for p in tensors]
    device = tensors[0].device

    modes = {m: m.training for m in model.modules()}
    model.eval()  # the authors' pass runs in eval mode: BN uses (and keeps) its running stats
    num_batches = 0
    try:
        with torch.enable_grad():
            for x, y in batches:
                loss = loss_fn(model(x.to(device)), y.to(device))
                # autograd.grad leaves .grad alone and skips parameters DASH does not shrink.
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
                for g_ema, g in zip(ema, grads, strict=True):
                    g_ema.mul_(1 - alpha)
                    if g is not None:  # an unused parameter has zero gradient
                        g_ema.add_(g, alpha=-alpha)
                num_batches += 1
    finally:
        for m, training in modes.items():
            m.training = training
    if num_batches == 0:
        raise ValueError("dash needs at least one (x, y) batch to estimate the gradient")

    stats: dict[str, float] = {}
    with torch.no_grad():
        for (name, module, p), g in zip(targets, ema, strict=True):
            # Factors are computed per group, then broadcast back onto p (p itself may be
            # non-contiguous, e.g. channels_last, so a reshaped copy must not be the one scaled).
            if p.ndim <= 1:  # bias: one cosine over the whole vector
                factor = _factor(p.reshape(1, -1), g.reshape(1, -1), shrink)
                p.mul_(factor.reshape(()))
            elif granularity == "slice" and not isinstance(module, nn.Linear):
                o, i = p.shape[:2]
                factor = _factor(p.reshape(o, i, -1), g.reshape(o, i, -1), shrink)
                p.mul_(factor.reshape(o, i, *[1] * (p.ndim - 2)))
            else:  # Linear row, or Conv output filter
                o = p.shape[0]
                factor = _factor(p.reshape(o, -1), g.reshape(o, -1), shrink)
                p.mul_(factor.reshape(o, *[1] * (p.ndim - 1)))
            stats[f"factor/{name}"] = float(factor.mean())
            stats[f"factor_min/{name}"] = float(factor.min())
            stats[f"factor_max/{name}"] = float(factor.max())
    model.zero_grad(set_to_none=True)
    means = [v for k, v in stats.items() if k.startswith("factor/")]
    stats["mean_factor"] = sum(means) / len(means)
    stats["min_factor"] = min(v for k, v in stats.items() if k.startswith("factor_min/"))
    stats["max_factor"] = max(v for k, v in stats.items() if k.startswith("factor_max/"))
    stats["num_batches"] = float(num_batches)
    return stats


def reset_last_layer(model: nn.Module, fresh: nn.Module) -> None:
    """Copy the last Linear layer's weight and bias from ``fresh`` (the DASH repo's ``reset``).

    Raises ``ValueError`` if the two last Linear layers differ in shape or in having a bias.

    Example:
        >>> from wssweep.config import ModelConfig
        >>> from wssweep.science.models import build_model, last_linear
        >>> spec = ModelConfig(name="logreg")
        >>> m = build_model(spec, input_shape=(4,), num_classes=2, seed=0)
        >>> fresh = build_model(spec, input_shape=(4,), num_classes=2, seed=1)
        >>> reset_last_layer(m, fresh)
        >>> torch.equal(last_linear(m).weight, last_linear(fresh).weight)
        True
    """
    mine, theirs = last_linear(model), last_linear(fresh)
    if mine.weight.shape != theirs.weight.shape or (mine.bias is None) != (theirs.bias is None):
        raise ValueError(
            f"last Linear layers differ: {mine} vs {theirs}; fresh must have the same architecture"
        )
    with torch.no_grad():
        mine.weight.copy_(theirs.weight)
        if mine.bias is not None and theirs.bias is not None:
            mine.bias.copy_(theirs.bias)


def snapshot_params(model: nn.Module) -> dict[str, Tensor]:
    """Detached copies of every parameter by name (shared ones under each name): L2-init's anchor.

    Example:
        >>> snap = snapshot_params(torch.nn.Linear(2, 1))
        >>> sorted(snap)
        ['bias', 'weight']
    """
    return {name: p.detach().clone() for name, p in model.named_parameters(remove_duplicate=False)}


def l2_init_penalty(model: nn.Module, init: dict[str, Tensor], coef: float) -> Tensor:
    """The DASH repo's L2-init penalty: coef·(Σ_modules ‖W − W_init‖_F)², differentiable.

    As in their code, the sum runs over every module that has a ``.weight`` tensor (BatchNorm
    and LayerNorm γ included, biases excluded), and the *sum of norms* is squared (not a sum of
    squares). ``init`` comes from ``snapshot_params`` on the initial model. At the anchor the
    penalty and its gradient are 0 (PyTorch's norm has a zero subgradient at 0).

    Example:
        >>> lin = torch.nn.Linear(2, 1)
        >>> init = snapshot_params(lin)
        >>> l2_init_penalty(lin, init, coef=1e-2).item()
        0.0
    """
    terms: list[Tensor] = []
    for mod_name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if not isinstance(w, Tensor):
            continue
        key = f"{mod_name}.weight" if mod_name else "weight"
        if key not in init:
            raise KeyError(f"init has no {key!r}; build it with snapshot_params(model)")
        terms.append((w - init[key].to(w.device, w.dtype)).norm())
    if not terms:
        return torch.zeros((), device=_device(model))
    return coef * torch.stack(terms).sum() ** 2


def _device(model: nn.Module) -> Any:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
