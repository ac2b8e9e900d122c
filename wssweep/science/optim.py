"""Optimizers (SGD, Adam, GI-Adam) and the loss-catapult search for the warmup's initial rate.

GI-Adam and the catapult search follow Kalra & Barkeshli, "Why Warmup the Learning Rate?"
(NeurIPS 2024, arXiv 2406.09405; §6.1–6.2, App. B.2 and Algorithms 1–2).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "OPTIMIZERS",
    "CatapultResult",
    "GIAdam",
    "catapult_lr",
    "default_catapult_delta",
    "make_optimizer",
]

#: Optimizer names ``make_optimizer`` knows.
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "gi_adam")

_DEFAULT_DELTA = {"sgd": 0.1, "adam": 0.01, "gi_adam": 0.01}


class GIAdam(torch.optim.Optimizer):
    """GI-Adam (Kalra & Barkeshli §6.2): Adam with the second moment started at g₀².

    At the first step of each parameter, v₀ = g₀² (elementwise, g₀ the gradient of that step,
    including the L2 term) and m₀ = 0; every step then runs the standard Adam update with the
    usual bias corrections::

        m_t = β₁m_{t−1} + (1−β₁)g_t,   v_t = β₂v_{t−1} + (1−β₂)g_t²
        θ_t = θ_{t−1} − lr · (m_t/(1−β₁ᵗ)) / (√(v_t/(1−β₂ᵗ)) + ε)

    Since v already holds the gradient scale, the correction inflates v̂ by 1/(1−β₂ᵗ): an automatic
    warmup lr·√(1−β₂ᵗ). ``weight_decay`` adds ``weight_decay·θ`` to the gradient, as torch's Adam.
    ``grad_init=False`` starts v at 0 instead, which is plain Adam.

    Example:
        >>> p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        >>> opt = GIAdam([p], lr=0.1)
        >>> p.grad = torch.ones_like(p)
        >>> opt.step()
        >>> round(-p.item(), 6)  # 0.1 * sqrt(1 - 0.999)
        0.003162
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        grad_init: bool = True,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "grad_init": grad_init,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("grad_init", True)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Take one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("GIAdam does not support sparse gradients")
                if torch.is_complex(p):
                    raise RuntimeError("GIAdam does not support complex parameters")
                if weight_decay != 0:
                    grad = grad.add(p, alpha=weight_decay)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["grad_init"]:
                        state["exp_avg_sq"] = (grad * grad).clone(
                            memory_format=torch.preserve_format
                        )
                    else:
                        state["exp_avg_sq"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format
                        )
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
        return loss


def _check_name(name: object) -> str:
    # No torch optimizer would name the problem; the config's optim.name has already refused it.
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return name  # type: ignore[return-value]


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)`` on a copy of ``state``.

    torch's ``load_state_dict`` keeps ``state``'s tensors as the optimizer's own (no copy), and
    ``state_dict()`` hands out the live ones: training the loaded optimizer would move its
    momentum and moments in ``state`` too, and in every other optimizer loaded from it (a
    stored stage 1, the meta-horizon's candidates).

    Example:
        >>> lin = nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
        >>> lin(torch.ones(1, 2)).sum().backward(); opt.step()
        >>> saved = opt.state_dict()
        >>> other = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
        >>> load_optimizer_state(other, saved)
        >>> other.state[lin.weight]["momentum_buffer"] is saved["state"][0]["momentum_buffer"]
        False
    """
    optimizer.load_state_dict(copy.deepcopy(state))


def make_optimizer(
    name: str,
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    lr: float,
    *,
    momentum: float,
    betas: tuple[float, float],
    eps: float = 1e-8,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """Build ``"sgd"``, ``"adam"`` or ``"gi_adam"`` over ``params`` with learning rate ``lr``.

    ``momentum`` is used by SGD only, ``betas``/``eps`` by the Adams only. ``weight_decay`` is the
    L2 term added to the gradient in all three. Their defaults live in the experiment config
    (``optim.*``; plain SGD without momentum, as Ash & Adams and Kalra & Barkeshli), which has
    also checked their ranges.

    Raises:
        ValueError: for an unknown name, a momentum outside [0, 1), or (from torch's optimizers)
            a negative rate, β outside [0, 1), negative ``eps`` or ``weight_decay``.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(3))
        >>> opt = make_optimizer("gi_adam", [w], 1e-3, momentum=0.0, betas=(0.9, 0.999),
        ...                      weight_decay=0.0)
        >>> type(opt).__name__
        'GIAdam'
    """
    name = _check_name(name)
    # torch's SGD accepts momentum >= 1, where heavy ball no longer converges on anything.
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    betas = (float(betas[0]), float(betas[1]))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        params = list(params)
        # PyTorch's fused kernel: the same update, about a third of the time of its default on a
        # CPU (bench/README.md); only for floating-point tensors on a CPU or CUDA device.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                    for p in _tensors(params))
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                fused=fused or None)
    return GIAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _tensors(params: list) -> Iterator[torch.Tensor]:
    """The tensors of a list of parameters or of parameter groups."""
    for item in params:
        if isinstance(item, dict):
            yield from item["params"]
        else:
            yield item


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def default_catapult_delta(optimizer_name: str) -> float:
    """The catapult-search tolerance δ: 0.1 for SGD, 0.01 for Adam and GI-Adam (App. B.2)."""
    return _DEFAULT_DELTA[_check_name(optimizer_name)]


#: How far above the target the catapult search looks before it concludes that the loss rises
#: at no rate (no catapult at initialisation): 2^20 ≈ 10^6 times, 20 forward passes at most.
NO_CATAPULT_SPAN = 2.0**20


@dataclass(frozen=True)
class CatapultResult:
    """Outcome of :func:`catapult_lr`.

    Attributes:
        lr: η_init, the rate to start the warmup from: η_c when a catapult was found, the target
            when the loss rises only above it (Algorithm 1: no warmup needed), ``lr_target/10``
            when it never rises (no catapult at initialisation: the paper's heuristic).
        forward_passes: forward passes spent, the one that also computed the gradient included.
        outcome: ``catapult`` (found by the search), ``at_start`` (the loss already rises at
            ``lr_start``), ``target`` or ``none`` (as for ``lr``).
    """

    lr: float
    forward_passes: int
    outcome: Literal["catapult", "at_start", "target", "none"]

    @property
    def found(self) -> bool:
        """Whether η_init is a rate at which the loss rises (a real catapult, η_c)."""
        return self.outcome in ("catapult", "at_start")


@contextmanager
def _private_rng(tensors: list[torch.Tensor], seed: int) -> Iterator[Callable[[], None]]:
    """Fork the CPU RNG and the CUDA RNGs of the devices holding ``tensors``; yield a reseeder.

    Calling the reseeder before each forward pass gives every pass the same dropout masks (or any
    other randomness), and the caller's RNG states are restored on exit.
    """
    cuda = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):

        def reseed() -> None:
            torch.default_generator.manual_seed(seed)
            for index in cuda:
                torch.cuda.default_generators[index].manual_seed(seed)

        yield reseed


def catapult_lr(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batch: tuple[Any, Any],
    optimizer_name: str,
    lr_target: float,
    *,
    lr_start: float = 1e-4,
    delta: float | None = None,
    optimizer_kwargs: dict[str, Any],
    max_bisections: int = 30,
    seed: int = 0,
) -> CatapultResult:
    """Find η_c, the smallest rate whose single optimizer step from θ₀ raises the loss (App. B.2).

    ``batch`` is ``(inputs, targets)`` and the loss is ``loss_fn(model(inputs), targets)``, a
    scalar (e.g. ``F.cross_entropy``); the same fixed batch gives the loss and the gradient.
    L(θ₀) and ∇L(θ₀) are computed once (one forward and backward); every candidate rate η then
    restores θ₀, sets the gradients, takes one step of a fresh ``optimizer_name`` optimizer
    (``make_optimizer`` with ``optimizer_kwargs``: its ``momentum``, ``betas``, ``weight_decay``
    and optionally ``eps``) at rate η and runs one forward pass. Results are cached per rate, so
    each candidate costs one forward pass.

    1. Exponential search from ``lr_start`` (Algorithm 1): while L(θ₁(η)) < L(θ₀), if
       η ≥ ``lr_target`` set η_init = ``lr_target`` and stop (a warmup is not needed), else
       double η. The bracket is [η/2, η]; if the loss already rises at ``lr_start``, that is
       η_c. Before settling on the target, the doubling goes on up to ``NO_CATAPULT_SPAN``
       times it: if the loss rises nowhere there, there is no catapult at initialisation, and
       the paper's fallback ``lr_target/10`` is used instead (outcome ``none``).
    2. Bisection: while L(θ₁(η_upper)) > L(θ₀) + δ·|L(θ₀)| (the paper's (1+δ)·L(θ₀) for a positive
       loss), test the midpoint and move the lower end if the loss falls there, else the upper
       end (at most ``max_bisections`` times). η_c = η_upper.

    δ defaults to 0.1 for SGD and 0.01 for Adam/GI-Adam. A loss that is not finite counts as a
    rise. η_c may exceed ``lr_target`` (by less than 2×) when the rise first shows at the
    doubling past it.

    The search runs the model in training mode (so BatchNorm uses batch statistics) with a private
    RNG reseeded with ``seed`` before every forward pass (same dropout masks each time; the
    global RNG state is untouched). Parameters, buffers and each module's train/eval mode are
    restored exactly afterwards, and the parameters' ``.grad`` are set to None.

    Raises:
        ValueError: for an unknown optimizer, a bad ``lr_target``, ``lr_start``, ``delta`` or
            ``max_bisections``, a model without trainable parameters, or a loss that is not a
            finite scalar at θ₀.
    """
    name = _check_name(optimizer_name)
    if not _finite(lr_target) or lr_target <= 0:
        raise ValueError(f"lr_target must be a finite number > 0, got {lr_target!r}")
    if not _finite(lr_start) or lr_start <= 0:
        raise ValueError(f"lr_start must be a finite number > 0, got {lr_start!r}")
    delta = _DEFAULT_DELTA[name] if delta is None else delta
    if not _finite(delta) or delta < 0:
        raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
    if max_bisections < 0:
        raise ValueError(f"max_bisections must be >= 0, got {max_bisections!r}")
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(f"batch must be a pair (inputs, targets), got {type(batch).__name__}")
    inputs, targets = batch
    kwargs = dict(optimizer_kwargs)
    if "lr" in kwargs:
        raise ValueError("optimizer_kwargs must not contain 'lr'; the search sets it")

    all_params = list(model.parameters())
    params = [p for p in all_params if p.requires_grad]
    if not params:
        raise ValueError("catapult_lr needs a model with trainable parameters")
    buffers = list(model.buffers())
    saved_params = [p.detach().clone() for p in all_params]
    saved_buffers = [b.detach().clone() for b in buffers]
    saved_modes = [(m, m.training) for m in model.modules()]

    def restore() -> None:
        with torch.no_grad():
            for p, saved in zip(all_params, saved_params, strict=True):
                p.copy_(saved)
            for b, saved in zip(buffers, saved_buffers, strict=True):
                b.copy_(saved)

    def as_float(loss: torch.Tensor) -> float:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar tensor, got {loss!r}")
        value = float(loss.detach())
        return value if math.isfinite(value) else math.inf

    try:
        model.train()
        with _private_rng(all_params + buffers, seed) as reseed:
            reseed()
            with torch.enable_grad():
                loss0_tensor = loss_fn(model(inputs), targets)
                loss0 = as_float(loss0_tensor)
                if not math.isfinite(loss0):
                    raise ValueError(f"the loss at θ₀ is not finite: {loss0_tensor.item()!r}")
                grads = torch.autograd.grad(loss0_tensor, params, allow_unused=True)
            del loss0_tensor
            forward_passes = 1
            cache: dict[float, float] = {}

            def loss_after_step(lr: float) -> float:
                nonlocal forward_passes
                if lr not in cache:
                    restore()
                    for p, g in zip(params, grads, strict=True):
                        p.grad = None if g is None else g.detach().clone()
                    make_optimizer(name, params, lr, **kwargs).step()
                    reseed()
                    with torch.no_grad():
                        cache[lr] = as_float(loss_fn(model(inputs), targets))
                    forward_passes += 1
                return cache[lr]

            eta = lr_start
            if loss_after_step(eta) >= loss0:
                return CatapultResult(lr=eta, forward_passes=forward_passes, outcome="at_start")
            while loss_after_step(eta) < loss0:
                if eta >= lr_target:
                    # Algorithm 1 stops here with η_init = η_trgt; only a model whose loss
                    # rises at no rate at all takes the paper's η_trgt/10.
                    probe = eta
                    while probe < lr_target * NO_CATAPULT_SPAN:
                        probe *= 2
                        if loss_after_step(probe) >= loss0:
                            return CatapultResult(lr=lr_target, forward_passes=forward_passes,
                                                  outcome="target")
                    return CatapultResult(lr=lr_target / 10, forward_passes=forward_passes,
                                          outcome="none")
                eta *= 2
            lower, upper = eta / 2, eta
            threshold = loss0 + delta * abs(loss0)
            bisections = 0
            while loss_after_step(upper) > threshold and bisections < max_bisections:
                mid = (lower + upper) / 2
                if loss_after_step(mid) < loss0:
                    lower = mid
                else:
                    upper = mid
                bisections += 1
            return CatapultResult(lr=upper, forward_passes=forward_passes, outcome="catapult")
    finally:
        restore()
        for p in all_params:
            p.grad = None
        for module, training in saved_modes:
            module.training = training
