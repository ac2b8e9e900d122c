"""Tests for wssweep.science.interventions: shrink-and-perturb, DASH, last-layer reset, L2-init."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wssweep.config import ModelConfig
from wssweep.science.interventions import (
    dash,
    l2_init_penalty,
    reset_last_layer,
    shrink_perturb,
    snapshot_params,
)
from wssweep.science.models import build_model, last_linear

torch.set_num_threads(1)

CIFAR = (3, 32, 32)


def _resnet(seed: int) -> nn.Module:
    return build_model(ModelConfig(name="resnet18"), input_shape=CIFAR, num_classes=10, seed=seed)


def _trained_resnet(seed: int = 0, steps: int = 3) -> nn.Module:
    """A narrow ResNet-18 after a few SGD steps, so BN running stats are non-trivial."""
    model = _resnet(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, *CIFAR, generator=gen) * 2 + 0.5
        y = torch.randint(0, 10, (8,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- shrink and perturb


def test_shrink_one_perturb_zero_is_bit_identical():
    model = _trained_resnet()
    before = _state(model)
    bn = model.bn1
    # the few training steps moved the BN running stats away from their reset values
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    for noise in ("fresh_init", "gaussian"):
        shrink_perturb(model, 1.0, 0.0, noise=noise, fresh=_resnet(1))
        after = model.state_dict()
        # every parameter and buffer (BN stats included) is bit-identical: no reset, no arithmetic
        assert all(torch.equal(before[k], after[k]) for k in before), noise


def test_shrink_zero_perturb_one_fresh_init_is_a_reinit():
    model = _trained_resnet()
    shrink_perturb(model, 0.0, 1.0, noise="fresh_init", fresh=_resnet(7))
    reference = _resnet(7).state_dict()
    after = model.state_dict()
    # parameters AND BN buffers equal a fresh init of the same seed, bit for bit
    assert all(torch.equal(after[k], reference[k]) for k in reference)


def test_fresh_init_formula_and_buffer_reset():
    model = _trained_resnet()
    before = _state(model)
    fresh = _resnet(5)
    shrink_perturb(model, 0.4, 0.1, noise="fresh_init", fresh=fresh)
    fresh_state = fresh.state_dict()
    for name, p in model.named_parameters():
        # each parameter (BN γ/β included) becomes 0.4·θ + 0.1·θ_fresh
        assert torch.allclose(p, 0.4 * before[name] + 0.1 * fresh_state[name], atol=1e-7), name
    for name, b in model.named_buffers():
        # BN running stats are reset to the fresh model's, as in Ash & Adams' code
        assert torch.equal(b, fresh_state[name]), name


def test_fresh_init_needs_a_matching_fresh_model():
    model = _resnet(0)
    # fresh-init noise without a fresh model is an error
    with pytest.raises(ValueError):
        shrink_perturb(model, 0.5, 0.1, noise="fresh_init")
    other = build_model(ModelConfig(name="resnet18"), input_shape=CIFAR, num_classes=3, seed=0)
    # a fresh model of another architecture is an error
    with pytest.raises(ValueError):
        shrink_perturb(model, 0.5, 0.1, noise="fresh_init", fresh=other)


def test_gaussian_noise_has_requested_std_and_spares_bn():
    layer = nn.Linear(1000, 1000)
    shrink_perturb(layer, 0.0, 0.05, noise="gaussian", generator=torch.Generator().manual_seed(0))
    # with shrink 0 the weights are pure noise whose std is σ = 0.05 within 2%
    assert abs(layer.weight.std().item() - 0.05) < 0.001
    # and whose mean is about 0
    assert abs(layer.weight.mean().item()) < 0.001

    model = _trained_resnet()
    before = _state(model)
    shrink_perturb(model, 0.3, 0.01, noise="gaussian", generator=torch.Generator().manual_seed(1))
    after = model.state_dict()
    bn_keys = [k for k in before if ".bn" in k or k.startswith("bn") or "shortcut.1" in k]
    # BatchNorm parameters and running stats are untouched by Gaussian S&P
    assert bn_keys and all(torch.equal(before[k], after[k]) for k in bn_keys)
    # the conv weights did change
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])


@pytest.mark.parametrize("lam", [0.05, 0.3, 0.9])
def test_shrinking_bias_free_relu_mlp_keeps_predictions(lam):
    spec = ModelConfig(name="mlp", bias=False, depth=2)
    model = build_model(spec, input_shape=(64,), num_classes=10, seed=0)
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
        shrink_perturb(model, lam, 0.0, noise="gaussian")
        after = model(x)
    # Ash & Adams' Prop. 1: shrinking a bias-free ReLU net changes no prediction
    assert torch.equal(before.argmax(1), after.argmax(1))
    # the logits scale by λ^L with L = 3 layers (positive homogeneity of ReLU)
    assert torch.allclose(after, before * lam**3, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- DASH


def _row_factors(before: torch.Tensor, after: torch.Tensor, dims: int) -> torch.Tensor:
    """Elementwise after/before, grouped by the first ``dims`` dims (one row per group)."""
    return (after / before).reshape(*before.shape[:dims], -1)


def _batches(n_batches: int, n: int, shape: tuple[int, ...], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen))
        for _ in range(n_batches)
    ]


def test_dash_factors_lie_between_lambda_and_one():
    model = build_model(ModelConfig(name="mlp"), input_shape=(40,), num_classes=10, seed=0)
    before = _state(model)
    stats = dash(model, _batches(4, 32, (40,)), shrink=0.3, alpha=0.3, granularity="slice")
    for name, p in model.named_parameters():
        if p.ndim == 2:
            ratios = _row_factors(before[name], p.detach(), 1)
            # each weight row is scaled by one factor ...
            assert torch.allclose(ratios, ratios[:, :1].expand_as(ratios), rtol=1e-5)
            # ... which lies in [λ, 1]
            assert ratios.min() >= 0.3 - 1e-6 and ratios.max() <= 1 + 1e-6
        else:
            ratios = p.detach() / before[name]
            # a bias is scaled by a single factor ...
            assert torch.allclose(ratios, ratios[:1].expand_as(ratios), rtol=1e-5)
            # ... which lies in [λ, 1]
            assert 0.3 - 1e-6 <= ratios[0] <= 1 + 1e-6
    # the stats report a mean factor in [λ, 1] and the number of batches walked
    assert 0.3 <= stats["mean_factor"] <= 1 and stats["num_batches"] == 4


def test_dash_keeps_aligned_rows_and_shrinks_orthogonal_rows():
    # logistic regression on ONE example: row r's gradient is (p_r − y_r)·x, so its direction
    # (±x) does not depend on W, and rows built from one gradient stay parallel/orthogonal.
    model = build_model(ModelConfig(name="logreg"), input_shape=(40,), num_classes=10, seed=0)
    lin = last_linear(model)
    x, y = torch.randn(1, 40, generator=torch.Generator().manual_seed(3)), torch.tensor([2])

    def neg_grad() -> torch.Tensor:
        lin.zero_grad()
        F.cross_entropy(model(x), y).backward()
        g = -lin.weight.grad.detach().clone()
        lin.zero_grad(set_to_none=True)
        return g

    g0 = neg_grad().double()
    with torch.no_grad():
        lin.weight[0] = (3.0 * g0[0]).float()  # parallel to the descent direction of row 0
        v = torch.randn(40, generator=torch.Generator().manual_seed(4)).double()
        ortho = v - (v @ g0[1]) / (g0[1] @ g0[1]) * g0[1]
        lin.weight[1] = ortho.float()  # orthogonal to the descent direction of row 1
    G = neg_grad().double()  # with alpha=1 and one batch, DASH's G is exactly −∇L here
    W = lin.weight.detach().double().clone()
    cos = (W * G).sum(1) / (W.norm(dim=1) * G.norm(dim=1))
    # the constructed rows really are parallel / orthogonal to −∇L at the new weights
    assert cos[0] > 1 - 1e-6 and abs(cos[1]) < 1e-6

    before = lin.weight.detach().clone()
    dash(model, [(x, y)], shrink=0.3, alpha=1.0, granularity="slice")
    after = lin.weight.detach()
    # the row aligned with the descent direction is untouched, bit for bit
    assert torch.equal(after[0], before[0])
    # the orthogonal row is scaled by exactly λ
    assert torch.allclose(after[1], before[1] * 0.3, rtol=1e-6, atol=0)
    expected = cos.clamp(0.3, 1.0).float()
    # every row's factor is clamp(cos(W_r, −∇L_r), λ, 1) with the gradient computed here
    assert torch.allclose(after / before, expected[:, None].expand_as(before), rtol=1e-5)


class SmallConvNet(nn.Module):
    """Conv (with bias) → BN → ReLU → pool → Linear: every kind of layer DASH deals with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.conv(x)))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def _small_convnet() -> nn.Module:
    torch.manual_seed(0)
    model = SmallConvNet()
    model.train()
    with torch.no_grad():  # a few train-mode passes give BN non-trivial running stats
        for x, _ in _batches(3, 16, (3, 8, 8), seed=5):
            model(x * 2 + 1)
    return model


def test_dash_conv_slice_vs_filter_granularity():
    base = _small_convnet()
    batches = _batches(3, 16, (3, 8, 8))
    results = {}
    for gran in ("slice", "filter"):
        model = copy.deepcopy(base)
        dash(model, batches, shrink=0.3, alpha=0.3, granularity=gran)
        results[gran] = model.conv.weight.detach()
    w0 = base.conv.weight.detach()
    per_slice = _row_factors(w0, results["slice"], 2)  # (out, in, k·k)
    # "slice": one factor per (out, in) kernel slice
    assert torch.allclose(per_slice, per_slice[..., :1].expand_as(per_slice), rtol=1e-5)
    # ... and the slices of one filter get different factors
    assert not torch.allclose(per_slice[:, :, 0], per_slice[:, :1, 0].expand(6, 3), rtol=1e-3)
    per_filter = _row_factors(w0, results["filter"], 1)  # (out, in·k·k)
    # "filter": one factor per output filter
    assert torch.allclose(per_filter, per_filter[:, :1].expand_as(per_filter), rtol=1e-5)
    for r in (per_slice, per_filter):
        # every factor of both variants lies in [λ, 1]
        assert r.min() >= 0.3 - 1e-6 and r.max() <= 1 + 1e-6
    # the two granularities give different weights
    assert not torch.allclose(results["slice"], results["filter"])


def test_dash_conv1d_slices():
    model = build_model(ModelConfig(name="conv1d"), input_shape=(40,), num_classes=10, seed=0)
    before = model.conv2.weight.detach().clone()
    dash(model, _batches(2, 32, (40,)), shrink=0.3, alpha=0.3, granularity="slice")
    ratios = _row_factors(before, model.conv2.weight.detach(), 2)
    # each Conv1d (out, in) slice's k entries share one factor ...
    assert torch.allclose(ratios, ratios[..., :1].expand_as(ratios), rtol=1e-5)
    # ... which lies in [λ, 1]
    assert ratios.min() >= 0.3 - 1e-6 and ratios.max() <= 1 + 1e-6


@pytest.mark.parametrize("train_mode", [True, False])
def test_dash_spares_bn_restores_mode_and_leaves_no_grads(train_mode):
    model = _small_convnet()
    model.train(train_mode)
    bn_before = {k: v.clone() for k, v in model.bn.state_dict().items()}
    seen_modes = []
    model.bn.register_forward_pre_hook(lambda m, inp: seen_modes.append(m.training))
    dash(model, _batches(2, 16, (3, 8, 8)), shrink=0.3, alpha=0.3, granularity="slice")
    bn_after = model.bn.state_dict()
    # BN γ, β, running mean/var and num_batches_tracked are untouched
    assert all(torch.equal(bn_before[k], bn_after[k]) for k in bn_before)
    # the gradient pass ran in eval mode (BN used its running stats)
    assert seen_modes == [False, False]
    # every module's train/eval mode is restored
    assert all(m.training == train_mode for m in model.modules())
    # no gradients are left on the model
    assert all(p.grad is None for p in model.parameters())


def test_dash_zero_row_gets_lambda_without_nan():
    model = build_model(ModelConfig(name="mlp"), input_shape=(8,), num_classes=10, seed=0)
    with torch.no_grad():
        model[1].weight[0].zero_()
    dash(model, _batches(1, 8, (8,)), shrink=0.3, alpha=0.3, granularity="slice")
    # a zero weight row stays zero (cosine 0 → factor λ)
    assert torch.equal(model[1].weight[0], torch.zeros(8))
    # and no parameter becomes NaN or inf
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------- reset and L2-init


def test_reset_last_layer_copies_only_the_head():
    model, fresh = _resnet(0), _resnet(1)
    before = _state(model)
    reset_last_layer(model, fresh)
    # the last Linear's weight now equals the fresh model's
    assert torch.equal(model.linear.weight, fresh.linear.weight)
    # and so does its bias
    assert torch.equal(model.linear.bias, fresh.linear.bias)
    after = model.state_dict()
    # everything else is unchanged
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("linear."))


def test_l2_init_penalty_zero_positive_and_by_hand():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    init = snapshot_params(model)
    pen0 = l2_init_penalty(model, init, coef=1e-2)
    pen0.backward()
    # at the initial weights the penalty is exactly 0
    assert pen0.item() == 0.0
    # and its gradient is 0, not NaN
    assert all(
        torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters() if p.grad is not None
    )
    model.zero_grad()
    with torch.no_grad():
        model[0].weight.add_(0.1)  # ‖ΔW‖ = 0.1·√20
        model[1].weight.add_(0.2)  # BN γ counts too: ‖Δγ‖ = 0.2·√5
        model[0].bias.add_(5.0)  # biases are not part of the penalty
    pen = l2_init_penalty(model, init, coef=1e-2)
    hand = 1e-2 * (0.1 * 20**0.5 + 0.2 * 5**0.5) ** 2
    # after a change the penalty is positive
    assert pen.item() > 0
    # it equals coef·(Σ_modules ‖W − W_init‖_F)², the square of a sum of norms
    assert pen.item() == pytest.approx(hand, rel=1e-5)
    pen.backward()
    # it is differentiable: the changed weight gets a gradient
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
