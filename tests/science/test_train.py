"""The stage train loop and its stop rule."""

import math

import pytest
import torch

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
