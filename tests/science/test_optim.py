"""Optimizers (SGD, Adam, GI-Adam) and the loss-catapult search for η_init."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

from wssweep.science.optim import (
    NO_CATAPULT_SPAN,
    CatapultResult,
    GIAdam,
    catapult_lr,
    default_catapult_delta,
    make_optimizer,
)

BETA2 = 0.999
# The experiment config's optim defaults (plain SGD, Adam's betas), passed as the trial passes them.
OPTIM = {"momentum": 0.0, "betas": (0.9, BETA2), "weight_decay": 0.0}


class Quadratic(nn.Module):
    """L(θ) = ½·h·θ² with one parameter; its Hessian is h, so GD's catapult sits at η = 2/h."""

    def __init__(self, h: float, theta0: float = 1.0) -> None:
        super().__init__()
        self.h = h
        self.theta = nn.Parameter(torch.tensor([theta0], dtype=torch.float64))

    def forward(self, _batch: object) -> torch.Tensor:
        return 0.5 * self.h * (self.theta**2).sum()


def quadratic_loss(output: torch.Tensor, _target: object) -> torch.Tensor:
    return output


BATCH = (None, None)  # the quadratic ignores its inputs


# ---------------------------------------------------------------- make_optimizer


@pytest.mark.parametrize(
    ("name", "cls"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("gi_adam", GIAdam)]
)
def test_make_optimizer_builds_each_kind(name, cls):
    opt = make_optimizer(name, [nn.Parameter(torch.zeros(3))], 0.01,
                         **{**OPTIM, "weight_decay": 1e-4})
    # the name selects the optimizer class
    assert type(opt) is cls
    # the learning rate and weight decay reach the parameter group
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["weight_decay"] == 1e-4


def test_make_optimizer_sgd_momentum():
    # plain SGD (the config's default, as Ash & Adams and Kalra & Barkeshli) has no momentum
    plain = make_optimizer("sgd", [nn.Parameter(torch.zeros(1))], 0.1, **OPTIM)
    assert plain.param_groups[0]["momentum"] == 0
    opt = make_optimizer("sgd", [nn.Parameter(torch.zeros(1))], 0.1, **{**OPTIM, "momentum": 0.9})
    # the momentum argument is honoured
    assert opt.param_groups[0]["momentum"] == 0.9


def test_make_optimizer_adam_betas_and_eps():
    opt = make_optimizer(
        "gi_adam", [nn.Parameter(torch.zeros(1))], 0.1, **{**OPTIM, "betas": (0.8, 0.99)},
        eps=1e-6,
    )
    # betas and eps reach the Adam-family group
    assert opt.param_groups[0]["betas"] == (0.8, 0.99) and opt.param_groups[0]["eps"] == 1e-6


def test_adam_is_torchs_fused_kernel_with_the_same_update():
    torch.manual_seed(0)
    start = torch.randn(50, dtype=torch.float64)
    grads = [torch.randn(50, dtype=torch.float64) for _ in range(20)]
    params = {}
    for fused in (True, False):
        w = nn.Parameter(start.clone())
        opt = (make_optimizer("adam", [w], 0.01, **{**OPTIM, "weight_decay": 0.1}) if fused
               else torch.optim.Adam([w], lr=0.01, weight_decay=0.1, foreach=False))
        # the project's Adam uses PyTorch's fused kernel (a third of the default's time a step)
        assert bool(opt.param_groups[0]["fused"]) is fused
        for g in grads:
            w.grad = g.clone()
            opt.step()
        params[fused] = w.detach()
    # and takes the same steps as PyTorch's reference loop, to rounding
    torch.testing.assert_close(params[True], params[False], rtol=1e-12, atol=1e-14)
    # a parameter group list works too
    groups = make_optimizer("adam", [{"params": [nn.Parameter(torch.zeros(2))]}], 0.1, **OPTIM)
    assert groups.param_groups[0]["fused"]


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("rmsprop", {}, "rmsprop"),
        ("sgd", {"lr": -1.0}, "learning rate"),
        ("sgd", {"momentum": 1.0}, "momentum"),
        ("adam", {"betas": (0.9, 1.0)}, "beta"),
        ("adam", {"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_make_optimizer_bad_values_are_value_errors(name, kwargs, match):
    lr = kwargs.pop("lr", 0.1)
    # the config validated these at the edge; here they are a caller's bug, not user input
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, [nn.Parameter(torch.zeros(1))], lr, **{**OPTIM, **kwargs})


# ---------------------------------------------------------------- GI-Adam


def _step_sizes(opt_cls, grads, **kwargs):
    """Run ``opt_cls`` on one float64 parameter fed ``grads``; return each step's update."""
    p = nn.Parameter(torch.zeros_like(grads[0]))
    opt = opt_cls([p], **kwargs)
    updates = []
    for g in grads:
        before = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        updates.append(p.detach() - before)
    return updates


def test_gi_adam_initializes_second_moment_with_first_gradient():
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = GIAdam([p], lr=0.1)
    g0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    p.grad = g0.clone()
    opt.step()
    # v₁ = β₂·g₀² + (1−β₂)·g₀² = g₀², so v₀ was g₀²
    assert torch.allclose(opt.state[p]["exp_avg_sq"], g0**2)
    # m starts at 0: m₁ = (1−β₁)·g₀
    assert torch.allclose(opt.state[p]["exp_avg"], 0.1 * g0)


def test_gi_adam_constant_gradient_is_warmup_sqrt_one_minus_beta2_t():
    lr = 1e-3
    grads = [torch.full((3,), 0.7, dtype=torch.float64)] * 50
    adam = _step_sizes(torch.optim.Adam, grads, lr=lr)
    gi = _step_sizes(GIAdam, grads, lr=lr)
    for t, (a, g) in enumerate(zip(adam, gi, strict=True), start=1):
        # with a constant gradient Adam steps by lr at every t
        assert torch.allclose(a, torch.full_like(a, -lr), rtol=1e-6)
        # GI-Adam's step is Adam's times √(1−β₂ᵗ): an automatic warmup
        assert torch.allclose(g / a, torch.full_like(a, math.sqrt(1 - BETA2**t)), rtol=1e-6)


def test_gi_adam_noisy_gradient_ratio_tracks_sqrt_one_minus_beta2_t():
    # noisy quadratic: L = ½Σhᵢθᵢ² with gradient noise; both optimizers see the same noise
    gen = torch.Generator().manual_seed(0)
    n = 1000
    h = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    noise = [0.3 * torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(50)]
    params = {}
    for cls in (torch.optim.Adam, GIAdam):
        params[cls] = nn.Parameter(torch.ones(n, dtype=torch.float64))
    opts = {cls: cls([p], lr=1e-3) for cls, p in params.items()}
    ratios = []
    for t in range(1, 51):
        norms = {}
        for cls, p in params.items():
            before = p.detach().clone()
            p.grad = h * p.detach() + noise[t - 1]
            opts[cls].step()
            norms[cls] = (p.detach() - before).norm().item()
        ratios.append(norms[GIAdam] / norms[torch.optim.Adam] / math.sqrt(1 - BETA2**t))
    # at t=1 both see the same single gradient, so the ratio is exactly √(1−β₂)
    assert ratios[0] == pytest.approx(1.0, rel=1e-6)
    # later the update-norm ratio tracks √(1−β₂ᵗ) within a factor 2 (a noisy g₀² makes it inexact;
    # the raw ratio itself grows ~7× from t=1 to t=50)
    assert all(0.9 < r < 2.0 for r in ratios), ratios


def test_gi_adam_without_grad_init_is_adam():
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(20)]
    adam = _step_sizes(torch.optim.Adam, grads, lr=1e-2, weight_decay=0.1)
    gi = _step_sizes(GIAdam, grads, lr=1e-2, weight_decay=0.1, grad_init=False)
    # with v₀ = 0 (as Adam's) GI-Adam is exactly Adam, weight decay included
    assert all(torch.allclose(a, g, rtol=1e-10, atol=1e-15) for a, g in zip(adam, gi, strict=True))


def test_gi_adam_state_dict_round_trip():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = GIAdam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    x, y = torch.randn(16, 4), torch.randn(16, 2)

    def train_step(m, o):
        o.zero_grad()
        nn.functional.mse_loss(m(x), y).backward()
        o.step()

    for _ in range(5):
        train_step(model, opt)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    clone = copy.deepcopy(model)
    clone.load_state_dict(saved["model"])
    clone_opt = GIAdam(clone.parameters(), lr=0.5)
    clone_opt.load_state_dict(saved["opt"])
    # hyperparameters come back with the state
    assert clone_opt.param_groups[0]["lr"] == 1e-2 and clone_opt.param_groups[0]["grad_init"]
    # the step count comes back (the reloaded state is not re-initialized from the next gradient)
    assert all(s["step"] == 5 for s in clone_opt.state.values())
    for _ in range(3):
        train_step(model, opt)
        train_step(clone, clone_opt)
    # the reloaded optimizer continues exactly as the original
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters(), strict=True)
    )


# ---------------------------------------------------------------- catapult search


@pytest.mark.parametrize("h", [0.5, 2.0, 10.0])
def test_catapult_lr_on_quadratic_is_two_over_h(h):
    model = Quadratic(h)
    result = catapult_lr(model, quadratic_loss, BATCH, "sgd", lr_target=100.0,
                         optimizer_kwargs=OPTIM)
    # a catapult exists below the target
    assert isinstance(result, CatapultResult) and result.found
    # one SGD step multiplies θ by (1 − ηh): the loss rises from η = 2/h
    assert result.lr == pytest.approx(2 / h, rel=0.10)
    # η_c is at or above the true threshold (it is the upper end of the bracket)
    assert result.lr >= 2 / h
    # the search is cheap: a few doublings plus a few bisections
    assert result.forward_passes < 40
    # the parameter is restored exactly and its gradient cleared
    assert model.theta.item() == 1.0 and model.theta.grad is None


def test_catapult_lr_adam_and_gi_adam_thresholds():
    # Adam's first step has size η on every coordinate: from θ=1 the loss rises from η = 2
    adam = catapult_lr(Quadratic(3.0), quadratic_loss, BATCH, "adam", lr_target=100.0,
                       optimizer_kwargs=OPTIM)
    # δ = 0.01 (Adam) keeps η_c within 1 % of the threshold
    assert adam.found and adam.lr == pytest.approx(2.0, rel=0.01)
    # GI-Adam's first step is η·√(1−β₂), so its threshold is 2/√(1−β₂) ≈ 63
    gi = catapult_lr(Quadratic(3.0), quadratic_loss, BATCH, "gi_adam", lr_target=1000.0,
                     optimizer_kwargs=OPTIM)
    assert gi.found and gi.lr == pytest.approx(2 / math.sqrt(1 - BETA2), rel=0.01)


def test_catapult_lr_without_a_rise_below_the_target_starts_at_the_target():
    model = Quadratic(1.0)
    result = catapult_lr(model, quadratic_loss, BATCH, "sgd", lr_target=0.5,
                         optimizer_kwargs=OPTIM)
    # η_trgt = 0.5 < 2/h = 2: no step up to the target raises the loss, but one above it does:
    # Kalra & Barkeshli's Algorithm 1 sets η_init = η_trgt (no warmup needed), not η_trgt/10
    assert result.outcome == "target" and not result.found and result.lr == 0.5
    # the model is restored even on this exit
    assert model.theta.item() == 1.0


class Slope(nn.Module):
    """L(θ) = θ: every step down the gradient lowers it, at any rate (no catapult at all)."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(1.0))

    def forward(self, _inputs):
        return self.theta * 1.0


def test_catapult_lr_with_no_catapult_at_all_takes_the_papers_tenth_of_the_target():
    result = catapult_lr(Slope(), quadratic_loss, BATCH, "sgd", lr_target=0.5,
                         optimizer_kwargs=OPTIM)
    # the loss rises at no rate, however large: the paper's fallback, η_trgt / 10
    assert result.outcome == "none" and not result.found and result.lr == pytest.approx(0.05)
    # it looked up to NO_CATAPULT_SPAN times the target: a bounded number of forward passes
    assert result.forward_passes <= 2 + math.log2(0.5 / 1e-4) + math.log2(NO_CATAPULT_SPAN) + 2


def test_catapult_lr_rise_at_start_uses_start():
    result = catapult_lr(Quadratic(1e5), quadratic_loss, BATCH, "sgd", lr_target=1.0,
                         lr_start=1e-3, optimizer_kwargs=OPTIM)
    # 2/h = 2e-5 < lr_start: the loss already rises at the first rate, which is returned
    assert result.found and result.lr == 1e-3
    # only the gradient pass and one candidate were needed
    assert result.forward_passes == 2


def test_catapult_lr_restores_network_mode_buffers_and_rng():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
    )
    model.eval()
    model[3].train()  # mixed modes must come back as they were
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    before = copy.deepcopy(model.state_dict())
    rng_before = torch.get_rng_state()

    ce = nn.functional.cross_entropy
    heavy_ball = {**OPTIM, "momentum": 0.9}
    first = catapult_lr(model, ce, (x, y), "sgd", lr_target=1e3, optimizer_kwargs=heavy_ball)
    second = catapult_lr(model, ce, (x, y), "sgd", lr_target=1e3, optimizer_kwargs=heavy_ball)
    # parameters and buffers (BatchNorm running stats) are restored exactly
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # each module's train/eval mode is restored
    assert not model.training and model[3].training and not model[1].training
    # gradients are cleared
    assert all(p.grad is None for p in model.parameters())
    # the global RNG is untouched
    assert torch.equal(rng_before, torch.get_rng_state())
    # with a private, reseeded RNG the search is deterministic despite dropout
    assert first == second and first.found


def test_catapult_lr_bad_arguments():
    # an unknown optimizer and a non-positive target rate are the caller's bugs (the config
    # checked optim.name and lr), told as ValueError naming the argument's value
    with pytest.raises(ValueError, match="lbfgs"):
        catapult_lr(Quadratic(1.0), quadratic_loss, BATCH, "lbfgs", lr_target=1.0,
                    optimizer_kwargs=OPTIM)
    with pytest.raises(ValueError, match="lr_target"):
        catapult_lr(Quadratic(1.0), quadratic_loss, BATCH, "sgd", lr_target=0.0,
                    optimizer_kwargs=OPTIM)


def test_default_catapult_delta():
    # δ = 0.1 for SGD, 0.01 for Adam and GI-Adam (App. B.2)
    assert [default_catapult_delta(n) for n in ("sgd", "adam", "gi_adam")] == [0.1, 0.01, 0.01]
