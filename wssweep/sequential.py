"""Seeds until decided: a group-sequential verdict whose error rate holds under optional stopping.

A sweep with ``seeds: {min: 3, max: 40, until: decided}`` runs ``min`` seeds of every setting,
then adds seeds only to settings still undecided, at planned *looks*: the seed count doubles
(3, 6, 12, 24, 40) until ``max``. Looking at the data after every batch and stopping when it
looks decided would inflate a fixed-N test's error rate; here each look spends a share of the
setting's error rate, by the Pocock-type spending function of Lan & DeMets (1983),
``α(t) = α · ln(1 + (e − 1) t)`` at information fraction ``t = n / max``, and the test at look k
is the one-sided paired t-test of ``wssweep.verdicts`` at level ``α(t_k) − α(t_{k−1})``. By
Bonferroni's inequality over the looks the chance of ever rejecting a true null is at most
``α`` however the looks fall out (valid for the planned looks; no assumption on how the looks'
statistics correlate). Across the settings of a sweep each gets ``α / m`` (Bonferroni; Holm's
step-down does not carry over to settings stopping at different looks). Pocock-type spending
lets a clear setting stop at the first looks, where O'Brien–Fleming's would spend almost nothing;
``tests/test_sequential.py`` measures the error rate and the seeds it saves by simulation.

Example:
    >>> plan = Plan(min_seeds=3, max_seeds=40)
    >>> plan.looks
    (3, 6, 12, 24, 40)
    >>> decide((0.1, -0.2, 0.0, 0.1, -0.1, 0.05), plan, tolerance=1.0, alpha=0.05)
    'closed'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from wssweep.cells import cell_text
from wssweep.comparisons import (
    against_reference,
    choose_reference,
    finished,
    matches,
    refilled,
)
from wssweep.verdicts import CORRECTION_NAMES, TEST_NAME, pvalues

#: The name the map and validate give this design.
DESIGN_NAME = ("group-sequential one-sided t-tests, Pocock-type alpha spending (Lan & DeMets "
               "1983) over the looks, Bonferroni across settings")


def judged_by(sequential: bool, correction: str) -> tuple[str, str]:
    """How a run's verdicts are tested: the test's name and the correction's, as the map run and
    the page name them. Seeds until decided use this module's design, Bonferroni across settings
    included; a fixed set of seeds uses ``wssweep.verdicts``' test and the spec's correction.

    Example:
        >>> judged_by(False, "holm")
        ('one-sided paired t-test', 'Holm (family-wise error rate)')
    """
    if sequential:
        return DESIGN_NAME, "Bonferroni across settings (within the design)"
    return TEST_NAME, CORRECTION_NAMES[correction]


@dataclass(frozen=True)
class Plan:
    """When a setting is looked at: ``min_seeds``, then doubling, capped at ``max_seeds``."""

    min_seeds: int
    max_seeds: int

    @cached_property
    def looks(self) -> tuple[int, ...]:
        out, n = [], self.min_seeds
        while n < self.max_seeds:
            out.append(n)
            n *= 2
        return (*out, self.max_seeds)

    def next_look(self, n: int) -> int | None:
        """The seed count of the look after ``n`` seeds; ``None`` at or past the last."""
        return next((k for k in self.looks if k > n), None)


def spent(alpha: float, fraction: float) -> float:
    """Pocock-type alpha spent by information fraction ``fraction`` (0 at 0, ``alpha`` at 1)."""
    return alpha * math.log(1 + (math.e - 1) * min(max(fraction, 0.0), 1.0))


def look_levels(plan: Plan, alpha: float) -> tuple[float, ...]:
    """The level of the test at each look: the alpha spent since the previous look.

    Example:
        >>> levels = look_levels(Plan(3, 40), 0.05)
        >>> round(sum(levels), 12), [round(a, 4) for a in levels]
        (0.05, [0.0061, 0.0054, 0.0093, 0.0146, 0.0146])
    """
    fractions = [n / plan.max_seeds for n in plan.looks]
    cumulative = [spent(alpha, t) for t in fractions]
    return tuple(b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True))


def decide(diffs: Sequence[float], plan: Plan, tolerance: float, alpha: float) -> str | None:
    """The verdict of one setting at its current look, or ``None`` to add seeds.

    ``diffs`` are its paired differences (reference cold − warm, points) so far; ``alpha`` is
    this setting's share of the sweep's error rate. Only a planned look decides: between looks
    (or before the first) the answer is ``None`` unless the last look has passed. At the last
    look an undecided setting is ``inconclusive``.
    """
    return decide_many([diffs], plan, tolerance, alpha)[0]


def decide_many(samples: Sequence[Sequence[float]], plan: Plan, tolerance: float,
                alpha: float, seeds_run: Sequence[int] | None = None) -> list[str | None]:
    """``decide`` for many settings at once (their tests vectorized by sample size).

    ``seeds_run`` (default: each sample's size) is how many seeds each setting has run: the
    look is set by the seeds run, the test by the seeds that trained (a failed seed is no
    evidence either way, and does not move the look).
    """
    clean = [[d for d in x if math.isfinite(d)] for x in samples]
    ran = [len(x) for x in clean] if seeds_run is None else list(seeds_run)
    levels = look_levels(plan, alpha)
    at_look = [i for i, n in enumerate(ran) if n in plan.looks]
    out: list[str | None] = ["inconclusive" if n >= plan.max_seeds else None for n in ran]
    if not at_look:
        return out
    judged = [clean[i] for i in at_look]
    p_closed = pvalues(judged, tolerance, "less")
    p_better = pvalues(judged, 0.0, "less")
    p_open = pvalues(judged, tolerance, "greater")
    for k, i in enumerate(at_look):
        level = levels[plan.looks.index(ran[i])]
        if p_closed[k] <= level:
            out[i] = "better" if p_better[k] <= level else "closed"
        elif p_open[k] <= level:
            out[i] = "open"
    return out


@dataclass(frozen=True)
class Round:
    """What a seeds-until-decided sweep does next, from the trials finished so far."""

    verdicts: dict[tuple[str, ...], str]  # decided settings (their swept values) → verdict
    trials: list[tuple[dict[str, str], int]]  # (setting, seed) pairs to run next; [] when done


def plan_round(rows: Sequence[dict], grid: Sequence[dict], swept: Sequence[str], plan: Plan,
               tolerance: float, alpha: float, named: dict | None = None,
               family: int | None = None) -> Round:
    """The next round of a seeds-until-decided sweep over the settings of ``grid`` (swept key →
    value), from the finished trials in ``rows`` (results.csv rows).

    Every setting first runs ``plan.min_seeds`` seeds (0, 1, ...). The reference cold start is
    chosen once, on those first seeds (``wssweep.comparisons.choose_reference``), so adding seeds
    never moves it. Then each setting at a look is decided (``decide_many``, each setting at
    ``alpha / m`` of the sweep's ``alpha``, ``m`` = ``family``, by default the number of settings
    in ``grid``); an undecided one runs seeds up to its next look, and
    so does one setting of the reference recipe, so every new seed has a reference cold arm to
    pair with. Deterministic given the finished trials: ``resume`` recomputes the same rounds.

    Example:
        >>> plan = Plan(3, 12)
        >>> rows = [{"lr": "0.1", "seed": str(s), "status": "completed", "warm/test_acc": w,
        ...          "cold/test_acc": "80", "cold/val_acc": "80"}
        ...         for s, w in zip(range(3), ("79.9", "80.2", "70"))]
        >>> [seed for _, seed in plan_round(rows, [{"lr": 0.1}], ["lr"], plan, 0.5, 0.05).trials]
        [3, 4, 5]
    """
    idents = [tuple(cell_text(setting.get(k)) for k in swept) for setting in grid]
    groups: dict[tuple[str, ...], list[dict]] = {i: [] for i in idents}
    for row in rows:
        ident = tuple(cell_text(row.get(k)) for k in swept)
        if ident in groups:
            groups[ident].append(row)
    # The grid's own values, not their cells' text: a mapping's text is no setting.
    settings = [{k: setting.get(k) for k in swept} for setting in grid]
    done = [{seed_of(r) for r in groups[i] if finished(r)} for i in idents]
    first = [(s, seed) for s, have in zip(settings, done, strict=True)
             for seed in range(plan.min_seeds) if seed not in have]
    if first:
        return Round({}, first)
    chosen = choose_reference([r for r in rows if seed_of(r) < plan.min_seeds], swept, named)
    # Chosen on the first seeds, then fixed: its cold arms on every seed run since.
    reference = refilled(chosen, rows)
    # A setting's verdict is the one of the first look that decided it, so seeds it runs later
    # (to give the reference new cold arms) never change it.
    decided: dict[tuple[str, ...], str] = {}
    for look in plan.looks:
        open_ = [k for k, i in enumerate(idents) if i not in decided and len(done[k]) >= look]
        if not open_:
            continue
        pairs = [against_reference([r for r in groups[idents[k]] if seed_of(r) < look],
                                   reference) for k in open_]
        for k, verdict in zip(open_, decide_many([p.diffs for p in pairs], plan, tolerance,
                                                 alpha / (family or len(idents)),
                                                 seeds_run=[look] * len(open_)), strict=True):
            if verdict is not None:
                decided[idents[k]] = verdict
    wanted: dict[int, set[int]] = {}
    for k, ident in enumerate(idents):
        target = None if ident in decided else plan.next_look(len(done[k]))
        if target is not None:
            wanted.setdefault(k, set()).update(range(target))
    for leaf in reference.leaves():
        members = _reference_members(settings, leaf)
        if not members:
            continue
        # Seeds that no setting of the reference recipe runs anyway: its first one runs them
        # (for the settings of its problem).
        covered = set().union(*(done[k] | wanted.get(k, set()) for k in members))
        mine = [k for k, s in enumerate(settings) if matches(s, leaf.problem)]
        needed = set().union(*(wanted.get(k, set()) for k in mine)) - covered
        if needed:
            wanted.setdefault(members[0], set()).update(needed)
    trials = [(settings[k], seed) for k in sorted(wanted) for seed in sorted(wanted[k])
              if seed not in done[k]]
    return Round(decided, trials)


def plan_search_round(rows: Sequence[dict], settings: Sequence[dict], swept: Sequence[str],
                      plan: Plan, tolerance: float, alpha: float, named: dict | None,
                      family: int) -> Round:
    """``plan_round`` for a search still drawing its ``family`` settings: a setting short of its
    first ``plan.min_seeds`` seeds runs them, while those that have them all are planned (their
    reference chosen among them) as ``plan_round`` plans them, in the same round.

    Example:
        >>> rows = [{"lr": "0.1", "seed": str(s), "status": "completed", "warm/test_acc": "80",
        ...          "cold/test_acc": "80", "cold/val_acc": "80"} for s in range(3)]
        >>> step = plan_search_round(rows, [{"lr": 0.1}, {"lr": 0.2}], ["lr"], Plan(3, 12), 0.5,
        ...                          0.05, None, family=2)
        >>> step.verdicts, step.trials
        ({('0.1',): 'closed'}, [({'lr': 0.2}, 0), ({'lr': 0.2}, 1), ({'lr': 0.2}, 2)])
    """
    def ident(values: dict) -> tuple[str, ...]:
        return tuple(cell_text(values.get(k)) for k in swept)

    done: dict[tuple[str, ...], set[int]] = {ident(s): set() for s in settings}
    for row in rows:
        if ident(row) in done and finished(row):
            done[ident(row)].add(seed_of(row))
    first = set(range(plan.min_seeds))
    complete = [s for s in settings if first <= done[ident(s)]]
    idents = {ident(s) for s in complete}
    step = plan_round([r for r in rows if ident(r) in idents], complete, swept, plan, tolerance,
                      alpha, named, family) if complete else Round({}, [])
    starting = [(s, seed) for s in settings if not first <= done[ident(s)]
                for seed in sorted(first - done[ident(s)])]
    return Round(step.verdicts, starting + step.trials)


def seed_of(row: dict) -> int:
    """A results row's seed."""
    return int(float(cell_text(row.get("seed"))))


def _reference_members(settings: Sequence[dict[str, str]], reference) -> list[int]:
    """The settings of the reference recipe (any of them trains its cold arm on a seed); none
    when each setting is its own reference (a run without a validation split)."""
    if reference.how == "same_recipe":
        return []
    return [k for k, setting in enumerate(settings)
            if matches(setting, reference.settings)]
