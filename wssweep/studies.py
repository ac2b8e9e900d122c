"""The seed papers' studies (``sweeps/``) and ``docs/results.md``, written from their runs.

Each study is a sweep spec in ``sweeps/`` plus, here, what its paper found and how to compare a
run with it: ``compare`` reads the run's per-setting summary (``wssweep.gapmap``) and returns
``agree``, ``disagree`` or ``unclear`` with a paragraph whose every number comes from the run.
``write_results`` picks the newest finished, full-size (not ``--smoke``) run of each study from
the directories it is given and writes the page and its figures::

    wssweep results runs/ --out docs/results.md

Example:
    >>> sorted(STUDIES)[:3]
    ['ash_adams_batch', 'ash_adams_online', 'dash']
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wssweep.cells import DASH, mapping_cell, mapping_text, missing
from wssweep.comparisons import against_reference
from wssweep.errors import InputError
from wssweep.files import atomic_write
from wssweep.gapmap import (
    RunData,
    cell_text,
    count_trials,
    geomean,
    mean_of,
    paired_ci,
    parse_value,
    read_run,
    summarize_run,
    to_float,
    trial_outcome,
)
from wssweep.record import RESULTS_FILE, SWEEP_FILE, RunDir
from wssweep.sequential import Plan, seed_of
from wssweep.verdicts import DEFAULT_ALPHA, PLANNING_POWER, VERDICTS, seeds_to_decide

FIGURE_DIR = "figures"  # beside results.md
# DASH's factors spread less than this (min to max): every one at the floor, i.e. uniform shrinking
DASH_UNIFORM_SPREAD = 0.02
MAX_FIGURE_BYTES = 1_000_000  # a figure in docs/ must stay well under 1 MB
# Ash & Adams (2020), Table 1: logistic regression's warm-start gaps are at most 0.9 points
PAPER_LOGREG_MAX_GAP = 0.9
MAX_UNDECIDED_LISTED = 6  # undecided settings a section names, closest to decided first
SHOWN_SEEDS = 1000  # beyond this, "more than 1000 seeds": the estimate is not that precise


@dataclass
class StudyRun:
    """One finished run of a study: its trials, per-setting summary and wall time."""

    data: RunData
    rows: list[dict[str, Any]]  # summary rows (``wssweep.gapmap.summarize_run``)
    wall_seconds: float | None

    @property
    def run_dir(self) -> Path:
        return self.data.run_dir

    def value(self, row: dict[str, Any], key: str, default: Any = None) -> Any:
        """A swept value of a summary or trial row, parsed; ``default`` when not swept. A key
        inside a swept mapping (``warm.intervention`` of a swept ``warm``) is looked up in it."""
        if key in row:
            return parse_value(cell_text(row[key]))
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            node: Any = mapping_cell(row.get(".".join(parts[:cut])))
            if node is None:
                continue
            for part in parts[cut:]:
                if not isinstance(node, dict) or part not in node:
                    return default
                node = node[part]
            return node
        return default

    def fixed(self, key: str, default: Any = None) -> Any:
        """A key of the run's experiment (before any setting), e.g. ``optim.name``."""
        node: Any = self.data.sweep.experiment
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def select(self, **where: Any) -> list[dict[str, Any]]:
        """Summary rows whose swept keys (``__`` for ``.``) equal the given values."""
        def match(row: dict[str, Any]) -> bool:
            return all(_same(self.value(row, k.replace("__", ".")), v) for k, v in where.items())
        return [r for r in self.rows if match(r)]

    def trials(self, row: dict[str, Any]) -> list[dict[str, str]]:
        """The trials (results.csv rows) of one summary row's setting."""
        keys = self.data.swept
        return [t for t in self.data.rows
                if all(_same(parse_value(cell_text(t.get(k))), row[k]) for k in keys)]

    def per_seed(self, row: dict[str, Any], metric: str) -> dict[int, float]:
        """``metric`` of each valid trial of ``row``'s setting, by seed."""
        out = {}
        for t in self.trials(row):
            value = to_float(t.get(metric))
            if trial_outcome(t, self.data.quantity) == "succeeded" and math.isfinite(value):
                out[int(float(t["seed"]))] = value
        return out


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return str(a) == str(b)


@dataclass(frozen=True)
class Study:
    """What a study asks, what its paper found, and how a run is compared with it."""

    stem: str  # sweeps/<stem>.yaml
    title: str
    paper: str
    finding: str  # the paper's finding, in one or two sentences
    compare: Callable[[StudyRun], tuple[str, str]]
    table: Callable[[StudyRun], str] | None = None  # default: the verdict table
    figure: Callable[[StudyRun, Path], Path] | None = None  # default: a plot of the map
    key_plot: str = ""  # that plot's file in RUN_DIR/map/; default the first heatmap or line
    figure_note: str = ""


# ----------------------------------------------------------------------------------------------
# Formatting


def fmt(x: float, digits: int = 1, signed: bool = False) -> str:
    """A number for the page; a missing or infinite one as an em dash."""
    if missing(x, infinite=True):
        return DASH
    x = round(x, digits) + 0.0  # a mean that rounds to zero is 0.0, never -0.0
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_ci(mean: float, lo: float, hi: float, digits: int = 1, signed: bool = True) -> str:
    """``+1.2 [+0.3, +2.1]``; without an interval (fewer than 2 seeds), the mean alone."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return fmt(mean, digits, signed)
    return f"{fmt(mean, digits, signed)} [{fmt(lo, digits, signed)}, {fmt(hi, digits, signed)}]"


def fmt_lr(x: float) -> str:
    return DASH if missing(x, infinite=True) else f"{x:.2g}"


def _label(run: StudyRun, row: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    keys = keys if keys is not None else varying_keys(run)
    # A swept mapping's own keys name its values (``intervention dash, keep_optimizer True``).
    return ", ".join(_val(row[k]) if mapping_cell(row[k]) is not None
                     else f"{_short(k)} {_val(row[k])}" for k in keys)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _values_text(values: Sequence[Any]) -> str:
    """A parameter's values in a sentence; mappings (which hold commas) each in parentheses."""
    return ("; " if any(mapping_cell(v) is not None for v in values) else ", ").join(
        f"({_val(v)})" if mapping_cell(v) is not None else _val(v) for v in values)


def _val(value: Any) -> str:
    if (mapping := mapping_cell(value)) is not None:
        return mapping_text(mapping, _val)
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def varying_keys(run: StudyRun) -> list[str]:
    """The swept keys that take more than one value in the run."""
    return [k for k in run.data.swept if len({cell_text(r[k]) for r in run.rows}) > 1]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def inert(run: StudyRun, row: dict[str, Any], key: str) -> bool:
    """Whether swept ``key`` means nothing in ``row``'s setting (e.g. ``shrink`` of a plain warm
    start): another of its values gives the same experiment (``ExperimentConfig.canonical``)."""
    from wssweep.spec import experiment_from_mapping

    params = run.data.spec.get("parameters", {})
    others = [v for v in params.get(key, {}).get("values", []) if not _same(v, row[key])]
    if not others:
        return False
    setting = {k: row[k] for k in run.data.swept}
    experiment = run.data.sweep.experiment
    try:
        here = experiment_from_mapping(experiment, setting=setting).canonical()
        there = experiment_from_mapping(experiment, setting={**setting, key: others[0]})
    except InputError:
        return False
    return here == there.canonical()


def verdict_table(run: StudyRun) -> str:
    """One line per setting: the gap with its 95 % CI, seeds, verdict, steps saved, accuracies.
    A swept value that its setting never reads is shown as "–"."""
    keys = varying_keys(run)
    judged = judged_apart(run)
    header = [_short(k) for k in keys] + ["gap (points) [95 % CI]"] + (
        ["vs reference cold [95 % CI]"] if judged else []) + [
        "seeds ok / run", "verdict", "saving (cold/warm steps)", "warm acc", "cold acc"]
    body = []
    for r in run.rows:
        body.append(["–" if inert(run, r, k) else _val(r[k]) for k in keys] + [
            fmt_ci(r["gap_mean"], r["gap_lo"], r["gap_hi"])] + (
            [fmt_ci(r["ref_gap_mean"], r["ref_gap_lo"], r["ref_gap_hi"])] if judged else []) + [
            f"{r['n_seeds']} / {r['n_trials']}",
            r["verdict"], fmt_ci(r["saving_mean"], r["saving_lo"], r["saving_hi"], 2, False),
            fmt(r["warm/test_acc"]), fmt(r["cold/test_acc"])])
    return markdown_table(header, body)


def judged_apart(run: StudyRun) -> bool:
    """Whether some setting's verdict judges a gap other than the one to its own cold arm (the
    reference cold start is another recipe): the table then shows both."""
    return any(math.isfinite(to_float(r.get("ref_gap_mean"))) and
               not math.isclose(to_float(r["ref_gap_mean"]), to_float(r["gap_mean"]),
                                abs_tol=1e-9) for r in run.rows)


def seeds_ran(run: StudyRun) -> list[int]:
    """The distinct seeds the run's trials ran, in order."""
    return sorted({seed_of(t) for t in run.data.rows if cell_text(t.get("seed"))})


def decided_text(run: StudyRun) -> str:
    """How many settings the run decided, which stayed undecided, and how many seeds each of
    those would need (``wssweep.verdicts.seeds_to_decide`` at the level each setting is tested
    at: the error rate over the judged settings). Empty for a run without a gap."""
    if run.data.metric != "gap" or not run.rows:
        return ""
    judged = [r for r in run.rows if r["verdict"] not in ("failed", "unconverged")]
    undecided = [r for r in judged if r["verdict"] == "inconclusive"]
    counts = {v: sum(r["verdict"] == v for r in run.rows) for v in VERDICTS}
    plan = run.data.sweep.seed_plan
    seeds = seeds_ran(run)
    later = Plan(plan.min_seeds, plan.max_seeds).looks[1:] if plan is not None else []
    how = (f"seeds added until decided ({plan.min_seeds} everywhere"
           + (f", then looks at {', '.join(map(str, later))} seeds where undecided)" if later
              else ", the only look)") if plan is not None else f"a fixed {len(seeds)} seeds")
    text = (f"**Decided.** {len(judged) - len(undecided)} of {len(run.rows)} settings, with "
            f"{how}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".")
    if undecided:
        # Each setting's share of the error rate: the sequential design splits it over every
        # setting of the run (Bonferroni), Holm over the settings it judges.
        family = len(run.rows) if plan is not None else len(judged)
        level = DEFAULT_ALPHA / family
        needs = []
        for r in undecided:
            diffs = against_reference(run.trials(r), run.data.reference).diffs
            needs.append((seeds_to_decide(diffs, run.data.tolerance, level), len(diffs), r))
        needs.sort(key=lambda x: (x[0] if math.isfinite(x[0]) else math.inf, _label(run, x[2])))

        def need_text(n: float) -> str:
            return (f"about {n} seeds" if n <= SHOWN_SEEDS else f"more than {SHOWN_SEEDS}"
                    if math.isfinite(n) else "out of reach (its gap sits on the tolerance)")

        shown = [f"{_label(run, r) or 'the setting'} at "
                 f"{fmt_ci(r['ref_gap_mean'], r['ref_gap_lo'], r['ref_gap_hi'])} after {k} "
                 f"seeds: {need_text(n)}" for n, k, r in needs[:MAX_UNDECIDED_LISTED]]
        rest = needs[MAX_UNDECIDED_LISTED:]
        if rest:
            shown.append(f"and {len(rest)} more, each needing {need_text(rest[0][0])} or more")
        text += (f" Undecided, closest first: {'; '.join(shown)}. Seeds needed: those at which "
                 f"a one-sided t-test at {level:.2g} (the {DEFAULT_ALPHA:g} error rate over "
                 f"{family} settings) decides with {PLANNING_POWER * 100:.0f} % "
                 "power, were the true gap the one observed: a planning estimate, and a lower "
                 "bound for a design that spends its error rate over several looks.")
    return text


# ----------------------------------------------------------------------------------------------
# The comparisons, one per study. Each returns (agree | disagree | unclear, paragraph).


def _ci_text(r: dict[str, Any]) -> str:
    return f"{fmt_ci(r['gap_mean'], r['gap_lo'], r['gap_hi'])} points ({r['n_seeds']} seeds)"


def init_weight_stds(run: StudyRun) -> list[float]:
    """The std of each weight matrix of the run's model as freshly initialised: the scale of
    shrink-and-perturb's ``fresh_init`` noise, layer by layer (its ``gaussian`` noise has 1)."""
    import torch

    from wssweep.config import ExperimentConfig
    from wssweep.science.experiment import load_experiment_data
    from wssweep.science.models import build_model

    cfg = ExperimentConfig.model_validate(run.data.sweep.experiment)
    data = load_experiment_data(cfg, torch.device("cpu"))
    model = build_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes,
                        seed=0)
    return [float(p.detach().std()) for name, p in model.named_parameters()
            if name.endswith("weight") and p.ndim >= 2]


def _noise_scales(run: StudyRun) -> str:
    """How the two noise conventions of the run compare in scale, or nothing if it has one."""
    noises = {cell_text(t.get("warm.noise")) for t in run.data.rows}
    if not {"fresh_init", "gaussian"} <= noises:
        return ""
    stds = init_weight_stds(run)
    lo, hi = min(stds), max(stds)
    sigma = max(to_float(t.get("warm.perturb")) for t in run.data.rows)
    return (f" The two noise conventions differ in scale: ε from a fresh init has a std of "
            f"{fmt(lo, 3)}–{fmt(hi, 3)} per weight matrix of this model, ε from N(0, 1) of 1, so "
            f"at the same σ the Gaussian noise is {fmt(1 / hi, 0)}–{fmt(1 / lo, 0)}× larger; at "
            f"σ = {fmt(sigma, 2)} it is {fmt(sigma / hi, 1)}–{fmt(sigma / lo, 1)}× the size of "
            "a whole fresh init.")


def compare_online(run: StudyRun) -> tuple[str, str]:
    plain = run.select(shrink=1.0, warm__perturb=0.0)
    if not plain:
        return "unclear", "The run has no plain warm start (shrink 1, perturb 0) to compare with."
    plain = plain[0]
    gap_exists = plain["gap_lo"] > 0
    others = [r for r in run.rows if r is not plain and math.isfinite(r["gap_mean"])]
    narrower = [r for r in others if r["gap_mean"] < plain["gap_mean"]]
    closed = [r for r in others if r["verdict"] in ("closed", "better")]
    saving = [r for r in narrower if r["saving_mean"] > 1]
    best = min(others, key=lambda r: r["gap_mean"]) if others else None
    text = (f"The plain warm start ends {_ci_text(plain)} below the cold start"
            f"{'' if gap_exists else ' (the interval includes 0)'}. "
            f"{len(narrower)} of {len(others)} shrink-and-perturb settings have a smaller mean "
            f"gap, {len(closed)} closed (significantly below {run.data.tolerance:g} points, "
            f"corrected across settings), and {len(saving)} of the narrower ones still take fewer "
            "steps than the cold start.")
    if best is not None:
        text += (f" The smallest gap is at {_label(run, best)}: {_ci_text(best)}, at "
                 f"{fmt(best['saving_mean'], 2)}x fewer steps than cold.")
    text += _noise_scales(run)
    agree = gap_exists and len(narrower) > len(others) / 2 and len(saving) > len(narrower) / 2
    if agree:
        return "agree", text
    if not gap_exists and plain["gap_mean"] <= 0 or len(narrower) < len(others) / 2:
        return "disagree", text
    return "unclear", text


def compare_batch(run: StudyRun) -> tuple[str, str]:
    parts, score = [], []
    opt_name = run.fixed("optim.name", "sgd")
    for opt in sorted({run.value(r, "optim.name", opt_name) for r in run.rows}):
        where = {"optim__name": opt} if "optim.name" in run.data.swept else {}
        mlp = run.select(model__name="mlp", **where)
        lin = run.select(model__name="logreg", **where)
        if not mlp or not lin:
            continue
        mlp, lin = mlp[0], lin[0]
        mlp_gap = mlp["gap_lo"] > 0
        # "No gap" for the convex model: no warm-start penalty, i.e. the CI reaches 0 or below.
        lin_none = lin["gap_lo"] <= 0
        lin_text = ("its CI includes 0" if lin["gap_hi"] >= 0 and lin_none else
                    "the warm start is, if anything, better" if lin_none else
                    "a warm-start penalty, but within the paper's largest for logistic "
                    f"regression ({PAPER_LOGREG_MAX_GAP:g} points)"
                    if lin["gap_hi"] <= PAPER_LOGREG_MAX_GAP else "a warm-start penalty")
        score.append(mlp_gap + lin_none)
        parts.append(f"With {opt}, the MLP's gap is {_ci_text(mlp)}, "
                     f"{'above 0' if mlp_gap else 'not above 0'}; logistic regression's is "
                     f"{_ci_text(lin)}: {lin_text}.")
    text = " ".join(parts)
    if score and all(s == 2 for s in score):
        return "agree", text
    if score and all(s == 0 for s in score):
        return "disagree", text
    return "unclear", text


def compare_dash(run: StudyRun) -> tuple[str, str]:
    warm = run.select(warm__intervention="none")
    dash = run.select(warm__intervention="dash")
    sp = run.select(warm__intervention="shrink_perturb")
    if not warm or not dash:
        return "unclear", "The run lacks the warm or the DASH settings."
    def optimizer(r: dict[str, Any]) -> str:
        kept = str(run.value(r, "warm.keep_optimizer", run.fixed("warm.keep_optimizer")))
        return "kept" if kept.lower() == "true" else "reset"

    warm_text = "; ".join(f"optimizer {optimizer(r)}: {_ci_text(r)}" for r in warm)
    best_dash = min(dash, key=lambda r: r["gap_mean"])
    best_sp = min(sp, key=lambda r: r["gap_mean"]) if sp else None
    warm_behind = all(r["gap_lo"] > 0 for r in warm)
    dash_matches = best_dash["gap_hi"] <= run.data.tolerance
    dash_cheaper = best_dash["saving_mean"] > 1
    twin = [r for r in warm if optimizer(r) == optimizer(best_dash)]
    text = (f"Cold minus warm: {warm_text}. The best DASH setting ({_label(run, best_dash)}) "
            f"is at {_ci_text(best_dash)} with {fmt(best_dash['saving_mean'], 2)}x fewer steps "
            "than cold")
    if twin:
        text = text.replace(" with ", f" (the warm start with its optimizer {optimizer(twin[0])} "
                            f"is at {fmt(twin[0]['gap_mean'], 1, True)}) with ", 1)
    if best_sp is not None:
        text += (f"; the best shrink-and-perturb ({_label(run, best_sp)}) at {_ci_text(best_sp)}, "
                 f"{fmt(best_sp['saving_mean'], 2)}x")
    for name, label in (("reset_last_layer", "last-layer reset"), ("l2_init", "L2-init")):
        rows = run.select(warm__intervention=name)
        if rows:
            best = min(rows, key=lambda r: r["gap_mean"])
            text += f"; {label} at {_ci_text(best)}, {fmt(best['saving_mean'], 2)}x"
    text += "."
    text += _dash_factors(run, best_dash)
    text += (" DASH ≥ cold holds: its interval's upper end is within the tolerance." if dash_matches
             else f" DASH ≥ cold is not shown: the upper end of its interval is above "
             f"{run.data.tolerance:g} points." if best_dash["gap_lo"] <= 0 else
             " DASH stays below the cold start: its interval excludes 0.")
    if warm_behind and dash_matches and dash_cheaper:
        return "agree", text
    if not warm_behind and all(r["gap_hi"] < 0 for r in warm) or best_dash["gap_lo"] > 0:
        return "disagree", text
    return "unclear", text


def _paired_change(run: StudyRun, row: dict[str, Any], base: dict[str, Any],
                   metric: str = "gap") -> tuple[float, float, float]:
    """``row``'s ``metric`` minus ``base``'s, paired by seed: (mean, lo, hi) of the 95 % CI."""
    mine, theirs = run.per_seed(row, metric), run.per_seed(base, metric)
    both = sorted(set(mine) & set(theirs))
    return paired_ci([mine[s] - theirs[s] for s in both])


def _dash_factors(run: StudyRun, row: dict[str, Any]) -> str:
    """What DASH's per-neuron factors did in ``row``'s trials (their last stage, over seeds):
    where they all sit at the floor λ, DASH is uniform shrinking and the study says so."""
    trials = run.trials(row)
    means = [to_float(t.get("warm/dash_factor_mean")) for t in trials]
    lows = [to_float(t.get("warm/dash_factor_min")) for t in trials]
    highs = [to_float(t.get("warm/dash_factor_max")) for t in trials]
    means, lows, highs = ([v for v in vs if math.isfinite(v)] for vs in (means, lows, highs))
    if not means:
        return " The run did not record DASH's factors."
    low, high = min(lows), max(highs)
    text = (f" DASH's factors at the last stage: mean {fmt(statistics.fmean(means), 2)}, from "
            f"{fmt(low, 2)} to {fmt(high, 2)} over every layer and seed")
    if high - low < DASH_UNIFORM_SPREAD:
        return text + ": all at the floor, so DASH acts here as uniform shrinking by λ."
    return text + "."


def compare_two_regime(run: StudyRun) -> tuple[str, str]:
    """Leclerc & Madry's reading (a large-step *phase*, then small steps, is what generalizes)
    against the plainer one (a larger *rate* is all it takes), per small rate: the best
    two-regime setting's gap, paired by seed, against the small rate alone (``switch_step`` 0)
    and against the large rate held constant (``optim.schedule: constant``). Agree: the phase
    beats both; disagree: it beats neither, or the constant large rate does better; unclear
    where the two readings cannot be told apart."""
    two = [r for r in run.rows if run.value(r, "optim.schedule", "two_regime") == "two_regime"]
    constant = [r for r in run.rows if run.value(r, "optim.schedule") == "constant"]
    large = constant[0] if constant else None
    parts, verdicts = [], []
    if large is not None:
        parts.append(f"The large rate held constant leaves {_ci_text(large)} (warm "
                     f"{fmt(large['warm/test_acc'])} %, cold {fmt(large['cold/test_acc'])} %).")
    for ratio in sorted({run.value(r, "optim.ratio") for r in two}, reverse=True):
        rows = sorted([r for r in two if _same(run.value(r, "optim.ratio"), ratio)],
                      key=lambda r: run.value(r, "optim.switch_step"))
        small = [r for r in rows if run.value(r, "optim.switch_step") == 0]
        phased = [r for r in rows if run.value(r, "optim.switch_step") > 0]
        if not small or not phased:
            continue
        small = small[0]
        diffs = [(r, _paired_change(run, r, small)) for r in phased]
        best, (m, lo, hi) = min(diffs, key=lambda d: d[1][0])
        switch = run.value(best, "optim.switch_step")
        parts.append(f"At small rate {ratio:g} x lr, the small-step phase alone leaves "
                     f"{_ci_text(small)} (warm {fmt(small['warm/test_acc'])} %, cold "
                     f"{fmt(small['cold/test_acc'])} %); with {switch} large steps first the "
                     f"gap is {_ci_text(best)} (warm "
                     f"{fmt(best['warm/test_acc'])} %), a paired change of {fmt_ci(m, lo, hi)} "
                     "points.")
        if small["gap_hi"] <= run.data.tolerance:
            # No gap to close at this ratio: the small step hurt the cold start as much.
            parts.append("At this ratio the small-step phase alone leaves no warm-start gap to "
                         "close, so it does not test the claim.")
            continue
        beats_small, no_better = hi < 0, lo >= 0
        if large is None:
            verdicts.append("agree" if beats_small else "disagree" if no_better else "unclear")
            continue
        lm, llo, lhi = _paired_change(run, best, large)
        parts.append(f"Against the constant large rate the phase changes the gap by "
                     f"{fmt_ci(lm, llo, lhi)} points.")
        if beats_small and lhi < 0:
            parts.append("The data support the large-step phase: it beats both the small rate "
                         "alone and the large rate throughout.")
            verdicts.append("agree")
        elif no_better or llo > 0:
            parts.append("The data do not support a large-step phase: "
                         + ("it does not narrow the small rate's gap." if no_better else
                            "the large rate throughout does better."))
            verdicts.append("disagree")
        elif beats_small:
            parts.append("A larger rate explains it as well as a large-step phase: the data "
                         "cannot tell the two readings apart.")
            verdicts.append("unclear")
        elif lhi < 0:
            # The seeds-until-decided design stops a decided setting early: the pair shares few.
            parts.append("The phase beats the large rate held constant, but its change against "
                         "the small rate alone is not shown on the seeds both ran: the reading "
                         "is not yet decided.")
            verdicts.append("unclear")
        else:
            parts.append("Neither change is shown: the data cannot tell the two readings apart.")
            verdicts.append("unclear")
    if large is None and verdicts:
        parts.append("The run has no constant large-rate control, so a larger rate would explain "
                     "the change as well.")
        verdicts = ["unclear" if v == "agree" else v for v in verdicts]
    text = " ".join(parts)
    if verdicts and all(v == "agree" for v in verdicts):
        return "agree", text
    if verdicts and all(v == "disagree" for v in verdicts):
        return "disagree", text
    return "unclear", text


def compare_four_axes(run: StudyRun) -> tuple[str, str]:
    """Which combination of the four axes closes the gap most cheaply, judged against the
    reference cold start (the verdicts: a setting's own cold arm trains at its own rate and
    warmup, so a small same-recipe gap can be a weak cold arm). Agree: some setting closes it
    against the reference; disagree: every setting's gap to the reference is significantly
    above the tolerance (verdict ``open``); unclear otherwise."""
    if not run.rows:
        return "unclear", "The run has no finished setting yet."
    closed = [r for r in run.rows if r["verdict"] in ("closed", "better")]
    ranked = sorted(closed, key=lambda r: -r["saving_mean"] if math.isfinite(r["saving_mean"])
                    else math.inf)
    judged = [r for r in run.rows if math.isfinite(r.get("ref_gap_mean", math.nan))]
    best = min(judged or run.rows, key=lambda r: r.get("ref_gap_mean", math.nan)
               if math.isfinite(r.get("ref_gap_mean", math.nan)) else math.inf)
    n_seeds = len({t["seed"] for t in run.data.rows})
    text = (f"Optuna tried {len(run.rows)} settings on {n_seeds} seeds. "
            f"{len(closed)} close the gap to the reference cold start (significantly below "
            f"{run.data.tolerance:g} points, corrected across settings).")
    # A same-recipe gap that is small only because that setting's cold arm is weak: say so.
    weak = [r for r in run.rows if r["verdict"] not in ("closed", "better")
            and math.isfinite(r["gap_mean"]) and r["gap_hi"] <= run.data.tolerance]
    if weak:
        text += (f" {len(weak)} more look closed against their own cold arm only (its rate "
                 "and warmup weaken it), not against the reference.")
    if ranked:
        top = ranked[0]
        text += (f" The cheapest is {_label(run, top)}: {_ref_ci_text(top)} against the "
                 f"reference, {fmt(top['saving_mean'], 2)}x fewer steps than the cold start.")
        return "agree", text
    text += f" The smallest gap to the reference is at {_label(run, best)}: {_ref_ci_text(best)}."
    if run.rows and all(r["verdict"] == "open" for r in run.rows):
        return "disagree", text
    return "unclear", text


def _ref_ci_text(r: dict[str, Any]) -> str:
    """The gap to the reference cold start with its 95 % CI."""
    return fmt_ci(r.get("ref_gap_mean", math.nan), r.get("ref_gap_lo", math.nan),
                  r.get("ref_gap_hi", math.nan))


# NQM and meta-horizon -------------------------------------------------------------------------


def _nqm_rows(run: StudyRun) -> list[tuple[int, dict[str, Any], float]]:
    """(H, summary row, geometric mean of the rate in force mid-run) by H."""
    out = []
    for r in sorted(run.rows, key=lambda r: r["meta_horizon"]):
        lrs = list(run.per_seed(r, "nqm/lr_mid").values())
        out.append((int(r["meta_horizon"]), r, geomean(lrs)))
    return out


def table_nqm(run: StudyRun) -> str:
    body = [[str(h), fmt_lr(lr), fmt_ci(r["metric_mean"], r["metric_lo"], r["metric_hi"], 3, False),
             f"{r['n_seeds']} / {r['n_trials']}"]
            for h, r, lr in _nqm_rows(run)]
    return markdown_table(["horizon H (steps)", "rate at step 5,000", "final E[L] [95 % CI]",
                           "seeds ok / run"], body)


def compare_nqm(run: StudyRun) -> tuple[str, str]:
    rows = _nqm_rows(run)
    (h0, r0, lr0), (h1, r1, lr1) = rows[0], rows[-1]
    ratio = lr1 / lr0
    # Intervals where both horizons have one; a horizon with a single seed has only its mean.
    both = math.isfinite(r0["metric_lo"]) and math.isfinite(r1["metric_hi"])
    worse = (r0["metric_lo"] > r1["metric_hi"] if both
             else r0["metric_mean"] > r1["metric_mean"])
    text = (f"At H = {h0} the rate in force mid-run is {fmt_lr(lr0)}, at H = {h1} it is "
            f"{fmt_lr(lr1)}: {ratio:.1f}x larger. The final expected loss is "
            f"{fmt(r0['metric_mean'], 3)} at H = {h0} against {fmt(r1['metric_mean'], 3)} at "
            f"H = {h1}.")
    if ratio >= 10 and worse:
        return "agree", text
    if ratio <= 1 or not worse:
        return "disagree", text
    return "unclear", text


def _candidate_grid(run: StudyRun, row: dict[str, Any]) -> tuple[float, float]:
    """The meta-horizon's lowest and highest candidate rate of a setting (swept, or the run's
    experiment's)."""
    from wssweep.config import ExperimentConfig

    warm = ExperimentConfig.model_validate(run.data.sweep.experiment).warm
    return (float(run.value(row, "warm.meta_lr_min", warm.meta_lr_min)),
            float(run.value(row, "warm.meta_lr_max", warm.meta_lr_max)))


def _at_edge(run: StudyRun, row: dict[str, Any]) -> tuple[int, int]:
    """How many of a setting's per-stage chosen rates are the grid's lowest or highest
    candidate (a choice the grid may have cut short), and how many were chosen."""
    lo, hi = _candidate_grid(run, row)
    edge = total = 0
    for t in run.trials(row):
        if not t.get("warm/stage_lr") or int(float(t.get("warm/meta_steps") or 0)) == 0:
            continue
        for rate in json.loads(t["warm/stage_lr"])[1:]:  # stage 1 trains at the config's rate
            total += 1
            edge += any(math.isclose(rate, b, rel_tol=1e-6) for b in (lo, hi))
    return edge, total


def _mean_of_trials(run: StudyRun, row: dict[str, Any], metric: str) -> float:
    return mean_of([to_float(t.get(metric)) for t in run.trials(row)
                    if math.isfinite(to_float(t.get(metric)))])


def _horizon_stats(run: StudyRun) -> list[dict[str, Any]]:
    out = []
    for r in sorted(run.rows, key=lambda r: r["meta_horizon"]):
        chosen = run.per_seed(r, "gap_chosen")
        lrs = list(run.per_seed(r, "lr_chosen").values())
        out.append({"H": int(r["meta_horizon"]), "row": r, "chosen": paired_ci(list(
            chosen.values())), "lr": geomean(lrs), "edge": _at_edge(run, r),
            "steps": (_mean_of_trials(run, r, "warm/steps"),
                      _mean_of_trials(run, r, "cold/steps"))})
    return out


def table_horizon(run: StudyRun) -> str:
    body = []
    for s in _horizon_stats(run):
        r = s["row"]
        edge, total = s["edge"]
        warm_steps, cold_steps = s["steps"]
        body.append([str(s["H"]) + (" (off)" if s["H"] == 0 else ""), fmt_lr(s["lr"]),
                     f"{edge} / {total}" if total else DASH,
                     fmt_ci(r["gap_mean"], r["gap_lo"], r["gap_hi"]), fmt_ci(*s["chosen"]),
                     f"{fmt(warm_steps, 0)} / {fmt(cold_steps, 0)}",
                     f"{r['n_seeds']} / {r['n_trials']}", r["verdict"],
                     fmt(r["warm/test_acc"]), fmt(r["cold/test_acc"])])
    return markdown_table(["H (steps)", "chosen rate", "at the grid's edge (stages)",
                           "gap vs cold at 1e-3 [95 % CI]", "gap vs cold at the chosen rate",
                           "steps warm / cold", "seeds ok / run", "verdict", "warm acc",
                           "cold acc"], body)


def compare_horizon(run: StudyRun) -> tuple[str, str]:
    stats = [s for s in _horizon_stats(run) if s["H"] > 0]
    if len(stats) < 2:
        return "unclear", "Fewer than two horizons above 0 finished."
    short, long = stats[0], stats[-1]
    ratio = long["lr"] / short["lr"]
    text = (f"The chosen rate is {fmt_lr(short['lr'])} at H = {short['H']} and "
            f"{fmt_lr(long['lr'])} at H = {long['H']} ({ratio:.1f}x). Against the cold baseline "
            f"the gap is {_ci_text(short['row'])} at H = {short['H']} and "
            f"{_ci_text(long['row'])} at H = {long['H']}; against a cold start at the chosen "
            f"rate it is {fmt_ci(*short['chosen'])} and {fmt_ci(*long['chosen'])} points.")
    cut = [s for s in stats if s["edge"][1] and s["edge"][0] * 2 > s["edge"][1]]
    if cut:
        grid_lo, grid_hi = _candidate_grid(run, cut[0]["row"])
        text += (f" At H = {', '.join(str(s['H']) for s in cut)} most chosen rates are at the "
                 f"edge of the candidate grid ({fmt_lr(grid_lo)} .. {fmt_lr(grid_hi)}): the "
                 "horizon would choose beyond it, so the grid should be widened.")
    steps = [(s["H"], *s["steps"]) for s in stats]
    text += (" Warm against cold steps after stage 1 (meta-horizon candidates included): "
             + "; ".join(f"H = {h}: {fmt(w, 0)} / {fmt(c, 0)}" for h, w, c in steps) + ".")
    lo, hi = short["chosen"][1:]
    if short["row"]["gap_lo"] > 0 and lo <= 0 <= hi:
        text += (f" At H = {short['H']} the gap against the baseline is the small rate's doing: a "
                 "cold start at that rate loses as much.")
    if long["row"]["gap_lo"] <= 0 <= long["row"]["gap_hi"] and long["chosen"][1] > 0:
        text += (f" At H = {long['H']} the larger chosen rate brings the warm start level with "
                 "the baseline, but a cold start at that same rate does better still, so the "
                 "warm-start gap remains at the chosen rate.")
    if ratio >= 3:
        return "agree", text
    if ratio <= 1:
        return "disagree", text
    return "unclear", text


def figure_horizon(run: StudyRun, path: Path) -> Path:
    import matplotlib.pyplot as plt

    stats = _horizon_stats(run)
    xs = [max(s["H"], 1) for s in stats]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=100)
    for key, label, color in (("row", "vs cold at lr 1e-3", "C0"),
                              ("chosen", "vs cold at the chosen rate", "C1")):
        if key == "row":
            m = [s["row"]["gap_mean"] for s in stats]
            lo = [s["row"]["gap_lo"] for s in stats]
            hi = [s["row"]["gap_hi"] for s in stats]
        else:
            m, lo, hi = zip(*[s["chosen"] for s in stats], strict=True)
        err = np.array([np.subtract(m, lo), np.subtract(hi, m)])
        ax1.errorbar(xs, m, yerr=np.nan_to_num(err), marker="o", capsize=3, label=label,
                     color=color)
    ax1.axhline(0, color="grey", lw=0.8)
    ax1.set(xscale="log", xlabel="horizon H (steps; 1 = off)", ylabel="gap (points)",
            title="gap, 95 % CI")
    ax1.legend(fontsize=8)
    ax2.plot(xs, [s["lr"] for s in stats], marker="o")
    ax2.set(xscale="log", yscale="log", xlabel="horizon H (steps; 1 = off)",
            ylabel="chosen Adam rate", title="rate chosen (geometric mean)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# Warmup ---------------------------------------------------------------------------------------


def _recipe(run: StudyRun, row: dict[str, Any]) -> str:
    opt = run.value(row, "optim.name")
    steps = int(run.value(row, "warmup_steps", 0))
    start = run.value(row, "optim.warmup_init", 0.0)
    if steps == 0:
        return f"{opt}, no warmup"
    return f"{opt}, warmup {steps} from {'η_c' if start == 'catapult' else '0'}"


def _boundaries(run: StudyRun) -> dict[tuple[float, str], dict[str, Any]]:
    """Per (init_scale, recipe): trained lrs, failed lrs, the largest trained below any failure."""
    out: dict[tuple[float, str], dict[str, Any]] = {}
    for r in run.rows:
        key = (float(run.value(r, "model.init_scale", 1.0)), _recipe(run, r))
        entry = out.setdefault(key, {"ok": {}, "failed": set()})
        lr = float(r["lr"])
        if r["n_failed"] == 0 and r["n_seeds"] > 0:
            entry["ok"][lr] = r["metric_mean"]
        else:
            entry["failed"].add(lr)
    for entry in out.values():
        fails = sorted(entry["failed"])
        ok = sorted(entry["ok"])
        # The boundary: the largest rate that trains with no failing rate between it and the
        # smallest trained rate (a rate too small to learn in the budget is not the boundary).
        largest = None
        for lr in ok:
            if largest is None or not any(largest < f < lr for f in fails):
                largest = lr
        entry["largest"] = largest
        entry["first_fail"] = min((f for f in fails if largest is None or f > largest),
                                  default=None)
    return out


def _catapult_searches(run: StudyRun) -> tuple[list[float], int]:
    """The shares of warmup a catapult start skips, η_c / η_trgt, from the searches that found a
    catapult (a start at the target or at its tenth is no η_c), and how many searches ran.

    A run from before ``warm/stage_catapult_outcome`` was kept marks its fallback by the rate
    alone: exactly η_trgt / 10.
    """
    shares: list[float] = []
    searches = 0
    for t in run.data.rows:
        if cell_text(t.get("optim.warmup_init")) != "catapult" or not t.get(
                "warm/stage_catapult_lr"):
            continue
        lr = to_float(t.get("lr"))
        rates = json.loads(t["warm/stage_catapult_lr"])
        outcomes = (json.loads(t["warm/stage_catapult_outcome"])
                    if t.get("warm/stage_catapult_outcome") else
                    ["none" if math.isclose(c, lr / 10, rel_tol=1e-9) else "catapult"
                     for c in rates])
        searches += len(rates)
        shares += [min(c / lr, 1.0) for c, how in zip(rates, outcomes, strict=True)
                   if how in ("catapult", "at_start")]
    return shares, searches


def _spreads(b: dict[tuple[float, str], dict[str, Any]]) -> tuple[float, float]:
    """Mean accuracy range across recipes at a fixed (init, optimizer, rate), and across rates
    for a fixed recipe, over rates at least 3x below the recipe's first failing rate."""
    safe: dict[tuple[float, str], dict[float, float]] = {}
    for (scale, recipe), e in b.items():
        limit = e["first_fail"] / 3 if e["first_fail"] else math.inf
        safe[(scale, recipe)] = {lr: acc for lr, acc in e["ok"].items() if lr <= limit}
    across_lrs = [max(v.values()) - min(v.values()) for v in safe.values() if len(v) > 1]
    groups: dict[tuple[float, str, float], list[float]] = {}
    for (scale, recipe), accs in safe.items():
        for lr, acc in accs.items():
            groups.setdefault((scale, recipe.split(",")[0], lr), []).append(acc)
    across_recipes = [max(v) - min(v) for v in groups.values() if len(v) > 1]
    return mean_of(across_recipes), mean_of(across_lrs)


def table_warmup(run: StudyRun) -> str:
    body = []
    for (scale, recipe), e in sorted(_boundaries(run).items()):
        accs = ", ".join(f"{lr:g}: {acc:.1f}" for lr, acc in sorted(e["ok"].items()))
        body.append([f"{scale:g}", recipe, fmt_lr(e["largest"]) if e["largest"] else "none",
                     fmt_lr(e["first_fail"]) if e["first_fail"] else "none", accs or DASH])
    return markdown_table(["init scale", "recipe", "largest lr that trains",
                           "smallest lr above it that fails", "cold test acc by lr (all seeds "
                           "trained)"], body)


def compare_warmup(run: StudyRun) -> tuple[str, str]:
    b = _boundaries(run)
    moved, lines = [], []
    for scale in sorted({k[0] for k in b}):
        for opt in ("sgd", "adam"):
            none = b.get((scale, f"{opt}, no warmup"))
            wu = [v for (s, rec), v in b.items() if s == scale and rec.startswith(f"{opt}, warmup")
                  and "from 0" in rec]
            if not none or not wu:
                continue
            a, c = none["largest"] or 0.0, wu[0]["largest"] or 0.0
            moved.append((scale, opt, c > a))
            lines.append(f"{opt} at init x{scale:g}: {fmt_lr(a) if a else 'none'} without warmup, "
                         f"{fmt_lr(c) if c else 'none'} with it")
    gi = [v["largest"] or 0.0 for (s, rec), v in b.items() if rec == "gi_adam, no warmup"]
    adam_wu = [v["largest"] or 0.0 for (s, rec), v in b.items()
               if rec.startswith("adam, warmup") and "from 0" in rec]
    gi_like = bool(gi and adam_wu) and all(g >= a for g, a in zip(gi, adam_wu, strict=False))
    shares, searches = _catapult_searches(run)
    across_recipes, across_lrs = _spreads(b)
    text = ("Largest rate that trains: " + "; ".join(lines) + ". "
            f"Away from the boundary (rates at least 3x below the first that fails), accuracy "
            f"moves by {fmt(across_recipes)} points across warmup recipes at a fixed rate and by "
            f"{fmt(across_lrs)} points across rates for a fixed recipe (mean ranges). "
            f"GI-Adam without warmup reaches {', '.join(fmt_lr(g) for g in gi)} against Adam with "
            f"warmup's {', '.join(fmt_lr(a) for a in adam_wu)} (init scales in order). "
            f"{len(shares)} of the {searches} catapult searches found a catapult; starting the "
            f"warmup at its rate η_c skips on average {fmt(100 * mean_of(shares))} % of the "
            "warmup steps (η_c / target rate; the other searches start at the target or at its "
            "tenth, which are no η_c).")
    sharp = [m for s, _, m in moved if s > 1]
    if any(sharp) and gi_like:
        return "agree", text
    if moved and not any(m for _, _, m in moved):
        return "disagree", text
    return "unclear", text


def figure_warmup(run: StudyRun, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    scales = sorted({float(run.value(r, "model.init_scale", 1.0)) for r in run.rows})
    recipes = sorted({_recipe(run, r) for r in run.rows})
    lrs = sorted({float(r["lr"]) for r in run.rows})
    fig, axes = plt.subplots(1, len(scales), figsize=(1.8 + 3.6 * len(scales), 3.6), dpi=90,
                             squeeze=False, sharey=True)
    norm = Normalize(vmin=10, vmax=100)
    for k, (ax, scale) in enumerate(zip(axes[0], scales, strict=True)):
        grid = np.full((len(recipes), len(lrs)), np.nan)
        for r in run.rows:
            if float(run.value(r, "model.init_scale", 1.0)) != scale:
                continue
            i, j = recipes.index(_recipe(run, r)), lrs.index(float(r["lr"]))
            grid[i, j] = r["metric_mean"] if r["n_failed"] == 0 else np.nan
            if r["n_failed"]:
                ax.text(j, i, "x", ha="center", va="center", color="crimson", fontsize=11)
        im = ax.imshow(grid, cmap="viridis", norm=norm, aspect="auto")
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs], fontsize=8)
        if k == 0:
            ax.set_yticks(range(len(recipes)), recipes, fontsize=8)
        else:
            ax.tick_params(labelleft=False)
        ax.set(xlabel="target lr", title=f"init scale x{scale:g}")
    fig.colorbar(im, ax=axes[0].tolist(), label="cold test acc (%); x = a seed failed")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# The studies


STUDIES: dict[str, Study] = {s.stem: s for s in (
    Study("ash_adams_online", "The warm-start gap on online data, and shrink-and-perturb",
          "Ash & Adams, On Warm-Starting Neural Network Training (NeurIPS 2020)",
          "Warm-started networks generalize worse than cold-started ones (MLP on CIFAR-10, "
          "50 % → 100 %: 39.4 → 36.1 % with Adam); shrink-and-perturb (λ ≈ 0.6, σ = 0.01) "
          "matches the cold start's accuracy while training much faster.", compare_online,
          key_plot="heatmap_shrink_vs_warm.perturb.png"),
    Study("ash_adams_batch", "Convex vs non-convex: the 50 % → 100 % protocol",
          "Ash & Adams (NeurIPS 2020), Table 1",
          "A gap for the MLP (CIFAR-10: 39.0 → 37.4 with SGD, 39.4 → 36.1 with Adam, cold → "
          "warm) and almost none for logistic regression (gaps ≤ 0.9 points).", compare_batch,
          key_plot="heatmap_model.name_vs_optim.name.png"),
    Study("dash", "DASH against warm, reset, shrink-and-perturb and cold",
          "Shin et al., DASH: Warm-Starting Neural Network Training in Stationary Settings "
          "without Loss of Plasticity (NeurIPS 2024)",
          "DASH ≥ cold > warm in final test accuracy (CIFAR-10/100, Tiny-ImageNet, 50 chunks), "
          "with DASH needing fewer steps than the cold start.", compare_dash,
          key_plot="pareto.png"),
    Study("warmup_lr", "Warmup moves the failure boundary",
          "Kalra & Barkeshli, Why Warmup the Learning Rate? (NeurIPS 2024)",
          "Warmup lets training survive a larger target rate (WRN-16-4 / CIFAR-10, Adam: fails "
          "from 4.1e-2 without warmup, trains to 8.2e-2 with 1024 steps); away from the boundary "
          "accuracy depends mostly on the rate; GI-Adam without warmup matches Adam with warmup; "
          "starting the warmup at the catapult rate saves warmup steps.", compare_warmup,
          table=table_warmup, figure=figure_warmup,
          figure_note="Cells are the mean cold-arm test accuracy over seeds; x marks a setting "
          "where a seed failed (loss NaN/inf or train accuracy below 1.5x chance)."),
    Study("meta_horizon_nqm", "Short-horizon bias on the noisy quadratic model",
          "Wu, Ren, Liao & Grosse, Understanding Short-Horizon Bias in Stochastic "
          "Meta-Optimization (ICLR 2018)",
          "Rates chosen to minimise the loss a short horizon ahead are too small, by orders of "
          "magnitude even at T = 100, and end at a higher long-horizon loss.", compare_nqm,
          table=table_nqm, key_plot="line_meta_horizon.png"),
    Study("meta_horizon_warm", "Short-horizon meta-optimization of a warm stage's rate",
          "Wu et al. (ICLR 2018), applied to warm starting",
          "Short horizons choose rates that are too small (at least 10x at T = 100 on MNIST); "
          "the paper says nothing about warm starts, which is what this study adds.",
          compare_horizon, table=table_horizon, figure=figure_horizon,
          figure_note="Left: the gap against the cold baseline and against a cold start trained "
          "at the chosen rate, 95 % CI over seeds. Right: the rate chosen."),
    Study("two_regime", "Re-entering the large-step regime after a warm start",
          "Leclerc & Madry, The Two Regimes of Deep Network Training (arXiv 2002.10376)",
          "A large-step phase is what produces generalization; a small-step phase alone "
          "generalizes poorly. A warm start trained on at a small rate never re-enters the "
          "large-step regime, so a large-step phase should close its gap.", compare_two_regime,
          key_plot="heatmap_optim.switch_step_vs_optim.ratio.png"),
    Study("four_axes", "All four axes at once (Optuna)",
          "Ash & Adams; Kalra & Barkeshli; Wu et al.; Leclerc & Madry",
          "Together: shrinking closes the gap, warmup lets larger rates train, short horizons "
          "pick rates too small, large steps generalize. The question here is which combination "
          "closes the gap most cheaply.", compare_four_axes, key_plot="pareto.png"),
)}


# ----------------------------------------------------------------------------------------------
# Finding runs and writing the page


def _is_run(path: Path) -> bool:
    return (path / SWEEP_FILE).is_file() and (path / RESULTS_FILE).is_file()


def _wall(run_dir: Path) -> tuple[float | None, float]:
    """(seconds, start time) from wall.json; a run without one has no wall time."""
    path = RunDir(run_dir).wall_json
    try:
        sessions = json.loads(path.read_text())
        return (float(sum(s["seconds"] for s in sessions)),
                float(sessions[0]["started_at"]))
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        # none yet, or not one wssweep wrote: no wall time, the run's age from its directory
        return None, run_dir.stat().st_mtime


def find_study_runs(
    paths: Sequence[str | Path], include_smoke: bool = False
) -> dict[str, Path]:
    """The newest finished, full-size run of each study among ``paths`` (run directories or
    directories holding them). Runs of other specs, runs with ``--set`` overrides and (unless
    ``include_smoke``: a check of the page, not results) ``--smoke`` runs are skipped."""
    candidates: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise InputError("RUN_DIR", "a run directory or a directory of runs", str(p))
        candidates += [p] if _is_run(p) else sorted(c for c in p.iterdir() if _is_run(c))
    best: dict[str, tuple[float, Path]] = {}
    for run_dir in candidates:
        sweep = RunDir(run_dir).record()
        stem = Path(sweep.spec_path).stem
        seconds, started = _wall(run_dir)
        scaled = sweep.smoke and not include_smoke
        if stem not in STUDIES or scaled or sweep.overrides or seconds is None:
            continue
        if stem not in best or started > best[stem][0]:
            best[stem] = (started, run_dir)
    return {stem: run_dir for stem, (_, run_dir) in best.items()}


def load_study_run(run_dir: Path) -> StudyRun:
    data = read_run(run_dir)
    return StudyRun(data, summarize_run(data), _wall(run_dir)[0])


def map_figure(run: StudyRun, path: Path, name: str = "") -> Path:
    """The map's plot ``name``, else its first heatmap, else its first line plot. A run copied
    without its map (as in docs/runs/) gets it rebuilt from results.csv first."""
    from wssweep.report import build_map

    map_dir = run.run_dir / "map"
    if not map_dir.is_dir():
        build_map(run.run_dir)
    found = ([map_dir / name] if name and (map_dir / name).is_file() else
             sorted(map_dir.glob("heatmap_*.png")) or sorted(map_dir.glob("line_*.png")))
    if not found:
        raise InputError("RUN_DIR", "a run whose map has a heatmap or line plot (wssweep map "
                         "RUN_DIR)", str(run.run_dir))
    shutil.copyfile(found[0], path)
    return path


def _setup(run: StudyRun) -> str:
    sweep = run.data.sweep
    spec = sweep.spec
    params = spec.get("parameters", {})
    axes = "; ".join(
        f"`{k}` ∈ {{{_values_text(p['values'])}}}" if "values" in p else
        f"`{k}` = {_val(p['value'])}" if "value" in p else
        f"`{k}` ~ {p.get('distribution', 'range')}[{_val(p['min'])}, {_val(p['max'])}]"
        for k, p in params.items())
    plan = run.data.sweep.seed_plan
    ran = seeds_ran(run)
    seeds_text = (f"until decided, {plan.min_seeds} to {plan.max_seeds} per setting "
                  f"({len(ran)} distinct seeds ran)" if plan is not None else
                  f"{len(ran)} ({', '.join(map(str, ran))})")
    counts = count_trials(run.data)
    method = spec.get("method", "grid")
    cap = f", run_cap {spec['run_cap']}" if spec.get("run_cap") else ""
    wall = run.wall_seconds or math.nan
    experiment = spec.get("experiment")
    source = experiment if isinstance(experiment, str) else "inline"
    return (f"Spec `sweeps/{Path(sweep.spec_path).name}`, experiment `{source}`"
            f"; method {method}{cap}. Axes: {axes}. Seeds: {seeds_text}."
            f"\n\n**Ran:** {counts.present} trials ({counts.succeeded} succeeded, "
            f"{counts.diverged} diverged, {counts.failed} failed), {len(run.rows)} settings, in "
            f"{wall / 60:.1f} min of wall time on this machine (run `{run.run_dir.name}`). "
            f"Verdicts against {run.data.reference.described}.")


def study_section(study: Study, run: StudyRun | None, fig_dir: Path, out_dir: Path,
                  figures: bool = True) -> str:
    title = f"## {study.title} (`sweeps/{study.stem}.yaml`)"
    if run is None:
        return (f"{title}\n\nNot run yet: `wssweep run sweeps/{study.stem}.yaml`, then this "
                "command again.\n")
    question = run.data.spec.get("description") or ""
    verdict, paragraph = study.compare(run)
    fig = fig_dir / f"{study.stem}.png"
    if figures:
        fig = study.figure(run, fig) if study.figure else map_figure(run, fig, study.key_plot)
        size = fig.stat().st_size
        if size > MAX_FIGURE_BYTES:
            raise InputError("figure", f"a PNG under {MAX_FIGURE_BYTES} bytes", f"{fig} ({size})")
    table = (study.table or verdict_table)(run)
    rel = fig.relative_to(out_dir)
    parts = [title, f"**Question.** {question}", f"**Setup.** {_setup(run)}",
             f"**Paper.** {study.paper}: {study.finding}", table, decided_text(run),
             f"![{study.title}]({rel})" + (f"\n\n{study.figure_note}" if study.figure_note
                                            else ""),
             f"**Compared with the paper: {verdict}.** {paragraph}"]
    return "\n\n".join([p for p in parts if p] + [""])


HEADER = """# Results: the seed papers' findings, rerun with wssweep

Written by `wssweep results docs/runs --out docs/results.md`; do not edit by hand. `docs/runs/`
holds each study's run as it came out of `wssweep run sweeps/<study>.yaml` (its `results.csv`,
`sweep.json` and `wall.json`; the newest full run of each study is used), and every number below
is computed from those files. After new runs: `wssweep results runs/ --out docs/results.md`.

Gaps are cold minus warm final test accuracy in points, with 95 % t-intervals over seeds. Each
study says what its verdicts are judged against: the reference cold start (the best cold recipe
on validation accuracy, one per model where a study compares models) where the run has a
validation split; a run that predates the split is judged against each setting's own cold arm.
Where the reference is another recipe than a setting's own cold arm, the table shows both gaps.
A study with a fixed list of seeds tests each setting with one-sided paired t-tests at 5 %,
corrected across its settings by Holm; a study that adds seeds until decided uses the
group-sequential design of `wssweep/sequential.py` (its error rate spent over the looks,
Bonferroni across settings), 5 % in all. *closed* when the gap is significantly below the spec's
`gap_tolerance`, *better* when the warm start is also significantly better than cold, *open*
when the gap is significantly above the tolerance, *inconclusive* otherwise, *unconverged* when
the two arms stopped on different criteria, and *failed* when more seeds failed than trained.
Each gap study's **Decided** line counts the settings decided and, for each undecided one, the
seeds it would need. *Saving* is the cold arm's optimizer steps over the warm arm's, after stage
1. Every run used this project's 2-core CPU machine, one CPU per trial, W&B offline.
"""


def write_results(
    paths: Sequence[str | Path], out: str | Path, include_smoke: bool = False,
    figures: bool = True,
) -> Path:
    """Write ``out`` (markdown) and its figures (``<out dir>/figures/``) from the study runs;
    ``figures=False`` writes the page alone (its text does not depend on them)."""
    out = Path(out)
    runs = find_study_runs(paths, include_smoke)
    fig_dir = out.parent / FIGURE_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    sections = [HEADER]
    for stem, study in STUDIES.items():
        run = load_study_run(runs[stem]) if stem in runs else None
        sections.append(study_section(study, run, fig_dir, out.parent, figures))
    with atomic_write(out) as handle:
        handle.write("\n".join(sections))
    return out


