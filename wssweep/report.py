"""The gap map on disk: ``RUN_DIR/map/`` with ``summary.csv``, PNG plots and ``report.html``.

``build_map(run_dir)`` reads only ``results.csv`` and ``sweep.json`` (``wssweep.gapmap``), so it
works on a finished, half-finished or resumed run, and writes:

- ``summary.csv``: one row per setting, with the gap's 95 % interval and a verdict;
- ``heatmap_<y>_vs_<x>.png``: the mean gap over every pair of swept axes with ≥ 2 values each,
  other axes averaged over (the title says which), each cell annotated with the gap and a verdict
  mark (✓ closed, ✗ open, ? inconclusive), failed cells grey and hatched, a diverging colour scale
  centred on 0;
- ``pareto.png``: gap vs saving per setting, the non-dominated ones highlighted and labelled;
- ``line_<axis>.png``: gap ± CI against each swept axis with ≥ 2 values;
- ``stages.png``: test accuracy per stage, warm vs cold, for online protocols;
- ``report.html``: one self-contained page (images as base64 ``data:`` URIs, inline CSS).

A run that maps another metric than the gap (``metric: nqm/final_loss``) gets the same files for
that metric, on a sequential colour scale and without verdict marks. Plots that have nothing to
show are skipped. The statistics and the decision rule are in ``wssweep.gapmap``, the plots in
``wssweep.plots``, the page in ``wssweep.page``; this module puts them together.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wssweep.comparisons import Reference
from wssweep.files import atomic_write
from wssweep.gapmap import (
    MAP_DIR,
    NOT_APPLICABLE,
    Mapped,
    TrialCounts,
    cell_text,
    count_trials,
    missing_trials,
    parse_value,
    read_run,
    recommend,
    summarize_run,
    trial_outcome,
    write_summary,
)
from wssweep.page import render_html
from wssweep.plots import (
    PARETO_FILE,
    STAGES_FILE,
    make_axis,
    plot_heatmap,
    plot_line,
    plot_pareto,
    plot_stages,
    slug,
    write_text,
)
from wssweep.verdicts import DEFAULT_CORRECTION, VERDICTS

REPORT_FILE = "report.html"
#: The reference cold start the verdicts judge against: its recipe and how it was chosen.
REFERENCE_FILE = "reference.json"


@dataclass
class MapFiles:
    """What ``build_map`` wrote and found.

    ``rows`` are the ``summary.csv`` rows (``wssweep.gapmap.summarize``); ``counts`` the trials by
    outcome and how many are missing; ``verdicts`` the number of settings per verdict;
    ``recommended`` the cheapest setting closed on the validation split (best by the metric when
    the run maps another metric), or ``None``.
    """

    run_dir: Path
    map_dir: Path
    summary_csv: Path
    report_html: Path
    heatmaps: list[Path]
    pareto: Path | None
    lines: list[Path]
    stages: Path | None
    rows: list[dict[str, Any]]
    counts: TrialCounts
    verdicts: dict[str, int]
    recommended: dict[str, Any] | None
    metric: str
    mapped: Mapped
    tolerance: float
    reference: Reference | None = None  # what the verdicts judge against (map/reference.json)
    correction: str = DEFAULT_CORRECTION  # how their error rate is controlled across settings
    missing_list: list[tuple[dict[str, Any], int]] | None = field(default=None, repr=False)

    @property
    def quantity(self) -> str:
        """What the map maps: ``gap``, or the metric of a run without a gap."""
        return self.mapped.name

    @property
    def images(self) -> list[Path]:
        """Every PNG written, in the report's order."""
        return [*self.heatmaps, *([self.pareto] if self.pareto else []), *self.lines,
                *([self.stages] if self.stages else [])]

    @property
    def files(self) -> list[Path]:
        """Every file written."""
        return [self.summary_csv, *self.images, self.report_html]


# --------------------------------------------------------------------------------------------
# Entry point

_OUR_PNGS = ("heatmap_*.png", "line_*.png", PARETO_FILE, STAGES_FILE)


def build_map(run_dir: Path, ci: str = "t") -> MapFiles:
    """(Re)build ``RUN_DIR/map/``: summary.csv, the plots and report.html; returns what it wrote.

    Reads only ``results.csv`` (missing: no rows) and ``sweep.json``. Plots from an earlier build
    that this one does not write again are removed.
    """
    run_dir = Path(run_dir)
    data = read_run(run_dir)
    rows = summarize_run(data, ci)
    mapped = data.mapped
    map_dir = run_dir / MAP_DIR
    map_dir.mkdir(parents=True, exist_ok=True)
    summary_csv = write_summary(run_dir, rows, ci=ci)

    lower = mapped.lower_is_better
    axes = [make_axis(k, rows) for k in data.swept]
    varying = [a for a in axes if len(a.labels) >= 2]
    varying_keys = [a.key for a in varying]
    reference = data.reference
    recommended = recommend(rows, mapped, on_validation=reference.how != "same_recipe")
    with atomic_write(map_dir / REFERENCE_FILE) as handle:
        handle.write(json.dumps(reference.as_json(), indent=1, default=str))

    heatmaps = []
    for first, second in itertools.combinations(varying, 2):
        # lr reads best along x; otherwise the later axis of the spec is x.
        ya, xa = (second, first) if first.key.rsplit(".", 1)[-1] == "lr" else (first, second)
        others = [k for k in varying_keys if k not in (ya.key, xa.key)]
        path = map_dir / f"heatmap_{slug(ya.key)}_vs_{slug(xa.key)}.png"
        heatmaps.append(plot_heatmap(path, ya, xa, rows, others, mapped, data.tolerance,
                                     lower))
    pareto = plot_pareto(map_dir / PARETO_FILE, rows, varying_keys, mapped, data.tolerance,
                         lower, recommended)
    lines = [plot_line(map_dir / f"line_{slug(a.key)}.png", a, rows, varying, mapped,
                       data.tolerance) for a in varying]

    # Valid trials of each setting, for the per-stage plot.
    index = {tuple(r[k] for k in data.swept): i for i, r in enumerate(rows)}
    trials: dict[int, list[dict]] = {}
    for trial in data.rows:
        if trial_outcome(trial, mapped.name) != "succeeded":
            continue
        i = index.get(tuple(parse_value(cell_text(trial.get(k))) for k in data.swept))
        if i is not None:
            trials.setdefault(i, []).append(trial)
    stages = plot_stages(map_dir / STAGES_FILE, rows, trials, varying_keys, mapped)

    verdicts = {v: sum(r["verdict"] == v for r in rows) for v in (*VERDICTS, NOT_APPLICABLE)}
    result = MapFiles(
        run_dir=run_dir, map_dir=map_dir, summary_csv=summary_csv,
        report_html=map_dir / REPORT_FILE, heatmaps=heatmaps, pareto=pareto, lines=lines,
        stages=stages, rows=rows, counts=count_trials(data), verdicts=verdicts,
        recommended=recommended, metric=data.metric, mapped=mapped, reference=reference,
        correction=data.sweep.correction,
        tolerance=data.tolerance, missing_list=missing_trials(data))
    written = set(result.images)
    for pattern in _OUR_PNGS:
        for stale in map_dir.glob(pattern):
            if stale not in written:
                stale.unlink()
    write_text(result.report_html, render_html(data, result, varying_keys))
    return result
