"""Learning-rate schedules: linear warmup, catapult warmup, constant / cosine / two-regime."""

from __future__ import annotations

import math

import pytest

from wssweep.science.schedules import make_schedule

# The experiment config's defaults for the settings a test does not vary (warmup_steps and optim.*).
DEFAULTS = {"warmup_steps": 0, "warmup_init": 0.0, "catapult": False, "kind": "constant",
            "decay_steps": 1000, "switch_step": 0, "ratio": 0.1}


def schedule(lr: float, **settings):
    """``make_schedule`` with the config's defaults for every setting not given."""
    return make_schedule(lr, **{**DEFAULTS, **settings})


def test_linear_warmup_values():
    s = schedule(0.2, warmup_steps=100, warmup_init=0.02)
    # at t=0 the warmup starts at η_init
    assert s(0) == pytest.approx(0.02)
    # halfway the rate is the midpoint of η_init and η_trgt
    assert s(50) == pytest.approx(0.11)
    # the last warmup step is one slope short of the target
    assert s(99) == pytest.approx(0.02 + 0.18 * 99 / 100)
    # at t=T_wrm the target is reached and held (constant kind)
    assert s(100) == pytest.approx(0.2) and s(5000) == pytest.approx(0.2)
    # the plain warmup reaches the target exactly at T_wrm
    assert s.reach_step == 100


def test_warmup_from_zero():
    s = schedule(1.0, warmup_steps=10)
    # from η_init = 0 (the config's default) the ramp is linear
    assert [s(t) for t in range(11)] == pytest.approx([t / 10 for t in range(11)])


@pytest.mark.parametrize("warmup_steps", [0, 1])
def test_no_warmup_is_constant(warmup_steps):
    s = schedule(0.05, warmup_steps=warmup_steps, warmup_init=0.001)
    # T_wrm of 0 or 1 means no warmup: the target rate from the first step on
    assert all(s(t) == 0.05 for t in (0, 1, 7, 10_000))
    # and the target is reached at step 0
    assert s.reach_step == 0


def test_cosine_decay():
    s = schedule(0.1, warmup_steps=20, kind="cosine", decay_steps=200)
    values = [s(t) for t in range(20, 221)]
    # the decay starts at η_trgt right after warmup
    assert values[0] == pytest.approx(0.1)
    # halfway through the decay the rate is the mean of η_trgt and η_min
    assert s(20 + 100) == pytest.approx(0.055)
    # it ends at η_min = η_trgt/10 after decay_steps
    assert values[-1] == pytest.approx(0.01)
    # it decays monotonically
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    # and stays at η_min afterwards
    assert s(10_000) == pytest.approx(0.01)


def test_cosine_without_warmup_starts_at_target():
    s = schedule(0.3, kind="cosine", decay_steps=10)
    # without warmup the cosine begins at step 0 at η_trgt
    assert s(0) == pytest.approx(0.3)
    # and ends at η_trgt/10 after decay_steps
    assert s(10) == pytest.approx(0.03)


def test_two_regime_switch():
    s = schedule(0.4, warmup_steps=10, kind="two_regime", switch_step=50, ratio=0.05)
    # the large-step phase holds η_trgt from the end of warmup ...
    assert s(10) == pytest.approx(0.4) and s(59) == pytest.approx(0.4)
    # ... until switch_step steps after warmup, then the small-step phase holds η_trgt·ratio
    assert s(60) == pytest.approx(0.02) and s(100_000) == pytest.approx(0.02)
    # warmup still ramps before the large-step phase
    assert s(5) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("lr_c", "lr_trgt", "warmup"), [(0.25, 1.0, 100), (0.03, 0.1, 64), (1e-3, 0.5, 1000)]
)
def test_catapult_schedule_reaches_target_early(lr_c, lr_trgt, warmup):
    s = schedule(lr_trgt, warmup_steps=warmup, warmup_init=lr_c, catapult=True)
    expected = math.ceil(warmup * (1 - lr_c / lr_trgt) - 1e-9)
    # the modified schedule reaches the target after T_wrm(1 − η_c/η_trgt) steps
    assert s.reach_step == expected
    # it starts at η_c
    assert s(0) == pytest.approx(lr_c)
    # with the plain warmup's slope η_trgt/T_wrm
    assert s(1) - s(0) == pytest.approx(lr_trgt / warmup)
    # it is below target one step before reach_step and at target from reach_step on
    assert s(s.reach_step - 1) < lr_trgt and s(s.reach_step) == lr_trgt
    # the rate never exceeds the target
    assert max(s(t) for t in range(warmup + 5)) == lr_trgt


def test_catapult_above_target_means_no_warmup():
    s = schedule(0.1, warmup_steps=500, warmup_init=0.2, catapult=True)
    # η_c ≥ η_trgt: the target is used from the first step
    assert s.reach_step == 0 and s(0) == 0.1


def test_catapult_cosine_starts_at_reach_step():
    s = schedule(
        1.0, warmup_steps=100, warmup_init=0.5, catapult=True, kind="cosine", decay_steps=10
    )
    # the decay begins where the target is reached (step 50), not at T_wrm
    assert s(50) == pytest.approx(1.0) and s(60) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"lr": 0.1, "warmup_steps": -1}, "warmup_steps"),
        ({"lr": 0.1, "warmup_steps": 2.5}, "warmup_steps"),
        ({"lr": 0.1, "ratio": 0.0}, "ratio"),
        ({"lr": 0.1, "ratio": 1.5}, "ratio"),
        ({"lr": 0.1, "kind": "step"}, "kind"),
        ({"lr": 0.1, "warmup_init": -0.1}, "warmup_init"),
        ({"lr": 0.1, "kind": "cosine", "decay_steps": 0}, "decay_steps"),
        ({"lr": 0.1, "switch_step": -3}, "switch_step"),
    ],
)
def test_invalid_values_are_value_errors_naming_the_argument(kwargs, key):
    lr = kwargs.pop("lr")
    # the config validated these at the edge: here they are a caller's bug, not user input
    with pytest.raises(ValueError, match=f"^{key} must be"):
        schedule(lr, **kwargs)


def test_negative_step_is_a_bug():
    # steps are 0-based; a negative step is a programming error, not user input
    with pytest.raises(ValueError):
        schedule(0.1)(-1)
