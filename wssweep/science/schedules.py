"""Learning-rate schedules of one stage: linear warmup, then constant, cosine or two-regime.

Warmup follows Kalra & Barkeshli ("Why Warmup the Learning Rate?", §2 and §6.1); the two-regime
schedule follows Leclerc & Madry, "The Two Regimes of Deep Network Training" (arXiv 2002.10376):
a constant large-step phase, then a constant small-step phase.

Steps are optimizer steps counted from 0 at the start of the stage.

Every setting is required: their defaults live in the experiment config (``warmup_steps`` and
``optim.*``), which has also checked them; the checks here are cheap sanity checks that raise
``ValueError``.

Example:
    >>> s = make_schedule(0.1, warmup_steps=10, warmup_init=0.0, catapult=False, kind="cosine",
    ...                   decay_steps=100, switch_step=0, ratio=0.1)
    >>> s(0), s(5), s(10), s.reach_step
    (0.0, 0.05, 0.1, 10)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["KINDS", "Schedule", "make_schedule"]

#: Post-warmup shapes ``make_schedule`` knows.
KINDS: tuple[str, ...] = ("constant", "cosine", "two_regime")

#: Cosine decay ends at ``lr / COSINE_MIN_DIVISOR`` (η_min = η_trgt/10 in Kalra & Barkeshli).
COSINE_MIN_DIVISOR = 10.0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """The learning rate at each optimizer step of a stage; call it with the step (0-based).

    Fields are those of :func:`make_schedule`. ``reach_step`` is the first step at which the rate
    equals the target ``lr`` (0 without warmup); the post-warmup phase (constant, cosine or
    two-regime) starts there. For the plain warmup it is ``warmup_steps``; for the catapult
    schedule it is ``ceil(warmup_steps·(1 − warmup_init/lr))``, or 0 when ``warmup_init ≥ lr``.
    """

    lr: float
    warmup_steps: int
    warmup_init: float
    catapult: bool
    kind: str
    decay_steps: int
    switch_step: int
    ratio: float
    reach_step: int = field(init=False)

    def __post_init__(self) -> None:
        # Cheap, and the rate formulas would otherwise return nonsense instead of failing.
        problems = [
            ("lr", "a finite number > 0", _is_real(self.lr) and self.lr > 0),
            ("warmup_steps", "an integer >= 0", _is_int(self.warmup_steps)
             and self.warmup_steps >= 0),
            ("warmup_init", "a finite number >= 0", _is_real(self.warmup_init)
             and self.warmup_init >= 0),
            ("kind", f"one of {', '.join(KINDS)}", self.kind in KINDS),
            ("ratio", "a number in (0, 1]", _is_real(self.ratio) and 0 < self.ratio <= 1),
            ("decay_steps", "an integer >= 1", _is_int(self.decay_steps)
             and self.decay_steps >= 1),
            ("switch_step", "an integer >= 0", _is_int(self.switch_step)
             and self.switch_step >= 0),
        ]
        for name, expected, ok in problems:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")
        object.__setattr__(self, "reach_step", self._compute_reach_step())

    def _warmup_lr(self, step: int) -> float:
        """The warmup formula (only used for ``step < reach_step``)."""
        if self.catapult:
            # Same slope as a warmup from 0 (η_trgt/T_wrm), started at η_init = η_c (§6.1).
            return self.warmup_init + self.lr * step / self.warmup_steps
        return self.warmup_init + (self.lr - self.warmup_init) * step / self.warmup_steps

    def _compute_reach_step(self) -> int:
        if self.warmup_steps <= 1:
            return 0
        if not self.catapult:
            return self.warmup_steps
        if self.warmup_init >= self.lr:
            return 0
        # First integer t with η_init + η_trgt·t/T_wrm ≥ η_trgt, i.e. t ≥ T_wrm(1 − η_init/η_trgt);
        # start from the closed form and settle float rounding against the formula itself.
        reach = min(
            self.warmup_steps,
            max(0, math.ceil(self.warmup_steps * (1 - self.warmup_init / self.lr))),
        )
        while reach > 0 and self._warmup_lr(reach - 1) >= self.lr:
            reach -= 1
        while reach < self.warmup_steps and self._warmup_lr(reach) < self.lr:
            reach += 1
        return reach

    def __call__(self, step: int) -> float:
        """The learning rate for optimizer step ``step`` (0-based, counted within the stage)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if step < self.reach_step:
            return self._warmup_lr(step)
        t = step - self.reach_step
        if self.kind == "cosine":
            lr_min = self.lr / COSINE_MIN_DIVISOR
            if t >= self.decay_steps:
                return lr_min
            return lr_min + (self.lr - lr_min) * 0.5 * (
                1 + math.cos(math.pi * t / self.decay_steps)
            )
        if self.kind == "two_regime":
            return self.lr if t < self.switch_step else self.lr * self.ratio
        return self.lr


def make_schedule(
    lr: float,
    *,
    warmup_steps: int,
    warmup_init: float,
    catapult: bool,
    kind: str,
    decay_steps: int,
    switch_step: int,
    ratio: float,
) -> Schedule:
    """Build the learning-rate schedule of one stage; returns a :class:`Schedule`.

    Args:
        lr: target learning rate η_trgt (> 0).
        warmup_steps: linear warmup length T_wrm in optimizer steps; 0 or 1 means no warmup.
        warmup_init: η_init, the rate at step 0 of the warmup (>= 0).
        catapult: use the modified schedule for η_init = η_c (from ``optim.catapult_lr``):
            η_t = min(η_init + η_trgt·t/T_wrm, η_trgt). The slope is the plain warmup's, so the
            target is reached after T_wrm(1 − η_c/η_trgt) steps (``reach_step``).
        kind: after warmup, ``"constant"`` (η_trgt), ``"cosine"`` (from η_trgt down to η_trgt/10
            over ``decay_steps`` steps, then η_trgt/10) or ``"two_regime"`` (η_trgt for
            ``switch_step`` steps, then η_trgt·``ratio``).
        decay_steps: cosine decay length T_cos (>= 1), counted from the end of warmup.
        switch_step: two-regime switch, in steps counted from the end of warmup (>= 0).
        ratio: two-regime small-step rate as a fraction of ``lr``, in (0, 1].

    Raises:
        ValueError: naming the argument, for a value out of the range given above.

    Example:
        >>> s = make_schedule(1.0, warmup_steps=100, warmup_init=0.25, catapult=True,
        ...                   kind="constant", decay_steps=1000, switch_step=0, ratio=0.1)
        >>> s.reach_step, s(0), s(74), s(75)
        (75, 0.25, 0.99, 1.0)
    """
    return Schedule(
        lr=lr,
        warmup_steps=warmup_steps,
        warmup_init=warmup_init,
        catapult=catapult,
        kind=kind,
        decay_steps=decay_steps,
        switch_step=switch_step,
        ratio=ratio,
    )
