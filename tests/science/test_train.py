"""The stage train loop and its stop rule."""

import math

import pytest
import torch

from wssweep.config import ModelConfig
from wssweep.science import train
from wssweep.science.models import amp_dtype, build_model, memory_format
from wssweep.science.optim import make_optimizer
from wssweep.science.train import StopRule, accuracy, train_stage


def stop_rule(**changes: float) -> StopRule:
    """The config's protocol.stop defaults (Ash & Adams' protocol) with ``changes``."""
    return StopRule(**{"train_acc": 0.99, "plateau_std": 0.002, "plateau_window": 3,
                       "max_epochs": 100, "min_epochs": 1, **changes})


def separable(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long()


def test_stop_rule_threshold_plateau_and_cap():
    rule = StopRule(train_acc=0.99, plateau_std=0.002, plateau_window=3, max_epochs=5,
                    min_epochs=1)
    # reaching the threshold stops
    assert rule.reason([0.5, 0.995]) == "threshold"
    # three flat epochs below the threshold are a plateau
    assert rule.reason([0.5, 0.80, 0.80, 0.801]) == "plateau"
    # still improving: keep going
    assert rule.reason([0.5, 0.6, 0.7]) is None
    # the epoch cap ends a stage that neither converged nor plateaued
    assert rule.reason([0.1, 0.2, 0.3, 0.4, 0.5]) == "max_epochs"


def test_train_stage_reaches_threshold_on_separable_data():
    x, y = separable()
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    result = train_stage(model, opt, lambda t: 0.5, x, y, x, y, batch_size=32,
                         stop=stop_rule(train_acc=0.97, max_epochs=50),
                         generator=torch.Generator().manual_seed(0))
    # a linearly separable problem converges by the threshold rule
    assert result.stop_reason == "threshold"
    # steps are counted per mini-batch: 8 per epoch
    assert result.steps == 8 * result.epochs
    # accuracies are reported in percent and match a fresh evaluation
    assert math.isclose(result.test_acc, 100 * accuracy(model, x, y))


def test_train_stage_marks_divergence_instead_of_raising():
    x, y = separable()
    model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    result = train_stage(model, opt, lambda t: 1e6, x, y, x, y, batch_size=32,
                         stop=stop_rule(max_epochs=20), generator=torch.Generator().manual_seed(0))
    # an exploding rate ends the stage as diverged, with no exception
    assert result.diverged and result.stop_reason == "diverged"
    # the test accuracy of a diverged stage is not a number, so it cannot be mistaken for a result
    assert math.isnan(result.test_acc)


def test_schedule_sets_the_rate_of_every_step():
    x, y = separable(64)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = []

    def schedule(step: int) -> float:
        seen.append(step)
        return 0.01 * (step + 1)

    train_stage(model, opt, schedule, x, y, x, y, batch_size=16, stop=stop_rule(max_epochs=2),
                generator=torch.Generator().manual_seed(0))
    # the schedule is asked once per optimizer step, in order from 0
    assert seen == list(range(8))
    # and the optimizer ends at the last rate it was given
    assert opt.param_groups[0]["lr"] == 0.08


def test_accuracy_counts_over_every_eval_batch_and_keeps_the_mode():
    from wssweep.science.train import EVAL_BATCH

    g = torch.Generator().manual_seed(0)
    n = 2 * EVAL_BATCH + 17
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Dropout(0.5))
    model.train()
    # eval mode (no dropout) over all three batches, the last one short
    with torch.no_grad():
        model.eval()
        expected = (model(x).argmax(1) == y).sum().item() / n
        model.train()
    assert accuracy(model, x, y) == pytest.approx(expected, abs=1e-12)
    # and the model is back in training mode
    assert model.training


# --- the CUDA path, decided by pure functions and exercised here on the CPU --------------------


def net(name: str, **kw) -> torch.nn.Module:
    shape = (3, 8, 8) if name == "resnet18" else (40,)
    return build_model(ModelConfig(name=name, **kw), input_shape=shape, num_classes=10, seed=0)


def test_cuda_only_settings_are_off_on_the_cpu_and_on_for_convs_on_cuda():
    conv, resnet = net("conv1d"), net("resnet18", resnet_width="narrow")
    mlp, logreg = net("mlp"), net("logreg")
    for model in (conv, resnet, mlp, logreg):
        # on the CPU: no autocast and the layout as built, whatever the model
        assert amp_dtype(model, "cpu", bf16=True) is None
        assert memory_format(model, torch.device("cpu")) is None
        # and the loss is checked at every step there
        assert train.loss_checked_each_step(torch.device("cpu"))
    # on CUDA (decided without touching a GPU): bfloat16 autocast for the conv models
    assert amp_dtype(conv, "cuda", bf16=True) is torch.bfloat16
    assert amp_dtype(resnet, torch.device("cuda:0"), bf16=True) is torch.bfloat16
    # none for the MLPs and logreg, for a GPU without bfloat16, or for float64 weights
    assert amp_dtype(mlp, "cuda", bf16=True) is None and amp_dtype(logreg, "cuda") is None
    assert amp_dtype(conv, "cuda", bf16=False) is None
    assert amp_dtype(net("conv1d").double(), "cuda", bf16=True) is None
    # channels_last for ResNet-18 only
    assert memory_format(resnet, "cuda") is torch.channels_last
    assert memory_format(conv, "cuda") is None and memory_format(mlp, "cuda") is None
    # the loss is read back once per epoch on CUDA
    assert not train.loss_checked_each_step(torch.device("cuda"))


def diverging_run(monkeypatch, each_step: bool, explode_at: int | None):
    """A stage whose rate jumps from 0.1 to 1e6 at step ``explode_at`` (None: never)."""
    monkeypatch.setattr(train, "loss_checked_each_step", lambda device: each_step)
    x, y = separable()
    with torch.random.fork_rng(devices=[]):  # the same init in every run
        torch.random.default_generator.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rate = (lambda t: 0.1) if explode_at is None else (lambda t: 0.1 if t < explode_at else 1e6)
    result = train_stage(model, opt, rate, x, y, x, y, batch_size=32,
                         stop=stop_rule(train_acc=1.0, max_epochs=20),
                         generator=torch.Generator().manual_seed(0))
    return result, model


def test_the_once_per_epoch_check_finds_the_same_divergence_and_steps(monkeypatch):
    # the CUDA path's check (forced here on the CPU) against the per-step one
    per_step, _ = diverging_run(monkeypatch, True, 21)
    per_epoch, _ = diverging_run(monkeypatch, False, 21)
    assert per_step.diverged and per_epoch.diverged and per_epoch.stop_reason == "diverged"
    # the same steps counted (those before the first non-finite loss), epochs and accuracies
    assert (per_epoch.steps, per_epoch.epochs) == (per_step.steps, per_step.epochs)
    assert per_step.epochs >= 2 and per_step.steps % 8 != 0  # mid-epoch, after some epochs
    assert math.isnan(per_epoch.test_acc) and per_epoch.train_acc == per_step.train_acc
    # a stage that does not diverge trains bit for bit the same under either check
    (a, model_a), (b, model_b) = (diverging_run(monkeypatch, True, None),
                                  diverging_run(monkeypatch, False, None))
    assert not a.diverged and (a.steps, a.epochs, a.test_acc) == (b.steps, b.epochs, b.test_acc)
    assert all(torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters(),
                                                 strict=True))


def test_the_amp_and_channels_last_paths_train(monkeypatch):
    # CUDA's settings forced on the CPU (CPU autocast runs bfloat16 too): the plumbing works
    monkeypatch.setattr(train, "amp_dtype", lambda model, device: torch.bfloat16)
    monkeypatch.setattr(train, "memory_format", lambda model, device: torch.channels_last)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    model = net("resnet18", resnet_width="narrow")
    opt = make_optimizer("sgd", model.parameters(), 0.05, momentum=0.9, betas=(0.9, 0.999),
                         weight_decay=0.0)
    result = train_stage(model, opt, lambda t: 0.05, x, y, x, y, batch_size=16,
                         stop=stop_rule(max_epochs=2), generator=torch.Generator().manual_seed(0))
    assert not result.diverged and result.steps == 8 and math.isfinite(result.test_acc)
    # the weights stay float32 (autocast casts inside the forward pass only), in channels_last,
    # and so does the optimizer state that their fused kernels read alongside them
    conv = model.conv1.weight
    assert conv.dtype == torch.float32
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert opt.state[conv]["momentum_buffer"].is_contiguous(memory_format=torch.channels_last)
