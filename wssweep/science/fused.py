"""Train many same-shape models of one stage at once, as one batched ("fused") model.

``train_stage_group(members)`` gives each :class:`Member` the result ``train_stage`` would give it
alone, and leaves its model's parameters (and ``.grad``), its optimizer's ``state`` and ``lr``
and its batch generator as that call would; only the floating-point rounding differs (the
batched kernels sum in another order). The members' parameters are stacked along a new leading
dimension; each step every member draws its own mini-batch from its own generator (the same
``torch.randperm`` calls as ``batches``), one forward pass runs all members, the per-member losses
(cross-entropy plus its L2-init penalty) are summed for one backward, and the optimizer step is
applied to the stacks with each member's own rate. After each epoch every member's train accuracy
is measured (batched, as ``accuracy``) and its ``StopRule`` applied; a member that stops or
diverges is written back to its own model and optimizer and dropped from the stacks, so the
remaining steps get cheaper.

Limits: the models must be :func:`fusable`; every member has the same pool size and batch size
(so all take the same steps per epoch); optimizers are those ``make_optimizer`` builds (torch
SGD, Adam, the project's GIAdam) with one parameter group and torch's defaults for the options it
does not set (no Nesterov, dampening, AMSGrad, maximize, decoupled decay). Hyperparameters may
differ between members. ``StageResult.seconds`` is the group's wall time until that member was
done (its own share of the work cannot be measured).

On CUDA, as in ``train_stage``: the losses are checked on the device and read back once per
epoch (a member whose loss turned non-finite stops as diverged at the end of that epoch, with
the steps before that loss counted), and conv models run their forward pass under bfloat16
autocast (``models.amp_dtype``). On the CPU every step's losses are checked, as before.

Example:
    >>> import torch
    >>> from wssweep.science.train import StopRule
    >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> stop = StopRule(train_acc=0.99, plateau_std=0.0, plateau_window=3, max_epochs=2,
    ...                 min_epochs=1)
    >>> def member(seed, lr):
    ...     model = torch.nn.Linear(4, 2)
    ...     return Member(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
    ...                   schedule=lambda step: lr, x=x, y=y, x_test=x, y_test=y, batch_size=16,
    ...                   stop=stop, generator=torch.Generator().manual_seed(seed))
    >>> [(r.epochs, r.steps) for r in train_stage_group([member(0, 0.1), member(1, 0.01)])]
    [(2, 8), (2, 8)]
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wssweep.science.models import amp_dtype
from wssweep.science.optim import GIAdam
from wssweep.science.train import (
    EVAL_BATCH,
    StageResult,
    StopRule,
    accuracy,
    amp_context,
    loss_checked_each_step,
)

__all__ = ["Member", "fusable", "train_stage_group"]

Engine = Literal["auto", "vmap", "bmm"]


@dataclass
class Member:
    """One model's stage: exactly the arguments ``train_stage`` takes for it.

    ``penalty_init``/``penalty_coef`` stand for ``penalty=lambda: l2_init_penalty(model,
    penalty_init, penalty_coef)`` (the only penalty a fused group can batch).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    batch_size: int
    stop: StopRule
    generator: torch.Generator
    penalty_init: dict[str, Tensor] | None = None
    penalty_coef: float = 0.0
    on_epoch: Callable[[int, float], None] | None = None
    x_val: Tensor | None = None
    y_val: Tensor | None = None


# Modules whose training behaviour a batched functional call cannot reproduce: BatchNorm keeps
# running statistics, dropout draws from the global RNG in an order vmap would change.
_UNFUSABLE = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def _why_not_fusable(models: Sequence[nn.Module]) -> str | None:
    if not models:
        return "no models"
    first = models[0]
    signature = [(n, p.shape, p.dtype, p.device) for n, p in first.named_parameters()]
    if not signature:
        return "no parameters"
    for model in models:
        if any(isinstance(m, _UNFUSABLE) for m in model.modules()):
            return f"{type(model).__name__} has BatchNorm or dropout"
        if any(True for _ in model.buffers()):
            return f"{type(model).__name__} has buffers"
        if not all(p.requires_grad for p in model.parameters()):
            return "a parameter does not require grad"
        # repr covers module types and their settings (activation, stride, padding), which
        # parameter shapes alone do not tell apart (ReLU and tanh MLPs have the same ones).
        if type(model) is not type(first) or repr(model) != repr(first):
            return "different architectures"
        if [(n, p.shape, p.dtype, p.device) for n, p in model.named_parameters()] != signature:
            return "different parameters"
    return None


def fusable(models: Sequence[nn.Module]) -> bool:
    """Whether ``models`` can be trained as one fused model: the same architecture (module
    types and settings, parameter names, shapes, dtypes and devices), trainable parameters only,
    no buffers, BatchNorm or dropout (so ResNet-18 is not fusable; mlp, logreg, conv1d are).

    Example:
        >>> fusable([torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)])
        True
        >>> fusable([torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)])
        False
    """
    return _why_not_fusable(models) is None


# --- forward passes over stacked parameters -------------------------------------------------


def _bmm_forward(base: nn.Module) -> Callable[[list[Tensor], Tensor], Tensor] | None:
    """A batched-matmul forward for Sequential(Flatten?, Linear, ReLU/Tanh, ..., Linear), or None.

    Explicit ``baddbmm`` avoids vmap's per-operator dispatch cost, which dominates for the small
    MLPs the studies train.
    """
    if not isinstance(base, nn.Sequential):
        return None
    plan: list[tuple[str, int]] = []  # (op, index of its weight in the parameter list)
    index = 0
    for i, module in enumerate(base):
        if isinstance(module, nn.Linear):
            plan.append(("linear" if module.bias is not None else "linear_nobias", index))
            index += 2 if module.bias is not None else 1
        elif isinstance(module, nn.ReLU | nn.Tanh | nn.Identity):
            plan.append((type(module).__name__.lower(), -1))
        elif isinstance(module, nn.Flatten) and i == 0 and module.start_dim == 1 and (
            module.end_dim == -1
        ):
            plan.append(("flatten", -1))
        else:
            return None
    if index != len(list(base.parameters())):
        return None

    def forward(params: list[Tensor], x: Tensor) -> Tensor:
        h = x
        for op, j in plan:
            if op == "linear":
                h = torch.baddbmm(params[j + 1].unsqueeze(1), h, params[j].transpose(1, 2))
            elif op == "linear_nobias":
                h = torch.bmm(h, params[j].transpose(1, 2))
            elif op == "relu":
                h = h.relu()
            elif op == "tanh":
                h = h.tanh()
            elif op == "flatten":
                h = h.flatten(2)
        return h

    return forward


def _vmap_forward(base: nn.Module, names: list[str]) -> Callable[[list[Tensor], Tensor], Tensor]:
    def one(params: list[Tensor], x: Tensor) -> Tensor:
        return torch.func.functional_call(base, dict(zip(names, params, strict=True)), (x,))

    return torch.func.vmap(one)


# --- the stacks -----------------------------------------------------------------------------


def _per_member(values: list[float], ref: Tensor) -> float | Tensor:
    """A Python scalar when all members agree (torch's own kernels then apply), else a (K,)
    tensor."""
    if all(v == values[0] for v in values):
        return float(values[0])
    if ref.is_cuda:  # from pinned memory, asynchronously: a plain copy would wait for the GPU
        host = torch.tensor(values, dtype=ref.dtype, pin_memory=True)
        return host.to(ref.device, non_blocking=True)
    return torch.tensor(values, dtype=ref.dtype, device=ref.device)


def _col(value: float | Tensor, like: Tensor) -> float | Tensor:
    """``value`` shaped to broadcast over a stacked (K, ...) tensor."""
    if isinstance(value, Tensor):
        return value.view(-1, *([1] * (like.ndim - 1)))
    return value


def _decayed(p: Tensor, weight_decay: float | Tensor) -> Tensor:
    """The gradient with the L2 term added, as torch's SGD and Adam add it."""
    if isinstance(weight_decay, Tensor):
        return p.grad + _col(weight_decay, p) * p
    return p.grad.add(p, alpha=weight_decay) if weight_decay != 0 else p.grad


def _kind(optimizer: torch.optim.Optimizer) -> str:
    if type(optimizer) is torch.optim.SGD:
        return "sgd"
    if type(optimizer) is torch.optim.Adam:
        return "adam"
    if type(optimizer) is GIAdam:
        return "gi_adam"
    raise ValueError(f"cannot fuse a {type(optimizer).__name__}: only torch SGD, Adam and GIAdam")


_DEFAULT_OPTIONS = {
    "sgd": {"dampening": 0, "nesterov": False, "maximize": False},
    "adam": {"amsgrad": False, "maximize": False, "capturable": False, "differentiable": False,
             "decoupled_weight_decay": False},
    "gi_adam": {},
}


def _check_optimizer(member: Member, kind: str) -> dict:
    opt = member.optimizer
    if _kind(opt) != kind:
        raise ValueError("all members of a group must use the same optimizer type")
    if len(opt.param_groups) != 1:
        raise ValueError("a fused member's optimizer must have exactly one parameter group")
    group = opt.param_groups[0]
    params = list(member.model.parameters())
    if len(group["params"]) != len(params) or any(
        a is not b for a, b in zip(group["params"], params, strict=True)
    ):
        raise ValueError("a member's optimizer must hold its model's parameters, in order")
    for key, default in _DEFAULT_OPTIONS[kind].items():
        if group.get(key, default) != default:
            raise ValueError(f"cannot fuse {kind} with {key}={group[key]!r}")
    return group


class _Stack:
    """The active members' parameters, gradients and optimizer state, stacked on dim 0."""

    def __init__(self, members: Sequence[Member], kind: str, engine: Engine) -> None:
        self.members = members
        self.kind = kind
        self.active = list(range(len(members)))
        models = [m.model for m in members]
        self.names = [n for n, _ in models[0].named_parameters()]
        per_model = [list(m.parameters()) for m in models]
        with torch.no_grad():
            self.params = [torch.stack([ps[j].detach() for ps in per_model]).requires_grad_()
                           for j in range(len(self.names))]
        # Built on the meta device: it only lends its forward to the stacked parameters.
        self.base = copy.deepcopy(models[0]).to("meta")
        bmm = _bmm_forward(self.base) if engine in ("auto", "bmm") else None
        if engine == "bmm" and bmm is None:
            raise ValueError("the bmm engine needs Sequential(Flatten?, Linear, ReLU/Tanh, ...)")
        self.forward = bmm or _vmap_forward(self.base, self.names)
        self.x = torch.stack([m.x for m in members])
        self.y = torch.stack([m.y for m in members])
        self.amp = amp_dtype(models[0], self.x.device)  # bfloat16 autocast for convs on CUDA
        self._init_penalty(models)
        self._init_state(per_model)
        self.last_lrs = [math.nan] * len(members)

    # The L2-init penalty coef·(Σ_modules ‖W − W_init‖)² over every module with a .weight, as
    # interventions.l2_init_penalty; members without one get coef 0 and a zero anchor, which adds
    # exactly 0 to their loss and gradient.
    def _init_penalty(self, models: list[nn.Module]) -> None:
        self.penalized = any(m.penalty_init is not None for m in self.members)
        if not self.penalized:
            return
        keys = []
        for mod_name, module in models[0].named_modules():
            if isinstance(getattr(module, "weight", None), Tensor):
                keys.append(f"{mod_name}.weight" if mod_name else "weight")
        self.pen_index = [self.names.index(k) for k in keys]
        anchors = []
        for j in self.pen_index:
            p = self.params[j]
            rows = []
            for m in self.members:
                if m.penalty_init is None:
                    rows.append(torch.zeros_like(p[0]))
                else:
                    if self.names[j] not in m.penalty_init:
                        raise KeyError(f"init has no {self.names[j]!r}; build it with "
                                       "snapshot_params(model)")
                    rows.append(m.penalty_init[self.names[j]].to(p.device, p.dtype))
            anchors.append(torch.stack(rows))
        self.anchors = anchors
        self.coef = torch.tensor(
            [m.penalty_coef if m.penalty_init is not None else 0.0 for m in self.members],
            dtype=self.params[0].dtype, device=self.params[0].device)

    def _init_state(self, per_model: list[list[Tensor]]) -> None:
        groups = [m.optimizer.param_groups[0] for m in self.members]
        ref = self.params[0]
        self.wd = _per_member([g["weight_decay"] for g in groups], ref)
        keys = {"sgd": ["momentum_buffer"], "adam": ["exp_avg", "exp_avg_sq"],
                "gi_adam": ["exp_avg", "exp_avg_sq"]}[self.kind]
        if self.kind == "sgd":
            self.momentum = _per_member([g["momentum"] for g in groups], ref)
        else:
            self.beta1 = [g["betas"][0] for g in groups]
            self.beta2 = [g["betas"][1] for g in groups]
            self.eps = _per_member([g["eps"] for g in groups], ref)
            self.grad_init = [self.kind == "gi_adam" and g["grad_init"] for g in groups]
        self.steps: list[int] = []
        self.fresh: list[bool] = []
        self.state = {key: [] for key in keys}
        for m, params in zip(self.members, per_model, strict=True):
            states = [m.optimizer.state.get(p, {}) for p in params]
            has = [all(s.get(k) is not None for k in keys) for s in states]
            if any(has) and not all(has):
                raise ValueError("a member's optimizer has state for only some parameters")
            self.fresh.append(not has[0])
            step = states[0].get("step", 0) if has[0] else 0  # SGD counts none: stays 0
            self.steps.append(int(step.item() if isinstance(step, Tensor) else step))
        for key in keys:
            for j, p in enumerate(self.params):
                rows = []
                for m, params, fresh in zip(self.members, per_model, self.fresh, strict=True):
                    s = m.optimizer.state.get(params[j], {})
                    rows.append(torch.zeros_like(p[0]) if fresh else s[key].detach())
                self.state[key].append(torch.stack(rows))
        # torch's Adam creates its step counter in this dtype at its first step: float32 for
        # its fused kernel (make_optimizer's), else the default dtype.
        fused_kernel = bool(groups[0].get("fused"))
        self.step_dtype = (torch.float64 if torch.get_default_dtype() == torch.float64
                           and not fused_kernel else torch.float32)

    def __len__(self) -> int:
        return len(self.active)

    def keep(self, positions: list[int]) -> None:
        """Drop every active member not at one of ``positions`` (indices into the stacks)."""
        index = torch.tensor(positions, dtype=torch.long, device=self.params[0].device)

        def pick(t: Tensor) -> Tensor:
            return t.index_select(0, index)

        with torch.no_grad():
            new = []
            for p in self.params:
                q = pick(p.detach()).requires_grad_()
                q.grad = None if p.grad is None else pick(p.grad)
                new.append(q)
        self.params = new
        self.x, self.y = pick(self.x), pick(self.y)
        self.state = {k: [pick(t) for t in ts] for k, ts in self.state.items()}
        if self.penalized:
            self.anchors = [pick(a) for a in self.anchors]
            self.coef = pick(self.coef)
        for name in ("wd", "momentum", "eps"):
            value = getattr(self, name, None)
            if isinstance(value, Tensor):
                setattr(self, name, pick(value))
        for name in ("beta1", "beta2", "grad_init", "steps", "fresh", "last_lrs"):
            if hasattr(self, name):
                setattr(self, name, [getattr(self, name)[i] for i in positions])
        self.active = [self.active[i] for i in positions]

    def losses(self, idx: Tensor) -> Tensor:
        """Each active member's mini-batch loss (K,), differentiable in the stacks."""
        k, b = idx.shape
        n = self.x.shape[1]
        # One flat gather is much cheaper than indexing with two broadcast index tensors.
        flat = (idx + n * torch.arange(k, device=idx.device).unsqueeze(1)).flatten()
        xb = self.x.flatten(0, 1).index_select(0, flat).view(k, b, *self.x.shape[2:])
        with amp_context(self.x.device, self.amp):
            logits = self.forward(self.params, xb)
            ce = F.cross_entropy(logits.flatten(0, 1), self.y.flatten().index_select(0, flat),
                                 reduction="none").view(k, b).mean(1)
        if not self.penalized:
            return ce
        norms = [torch.linalg.vector_norm((self.params[j] - a).flatten(1), dim=1)
                 for j, a in zip(self.pen_index, self.anchors, strict=True)]
        return ce + self.coef * torch.stack(norms).sum(0) ** 2

    @torch.no_grad()
    def accuracy(self) -> list[float]:
        """Train accuracy (fraction) of each active member on its pool, as ``accuracy``."""
        self.base.eval()
        n = self.x.shape[1]
        correct = torch.zeros(len(self.active), dtype=torch.long, device=self.x.device)
        params = [p.detach() for p in self.params]
        for i in range(0, n, EVAL_BATCH):
            logits = self.forward(params, self.x[:, i : i + EVAL_BATCH])
            correct += (logits.argmax(2) == self.y[:, i : i + EVAL_BATCH]).sum(1)
        self.base.train()
        return [c / max(n, 1) for c in correct.tolist()]

    def backward(self, losses: Tensor) -> None:
        for p in self.params:
            p.grad = None
        losses.sum().backward()

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        """One optimizer step of every active member, member k at rate ``lrs[k]``."""
        self.last_lrs = list(lrs)
        ref = self.params[0]
        if self.kind == "sgd":
            lr = _per_member(lrs, ref)
            for j, p in enumerate(self.params):
                g = _decayed(p, self.wd)
                buf = self.state["momentum_buffer"][j]
                # torch starts the buffer at the first gradient; with dampening 0 a zero buffer
                # times momentum plus the gradient is exactly that gradient.
                if isinstance(self.momentum, Tensor):
                    buf.mul_(_col(self.momentum, p)).add_(g)
                else:
                    buf.mul_(self.momentum).add_(g)
                if isinstance(lr, Tensor):
                    p.sub_(_col(lr, p) * buf)
                else:
                    p.add_(buf, alpha=-lr)
            return
        self.steps = [s + 1 for s in self.steps]
        bc1 = [1 - b1**t for b1, t in zip(self.beta1, self.steps, strict=True)]
        bc2 = [1 - b2**t for b2, t in zip(self.beta2, self.steps, strict=True)]
        step_size = _per_member([lr / c for lr, c in zip(lrs, bc1, strict=True)], ref)
        # torch's Adam takes bc2**0.5, GIAdam math.sqrt(bc2): keep each one's rounding.
        root = math.sqrt if self.kind == "gi_adam" else (lambda c: c**0.5)
        bc2_sqrt = _per_member([root(c) for c in bc2], ref)
        one_minus_b1 = _per_member([1 - b for b in self.beta1], ref)
        b2 = _per_member(self.beta2, ref)
        one_minus_b2 = _per_member([1 - b for b in self.beta2], ref)
        seed_sq = [f and gi for f, gi in zip(self.fresh, self.grad_init, strict=True)]
        for j, p in enumerate(self.params):
            g = _decayed(p, self.wd)
            exp_avg, exp_avg_sq = self.state["exp_avg"][j], self.state["exp_avg_sq"][j]
            if any(seed_sq):
                # GI-Adam: a fresh member's second moment starts at its first gradient squared.
                mask = torch.tensor(seed_sq, device=p.device)
                exp_avg_sq[mask] = (g * g)[mask]
            exp_avg.lerp_(g, _col(one_minus_b1, p))
            if isinstance(b2, Tensor):
                exp_avg_sq.mul_(_col(b2, p)).add_(_col(one_minus_b2, p) * g * g)
            else:
                exp_avg_sq.mul_(b2).addcmul_(g, g, value=one_minus_b2)
            denom = (exp_avg_sq.sqrt() / _col(bc2_sqrt, p)).add_(_col(self.eps, p))
            if isinstance(step_size, Tensor):
                p.sub_(_col(step_size, p) * exp_avg / denom)
            else:
                p.addcdiv_(exp_avg, denom, value=-step_size)
        self.fresh = [False] * len(self.fresh)

    @torch.no_grad()
    def write_back(self, position: int, steps: int, lr: float) -> None:
        """Put member ``position``'s parameters, last gradient and optimizer state into its own
        model and optimizer, as ``train_stage`` leaves them."""
        member = self.members[self.active[position]]
        params = list(member.model.parameters())
        for j, p in enumerate(params):
            p.copy_(self.params[j][position])
            if steps > 0:  # train_stage's zero_grad/backward replaced them; else left alone
                p.grad = self.params[j].grad[position].clone()
        opt = member.optimizer
        opt.param_groups[0]["lr"] = lr
        if steps == 0:
            return  # no step was taken: the state is as it came in
        for j, p in enumerate(params):
            state = opt.state[p]
            for key, stacked in self.state.items():
                if self.kind == "sgd" and self._member_value(self.momentum, position) == 0:
                    continue  # torch keeps no buffer without momentum
                value = stacked[j][position]
                if state.get(key) is not None:
                    state[key].copy_(value)
                else:
                    state[key] = value.clone()
            if self.kind == "adam":
                if isinstance(state.get("step"), Tensor):
                    state["step"].fill_(self.steps[position])
                else:
                    state["step"] = torch.tensor(float(self.steps[position]),
                                                 dtype=self.step_dtype)
            elif self.kind == "gi_adam":
                state["step"] = self.steps[position]

    @staticmethod
    def _member_value(value: float | Tensor, position: int) -> float:
        return float(value[position]) if isinstance(value, Tensor) else value


def _check_group(members: Sequence[Member]) -> str:
    why = _why_not_fusable([m.model for m in members])
    if why is not None:
        raise ValueError(f"these models cannot be fused: {why}")
    n, batch_size = len(members[0].x), members[0].batch_size
    if n < 1 or batch_size < 1:
        raise ValueError("a fused group needs a non-empty pool and batch_size >= 1")
    for m in members:
        if len(m.x) != n or m.batch_size != batch_size:
            raise ValueError("all members of a group must have the same len(x) and batch_size")
        if m.x.shape != members[0].x.shape or len(m.y) != n:
            raise ValueError("all members' pools must have the same shape")
    kind = _kind(members[0].optimizer)
    for m in members:
        _check_optimizer(m, kind)
    return kind


def train_stage_group(members: Sequence[Member], *, engine: Engine = "auto") -> list[StageResult]:
    """Train every member's stage at once; element k is what ``train_stage`` returns for
    ``members[k]`` alone (see the module docstring for what is and is not the same).

    ``engine`` picks the batched forward pass: ``"bmm"`` (explicit batched matmuls, only for
    Sequential MLPs and logistic regression), ``"vmap"`` (``torch.func``, any fusable model) or
    ``"auto"`` (bmm where it applies).

    Raises:
        ValueError: for models that are not :func:`fusable`, pools or batch sizes that differ
            between members, or an optimizer that cannot be fused.
    """
    if not members:
        return []
    kind = _check_group(members)
    start = time.perf_counter()
    for m in members:
        m.model.train()
    stack = _Stack(members, kind, engine)
    n, batch_size = len(members[0].x), members[0].batch_size
    per_epoch = math.ceil(n / batch_size)
    device = stack.x.device
    histories: list[list[float]] = [[] for _ in members]
    results: list[StageResult | None] = [None] * len(members)
    steps = 0

    each_step = loss_checked_each_step(device)

    def finish(position: int, reason: str, lr: float, counted: int | None = None) -> None:
        """Write member ``position`` back and record its result; ``counted`` is the steps its
        result reports where that is not every step taken (a divergence found after them)."""
        i = stack.active[position]
        m = members[i]
        stack.write_back(position, steps, lr)
        diverged = reason == "diverged"
        history = histories[i]
        test_acc = math.nan if diverged else accuracy(m.model, m.x_test, m.y_test)
        val_acc = (math.nan if diverged or m.x_val is None or m.y_val is None
                   else accuracy(m.model, m.x_val, m.y_val))
        results[i] = StageResult(
            test_acc=100 * test_acc, train_acc=100 * (history[-1] if history else math.nan),
            steps=steps if counted is None else counted, epochs=len(history),
            seconds=time.perf_counter() - start, n_train=n, stop_reason=reason,
            diverged=diverged, val_acc=100 * val_acc)

    while len(stack):
        # The same draws as train_stage's batches(): one randperm per epoch from each generator.
        order = torch.stack([torch.randperm(n, generator=members[i].generator).to(device)
                             for i in stack.active])
        if not each_step:  # per member: losses all finite so far this epoch, and steps until then
            finite_so_far = torch.ones(len(stack), dtype=torch.bool, device=device)
            finite_steps = torch.zeros(len(stack), dtype=torch.long, device=device)
            epoch_start = steps
        for b in range(per_epoch):
            idx = order[:, b * batch_size : (b + 1) * batch_size]
            lrs = [members[i].schedule(steps) for i in stack.active]
            losses = stack.losses(idx)
            if not each_step:
                # A member's non-finite loss only spoils its own slice of the stacks (the sum's
                # gradient is 1 for each loss), so the others train on unaffected.
                finite_so_far.logical_and_(torch.isfinite(losses.detach()))
                finite_steps.add_(finite_so_far)
            else:
                finite = torch.isfinite(losses).tolist()
                while not all(finite):
                    # As train_stage: a non-finite loss ends that member's stage before its step.
                    for position in (p for p, ok in enumerate(finite) if not ok):
                        finish(position, "diverged", lrs[position])
                    keep = [p for p, ok in enumerate(finite) if ok]
                    stack.keep(keep)
                    order, idx = order[keep], idx[keep]
                    lrs = [lrs[p] for p in keep]
                    if not len(stack):
                        break
                    losses = stack.losses(idx)  # the graph was built on the dropped stacks
                    finite = torch.isfinite(losses).tolist()
                if not len(stack):
                    break
            stack.backward(losses)
            stack.step(lrs)
            steps += 1
        if not len(stack):
            break
        if not each_step:  # the epoch's one read-back of the losses' check
            finite = finite_so_far.tolist()
            if not all(finite):
                counted = finite_steps.tolist()
                for position in (p for p, ok in enumerate(finite) if not ok):
                    finish(position, "diverged", stack.last_lrs[position],
                           epoch_start + counted[position])
                stack.keep([p for p, ok in enumerate(finite) if ok])
                if not len(stack):
                    break
        reasons = []
        for i, acc in zip(stack.active, stack.accuracy(), strict=True):
            histories[i].append(acc)
            reasons.append(members[i].stop.reason(histories[i]))
            if members[i].on_epoch is not None:
                members[i].on_epoch(len(histories[i]), acc)
        done = [p for p, r in enumerate(reasons) if r is not None]
        if done:
            for position in done:
                finish(position, reasons[position], stack.last_lrs[position])
            stack.keep([p for p, r in enumerate(reasons) if r is None])
    return [r for r in results if r is not None]
