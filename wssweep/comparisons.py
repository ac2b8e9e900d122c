"""What each warm start is compared with: the sweep's reference cold start, and its plain warm
start. Pure functions over results.csv rows (text cells), for the map (``wssweep.gapmap``).

A sweep that varies a setting the cold arm depends on (its rate, warmup, optimizer, ...) also
varies the cold arm, and a weak cold arm makes any warm start look good. So the verdict compares
every warm arm with one *reference* cold start: the cold recipe (the swept values of the keys the
cold arm depends on, ``cold_keys``) with the best mean validation accuracy over seeds, or the one
the spec names (``reference:``). It is paired per seed: the reference cold arm on seed s against
the warm arm on seed s. Selection reads validation accuracy only; the gap it yields is on test.

A sweep that varies the problem itself (the model, the data or the protocol: ``problem_keys``,
e.g. an MLP against logistic regression) asks its question once per problem, so each problem
gets its own reference: the best cold recipe *of that problem* (``Reference.parts``). A warm
logistic regression is never judged against a cold MLP.

Example:
    >>> rows = [{"lr": lr, "seed": s, "status": "completed", "cold/val_acc": v,
    ...          "cold/test_acc": v - 1, "warm/test_acc": 80, "cold/stop": "threshold"}
    ...         for lr, v in (("0.1", 90), ("0.01", 70)) for s in ("0", "1")]
    >>> ref = choose_reference(rows, ["lr"])
    >>> ref.settings, ref.how, ref.seeds["0"].test_acc
    ({'lr': 0.1}, 'best', 89.0)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from wssweep.cells import cell_text, to_float, truthy
from wssweep.config import INTERVENTION_KEYS, WARM_ONLY_KEYS, ExperimentConfig

Row = dict[str, Any]
#: Statuses of trials that did not finish: neither a seed nor a failure.
UNFINISHED = ("stopped", "running", "pending")
#: How a reference was chosen.
HOW = {"best": "the cold recipe with the best mean validation accuracy over seeds",
       "named": "the cold recipe the spec names (reference:)",
       "only": "the sweep's only cold recipe (it varies nothing the cold arm depends on)",
       "same_recipe": "each setting's own cold arm (this run has no validation split to choose "
                      "a reference with)",
       "per_problem": "each problem's own reference cold start"}
#: The experiment's sections that set the problem (the model and the data it learns from), not
#: the recipe that trains it.
PROBLEM_SECTIONS = ("model", "data", "protocol")


def _value(cell: Any) -> Any:
    x = to_float(cell)
    return x if math.isfinite(x) else cell_text(cell)


def cold_keys(swept: Sequence[str]) -> list[str]:
    """The swept keys the cold arm depends on (every key not only the warm arm reads)."""
    return [k for k in swept if k.split(".")[0] not in WARM_ONLY_KEYS]


def problem_keys(swept: Sequence[str]) -> list[str]:
    """The swept keys that change the problem, not its training recipe: one reference each."""
    return [k for k in cold_keys(swept) if k.split(".")[0] in PROBLEM_SECTIONS]


def finished(row: Row) -> bool:
    return cell_text(row.get("status")) not in UNFINISHED


def arm_ok(row: Row, arm: str, split: str = "test") -> bool:
    """Whether ``arm`` of a finished trial trained: no error, not diverged, a finite accuracy.

    Each arm is judged on its own (``warm/diverged``, ``cold/diverged``); a run written before
    those columns existed has only ``diverged``, for either arm.
    """
    if not finished(row) or cell_text(row.get("status")) == "error":
        return False
    flag = row.get(f"{arm}/diverged")
    diverged = truthy(flag) if cell_text(flag) else truthy(row.get("diverged"))
    return not diverged and math.isfinite(to_float(row.get(f"{arm}/{split}_acc")))


@dataclass(frozen=True)
class ColdSeed:
    """The reference cold arm on one seed."""

    test_acc: float
    val_acc: float
    stop: str  # why its last stage stopped; "" when the run did not record it

    @classmethod
    def of(cls, row: Row) -> ColdSeed:
        """The cold arm of a results.csv row."""
        return cls(to_float(row.get("cold/test_acc")), to_float(row.get("cold/val_acc")),
                   cell_text(row.get("cold/stop")))


@dataclass
class Reference:
    """The reference cold start of a sweep: its recipe, how it was chosen, and its seeds."""

    settings: dict[str, Any]  # cold key → value; empty when the sweep varies no cold key
    how: Literal["best", "named", "only", "same_recipe", "per_problem"]
    mean_val_acc: float = math.nan
    seeds: dict[str, ColdSeed] = field(default_factory=dict)  # seed (text) → its cold arm
    candidates: list[dict[str, Any]] = field(default_factory=list)  # every recipe, for people
    problem: dict[str, Any] = field(default_factory=dict)  # problem key → value it is for
    parts: list[Reference] = field(default_factory=list)  # per_problem: one per problem

    @property
    def described(self) -> str:
        if self.how == "per_problem":
            kinds = {p.how for p in self.parts}
            inner = ("its only cold recipe" if kinds == {"only"} else
                     HOW[kinds.pop()] if len(kinds) == 1 else "its reference cold start")
            return (f"the reference of each warm start's own problem (each value of "
                    f"{', '.join(self.problem)}): {inner}")
        return HOW[self.how]

    def leaves(self) -> list[Reference]:
        """The references warm starts are paired with: one per problem, or this one."""
        return list(self.parts) or [self]

    def for_row(self, row: Row) -> Reference:
        """The reference of ``row``'s problem (one without seeds if the run has none for it)."""
        if self.how != "per_problem":
            return self
        return next((p for p in self.parts if matches(row, p.problem)),
                    Reference(dict.fromkeys(self.problem), "best"))

    def as_json(self) -> dict[str, Any]:
        """``map/reference.json``: the recipe, how it was chosen, and the recipes it beat."""
        out = {"settings": self.settings, "how": self.how, "described": self.described,
               "mean_val_acc": self.mean_val_acc if math.isfinite(self.mean_val_acc) else None,
               "n_seeds": len(self.seeds), "candidates": self.candidates}
        if self.how == "per_problem":
            out["per_problem"] = [p.as_json() | {"problem": p.problem} for p in self.parts]
        return out


def _recipe(row: Row, keys: Sequence[str]) -> tuple:
    return tuple(_value(row.get(k)) for k in keys)


def _cold_seeds(rows: Sequence[Row]) -> dict[str, ColdSeed]:
    """The cold arm of each seed (the first trial whose cold arm trained; its settings differ
    only in warm-only keys, so they share the cold arm)."""
    out: dict[str, ColdSeed] = {}
    for row in rows:
        seed = cell_text(row.get("seed"))
        if seed not in out and arm_ok(row, "cold"):
            out[seed] = ColdSeed.of(row)
    return out


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if math.isfinite(v)]
    return sum(kept) / len(kept) if kept else math.nan


def matches(recipe: dict[str, Any], named: dict[str, Any]) -> bool:
    """Whether a recipe (or setting: values or their cells) has every value ``named`` gives."""
    for key, want in named.items():
        have = recipe.get(key)
        if isinstance(want, int | float) and not isinstance(want, bool):
            if not math.isclose(to_float(have), float(want), rel_tol=1e-9):
                return False
        elif cell_text(have) != cell_text(want):
            return False
    return True


def choose_reference(rows: Sequence[Row], swept: Sequence[str],
                     named: dict[str, Any] | None = None) -> Reference:
    """The sweep's reference cold start (see the module docstring).

    With no cold key swept the only cold recipe is the reference. A run without validation
    accuracies (written before the split existed) cannot choose one: its reference is each
    setting's own cold arm (``same_recipe``). ``named`` picks among the recipes that match it
    (the best by validation accuracy if several do); a name no recipe matches leaves the
    reference without seeds, so no setting can be judged against it.
    """
    # A key that takes one value in the run (a constant) tells no recipe or problem apart.
    varying = [k for k in swept if len({cell_text(r.get(k)) for r in rows}) > 1]
    problems = problem_keys(varying)
    if problems:
        recipe_keys = [k for k in cold_keys(varying) if k not in problems]
        by_problem: dict[tuple, list[Row]] = {}
        for row in rows:
            by_problem.setdefault(_recipe(row, problems), []).append(row)
        parts = [_choose(members, recipe_keys, named, dict(zip(problems, values, strict=True)))
                 for values, members in by_problem.items()]
        if parts and all(p.how == "same_recipe" for p in parts):
            return Reference({}, "same_recipe", candidates=[c for p in parts for c in p.candidates])
        return Reference({}, "per_problem", candidates=[c for p in parts for c in p.candidates],
                         problem=dict.fromkeys(problems), parts=parts)
    return _choose(rows, cold_keys(varying), named, {})


def _choose(rows: Sequence[Row], keys: Sequence[str], named: dict[str, Any] | None,
            problem: dict[str, Any]) -> Reference:
    """``choose_reference`` within one problem (``problem``: its values, prefixed to each
    recipe's settings), over the recipes of ``keys``."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(_recipe(row, keys), []).append(row)
    recipes = []
    for values, members in groups.items():
        seeds = _cold_seeds(members)
        recipes.append(({**problem, **dict(zip(keys, values, strict=True))}, seeds,
                        _mean([c.val_acc for c in seeds.values()]), members[0]))
    candidates = [{"settings": r, "mean_val_acc": v if math.isfinite(v) else None,
                   "n_seeds": len(s)} for r, s, v, _ in recipes]
    if not keys:
        settings, seeds, val, _ = recipes[0] if recipes else (dict(problem), {}, math.nan, {})
        return Reference(settings, "only", val, seeds, candidates, dict(problem))
    if not any(math.isfinite(v) for _, _, v, _ in recipes):
        return Reference({}, "same_recipe", math.nan, {}, candidates, dict(problem))
    pool = recipes
    how: Literal["best", "named"] = "best"
    if named:
        # Matched on a row of the recipe: a named key the run holds constant is in its rows.
        pool, how = [r for r in recipes if matches(r[3], named)], "named"
        if not pool:
            return Reference({**problem, **named}, how, math.nan, {}, candidates, dict(problem))
    scored = [r for r in pool if math.isfinite(r[2])]
    settings, seeds, val, _ = max(scored, key=lambda r: r[2]) if scored else pool[0]
    return Reference(settings, how, val, seeds, candidates, dict(problem))


def refilled(chosen: Reference, rows: Sequence[Row]) -> Reference:
    """``chosen`` with the cold arms of its recipes on every seed of ``rows``: a reference
    chosen on the first seeds keeps its recipe as seeds are added (``wssweep.sequential``)."""
    if chosen.how == "same_recipe":
        return chosen
    if chosen.how == "per_problem":
        return dataclasses.replace(chosen, parts=[refilled(p, rows) for p in chosen.parts])
    members = [r for r in rows if matches(r, chosen.settings)]
    seeds = _cold_seeds(members)
    return dataclasses.replace(chosen, seeds=seeds,
                               mean_val_acc=_mean([c.val_acc for c in seeds.values()]))


@dataclass(frozen=True)
class Paired:
    """One setting's warm arms paired with their comparison, per seed."""

    diffs: tuple[float, ...]  # comparison − warm (or warm − plain warm, for the gain), points
    n_failed: int  # finished seeds where an arm the comparison uses did not train
    n_unconverged: int  # paired seeds whose arms stopped on different criteria


def against_reference(trials: Sequence[Row], reference: Reference,
                      split: Literal["test", "val"] = "test") -> Paired:
    """Reference cold − warm on each seed of one setting (its own cold arm for ``same_recipe``).

    A pair is *converged* when both arms' last stages stopped on the same criterion (both at the
    threshold, both on the plateau, or both at ``max_epochs``: equally budgeted); a run that did
    not record stop reasons counts every pair as converged.
    """
    diffs, failed, unconverged = [], 0, 0
    for row in trials:
        if not finished(row):
            continue
        seed = cell_text(row.get("seed"))
        if reference.how == "same_recipe":
            cold = ColdSeed.of(row) if arm_ok(row, "cold", split) else None
        else:
            cold = reference.for_row(row).seeds.get(seed)
        if cold is None or not arm_ok(row, "warm", split):
            failed += 1
            continue
        diffs.append(getattr(cold, f"{split}_acc") - to_float(row.get(f"warm/{split}_acc")))
        warm_stop = cell_text(row.get("warm/stop"))
        if warm_stop and cold.stop and warm_stop != cold.stop:
            unconverged += 1
    return Paired(tuple(diffs), failed, unconverged)


def _with_setting(experiment: dict[str, Any], setting: dict[str, Any]) -> dict[str, Any]:
    """The experiment mapping with a setting's dotted keys set (cells parsed as numbers)."""
    out = copy.deepcopy(experiment)
    for key, cell in setting.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _value(cell)
    return out


def is_plain(setting: dict[str, Any], experiment: dict[str, Any]) -> bool:
    """Whether a setting is the plain warm start: no intervention, or shrink-and-perturb that
    neither shrinks nor perturbs (λ = 1, σ = 0)."""
    try:
        cfg = ExperimentConfig.model_validate(_with_setting(experiment, setting))
    except (ValidationError, ValueError):
        return False
    w = cfg.warm
    return w.intervention == "none" or (
        w.intervention == "shrink_perturb" and cfg.resolved_shrink() == 1 and w.perturb == 0)


def plain_warm_gain(trials: Sequence[Row], plain: Sequence[Row]) -> Paired:
    """Intervention warm − plain warm test accuracy on each seed (positive: the intervention
    helps). The cold arm is shared, so this is the sharp, paired comparison."""
    base = {cell_text(r.get("seed")): to_float(r.get("warm/test_acc"))
            for r in plain if arm_ok(r, "warm")}
    diffs, failed = [], 0
    for row in trials:
        if not finished(row):
            continue
        seed = cell_text(row.get("seed"))
        if seed not in base or not arm_ok(row, "warm"):
            failed += 1
            continue
        diffs.append(to_float(row.get("warm/test_acc")) - base[seed])
    return Paired(tuple(diffs), failed, 0)


def plain_partners(settings: Sequence[dict[str, Any]],
                   experiment: dict[str, Any]) -> list[int | None]:
    """For each setting, the index of the plain warm start (``is_plain``) with the same recipe
    (equal on every swept key but the intervention's own), if the sweep holds one; ``None`` for
    a plain setting itself."""
    plain = [is_plain(s, experiment) for s in settings]
    out: list[int | None] = []
    for setting, own in zip(settings, plain, strict=True):
        recipe = {k: v for k, v in setting.items() if k not in INTERVENTION_KEYS}
        out.append(None if own else next(
            (i for i, other in enumerate(settings) if plain[i] and all(
                cell_text(other.get(k)) == cell_text(v) for k, v in recipe.items())), None))
    return out
