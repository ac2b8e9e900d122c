"""The metrics a trial reports, declared once: name, unit, direction, arm, how the map pools seeds.

results.csv's metric columns (``wssweep.results``), the metrics a sweep may optimize
(``wssweep.spec``), the W&B summary of each trial run (``wssweep.tracking``), the map's pooled
columns (``wssweep.gapmap``) and the README's metric table all come from ``METRICS``.

Example:
    >>> METRIC["gap"].unit, METRIC["gap"].goal, METRIC["gap"].pooled
    ('points', 'min', 'ci')
    >>> [m.name for m in METRICS if m.kind == "nqm" and m.optimizable]
    ['nqm/final_loss']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    """One scalar a trial reports, in Ray results, results.csv and W&B."""

    name: str
    unit: str
    description: str
    goal: Literal["min", "max"] | None = None  # which way is better, where one is
    arm: Literal["warm", "cold", "cold_chosen", "both"] | None = None  # whose number it is
    pooled: Literal["ci", "mean", "geomean"] | None = None  # how the map pools a setting's seeds
    optimizable: bool = False  # may be a sweep's metric.name
    in_wandb_summary: bool = False  # the trial's W&B summary keeps its last value
    kind: Literal["network", "nqm"] = "network"  # the experiment kind that reports it
    # A metric on test data is only reported: a sweep that names it as its metric selects on
    # this validation twin instead (the search, ASHA), so the number reported was not selected.
    selected_by: str | None = None

    @property
    def objective(self) -> str:
        """What a sweep whose metric this is optimizes: the validation twin, or itself."""
        return self.selected_by or self.name


METRICS: tuple[Metric, ...] = (
    Metric("warm/test_acc", "%", "warm arm's final test accuracy", "max", "warm", "mean",
           optimizable=True, in_wandb_summary=True, selected_by="warm/val_acc"),
    Metric("cold/test_acc", "%", "cold arm's final test accuracy", "max", "cold", "mean",
           optimizable=True, in_wandb_summary=True, selected_by="cold/val_acc"),
    Metric("gap", "points", "cold − warm final test accuracy, paired on the seed", "min",
           "both", "ci", optimizable=True, in_wandb_summary=True, selected_by="val_gap"),
    Metric("warm/val_acc", "%", "warm arm's final accuracy on the validation split", "max",
           "warm", "mean", optimizable=True, in_wandb_summary=True),
    Metric("cold/val_acc", "%", "cold arm's final accuracy on the validation split", "max",
           "cold", "mean", optimizable=True, in_wandb_summary=True),
    Metric("val_gap", "points", "cold − warm final validation accuracy, paired on the seed",
           "min", "both", "ci", optimizable=True, in_wandb_summary=True),
    Metric("warm/stop", "text", "why the warm arm's last stage stopped: threshold, plateau, "
           "max_epochs or diverged", None, "warm"),
    Metric("cold/stop", "text", "why the cold arm's last stage stopped", None, "cold"),
    Metric("warm/diverged", "bool", "the warm arm diverged (NaN/inf loss, or final train "
           "accuracy below 1.5× chance)", "min", "warm"),
    Metric("cold/diverged", "bool", "the cold arm diverged", "min", "cold"),
    Metric("warm/steps", "steps", "warm arm's optimizer steps after stage 1 (meta steps "
           "included)", "min", "warm", optimizable=True),
    Metric("cold/steps", "steps", "cold arm's optimizer steps after stage 1", "min", "cold",
           optimizable=True),
    Metric("saving", "×", "cold steps / warm steps", "max", "both", "ci", optimizable=True,
           in_wandb_summary=True),
    Metric("warm/seconds", "s", "warm arm's training time after stage 1", "min", "warm",
           optimizable=True),
    Metric("cold/seconds", "s", "cold arm's training time after stage 1", "min", "cold",
           optimizable=True),
    Metric("lr_chosen", "rate", "geometric mean of the meta-horizon's per-stage rates", None,
           "warm", "geomean", in_wandb_summary=True),
    Metric("diverged", "bool", "either arm diverged (NaN/inf loss, or train accuracy below 1.5× "
           "chance)", "min", "both", in_wandb_summary=True),
    Metric("warm/test_acc_mean", "%", "warm arm's test accuracy averaged over stages", "max",
           "warm", optimizable=True, selected_by="warm/val_acc_mean"),
    Metric("cold/test_acc_mean", "%", "cold arm's test accuracy averaged over stages", "max",
           "cold", optimizable=True, selected_by="cold/val_acc_mean"),
    Metric("warm/val_acc_mean", "%", "warm arm's validation accuracy averaged over stages",
           "max", "warm", optimizable=True),
    Metric("cold/val_acc_mean", "%", "cold arm's validation accuracy averaged over stages",
           "max", "cold", optimizable=True),
    Metric("warm/train_acc", "%", "warm arm's final train accuracy", "max", "warm"),
    Metric("cold/train_acc", "%", "cold arm's final train accuracy", "max", "cold"),
    Metric("baseline_reused", "bool", "stage 1 and the cold arm came from the baseline store: "
           "another trial trained them, in this run or an earlier one under the same --storage",
           None, "cold"),
    Metric("warm/dash_factor_mean", "×", "DASH: the mean of its per-layer mean factors at the "
           "last stage (1 keeps a weight, λ shrinks it most); per stage in the stage records",
           None, "warm"),
    Metric("warm/dash_factor_min", "×", "DASH: its least factor at the last stage", None, "warm"),
    Metric("warm/dash_factor_max", "×", "DASH: its largest factor at the last stage", None,
           "warm"),
    Metric("warm/meta_steps", "steps", "steps the meta-horizon's candidate rates took", "min",
           "warm"),
    Metric("nqm/final_loss", "loss", "NQM: expected loss at the long horizon", "min",
           optimizable=True, kind="nqm"),
    Metric("nqm/initial_loss", "loss", "NQM: expected loss at the start", kind="nqm"),
    Metric("nqm/lr_first", "rate", "NQM: the first chosen rate", kind="nqm"),
    Metric("nqm/lr_mid", "rate", "NQM: the chosen rate half-way", kind="nqm"),
    Metric("nqm/lr_last", "rate", "NQM: the last chosen rate", kind="nqm"),
    Metric("cold_chosen/test_acc", "%", "a cold start at the warm arm's chosen rate "
           "(cold_at_chosen_lr)", "max", "cold_chosen"),
    Metric("cold_chosen/val_acc", "%", "its validation accuracy", "max", "cold_chosen"),
    Metric("gap_chosen", "points", "cold_chosen − warm final test accuracy", "min", "both",
           optimizable=True, selected_by="val_gap_chosen"),
    Metric("val_gap_chosen", "points", "cold_chosen − warm final validation accuracy", "min",
           "both", optimizable=True),
)
METRIC: dict[str, Metric] = {m.name: m for m in METRICS}


def metric_table() -> str:
    """The README's table of metrics (a test keeps the README's copy equal to this)."""
    lines = ["| metric | unit | better | arm | map pools seeds by | what it is |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in METRICS:
        better = {"min": "lower", "max": "higher", None: "–"}[m.goal]
        lines.append(f"| `{m.name}` | {m.unit} | {better} | {m.arm or '–'} | "
                     f"{m.pooled or '–'} | {m.description} |")
    return "\n".join(lines)
