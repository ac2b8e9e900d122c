"""build_map on synthetic run directories: every file, readable PNGs, a parseable report.

The runs are written by hand (results.csv through ``wssweep.results.write_results``, sweep.json
as ``wssweep run`` writes it), so no Ray and no training: the map reads only those two files.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.records import write_grid_record
from wssweep.errors import InputError
from wssweep.gapmap import paired_ci
from wssweep.plots import heatmap_size_px
from wssweep.report import build_map
from wssweep.results import write_results

LRS = [0.001, 0.01, 0.1]
WARMUPS = [0, 100, 400]
SEEDS = [0, 1, 2]


def write_sweep(run_dir: Path, parameters: dict[str, list[Any]], seeds: list[int], *,
                metric: str = "gap", mode: str = "min", tolerance: float | None = 0.5,
                description: str | None = None) -> None:
    """A sweep.json like the one ``wssweep run`` writes (grid over ``parameters``)."""
    write_grid_record(run_dir, parameters, seeds, metric=metric, mode=mode, tolerance=tolerance,
                      description=description)


def gap_model(lr: float, warmup: int, seed: int) -> float:
    """A made-up gap: large at high rates, closed by long warmups, noisy over seeds."""
    rng = np.random.default_rng(1000 * seed + int(warmup) + int(1e4 * lr))
    return 6.0 * (math.log10(lr) + 3) / 2 - 1.0 * warmup / 100 + rng.normal(0, 0.3)


def trial_row(n: int, setting: dict[str, Any], seed: int, status: str = "completed",
              gap: float | None = None, stages: int = 0, **extra: Any) -> dict[str, Any]:
    cold = 90.0 + seed
    diverged = status == "diverged"
    row: dict[str, Any] = {
        "trial_id": f"t{n:05d}", "status": status, "seed": seed,
        "setting_key": json.dumps(setting, sort_keys=True), **setting,
        "cold/test_acc": cold, "cold/steps": 1000, "diverged": diverged,
        "started_at": 1.0, "finished_at": 2.0,
    }
    if status == "completed" and gap is not None:
        warm_steps = 1000 / (1.5 + 0.01 * setting.get("warmup_steps", 0) ** 0.8 + 0.1 * seed)
        row.update({"gap": gap, "warm/test_acc": cold - gap, "warm/steps": round(warm_steps),
                    "saving": 1000 / round(warm_steps)})
        if stages:
            row["cold/stage_test_acc"] = [cold - 30 + 30 * k / stages for k in range(1, stages + 1)]
            row["warm/stage_test_acc"] = [cold - gap - 25 + 25 * k / stages
                                          for k in range(1, stages + 1)]
    if status == "error":
        row["error"] = "RuntimeError: CUDA out of memory <boom> & co"
    row.update(extra)
    return row


def two_axis_run(run_dir: Path, *, drop: int = 0, stages: int = 0) -> list[dict[str, Any]]:
    """lr × warmup_steps × 3 seeds; lr=0.1 without warmup diverges on every seed; the last
    ``drop`` trials are missing."""
    write_sweep(run_dir, {"lr": LRS, "warmup_steps": WARMUPS}, SEEDS)
    rows = []
    for n, (lr, warmup, seed) in enumerate(itertools.product(LRS, WARMUPS, SEEDS)):
        setting = {"lr": lr, "warmup_steps": warmup}
        if lr == 0.1 and warmup == 0:
            rows.append(trial_row(n, setting, seed, status="diverged"))
        else:
            rows.append(trial_row(n, setting, seed, gap=gap_model(lr, warmup, seed),
                                  stages=stages))
    rows = rows[: len(rows) - drop]
    write_results(run_dir, rows, ["lr", "warmup_steps"])
    return rows


class TableCells(HTMLParser):
    """Collects the verdict table's cells and the images' sources."""

    def __init__(self) -> None:
        super().__init__()
        self.in_table = False
        self.cell: list[str] | None = None
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.verdict_classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "table" and "verdicts" in (attr.get("class") or ""):
            self.in_table = True
        elif self.in_table and tag == "tr":
            self.rows.append([])
        elif self.in_table and tag in ("td", "th"):
            self.cell = []
            if "verdict" in (attr.get("class") or "").split():
                self.verdict_classes.append(attr["class"] or "")
        elif tag == "img":
            self.images.append(attr.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_table = False
        elif self.in_table and tag in ("td", "th") and self.cell is not None:
            text = "".join(self.cell).strip()
            if tag == "th":
                self.header.append(text)
            else:
                self.rows[-1].append(text)
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def parse_report(path: Path) -> TableCells:
    parser = TableCells()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_two_axis_run_writes_every_file(tmp_path):
    run = tmp_path / "runs" / "lr_warmup"
    two_axis_run(run, stages=3)
    files = build_map(run)
    with open(run / "map" / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    # One summary row per lr × warmup setting.
    assert len(summary) == 9
    # The all-diverged setting is failed; the others carry the t interval of their seeds' gaps.
    by_setting = {(float(r["lr"]), int(r["warmup_steps"])): r for r in summary}
    assert by_setting[(0.1, 0)]["verdict"] == "failed"
    mean, lo, hi = paired_ci([gap_model(0.001, 400, s) for s in SEEDS])
    # summary.csv's gap interval for lr=0.001, warmup=400 is paired_ci of its three seeds.
    assert np.allclose([float(by_setting[(0.001, 400)][c]) for c in ("gap_mean", "gap_lo",
                                                                      "gap_hi")], [mean, lo, hi])
    # A clearly negative gap with a tight interval is better than the reference (and so
    # closed); a large one open.
    assert by_setting[(0.001, 400)]["verdict"] == "better"
    assert by_setting[(0.1, 100)]["verdict"] == "open"
    # Exactly one heatmap (the only pair of axes), named after its axes.
    assert [p.name for p in files.heatmaps] == ["heatmap_warmup_steps_vs_lr.png"]
    image = Image.open(files.heatmaps[0])
    # The heatmap opens as a PNG of the size the layout fixes for 3 × 3 cells.
    assert (image.format, image.size) == ("PNG", (750, 560)) == ("PNG", heatmap_size_px(3, 3))
    # The Pareto plot, a line plot per axis and the per-stage plot were written and open.
    assert files.pareto is not None and Image.open(files.pareto).size == (850, 580)
    assert sorted(p.name for p in files.lines) == ["line_lr.png", "line_warmup_steps.png"]
    assert files.stages is not None and Image.open(files.stages).format == "PNG"
    # Every listed file exists, under RUN_DIR/map.
    assert all(p.is_file() and p.parent == run / "map" for p in files.files)

    report = parse_report(files.report_html)
    # The verdict table has the summary's columns and one row per setting (plus the header).
    assert report.header[: 3] == ["setting_key", "lr", "warmup_steps"]
    assert len([r for r in report.rows if r]) == 9
    verdict_col = report.header.index("verdict")
    # Its verdict cells say what summary.csv says, in the same order, each coloured by class.
    assert [r[verdict_col] for r in report.rows if r] == [r["verdict"] for r in summary]
    assert all(c.startswith("verdict v-") for c in report.verdict_classes)
    # Every image is embedded as a base64 data URI: 1 heatmap + pareto + 2 lines + stages.
    assert len(report.images) == 5
    assert all(src.startswith("data:image/png;base64,") for src in report.images)
    text = files.report_html.read_text()
    # The page is self-contained: no external resources.
    assert "http://" not in text and "https://" not in text and "<script" not in text
    # The counts: 24 succeeded, 3 diverged, none missing; the recommendation is a closed setting.
    assert (files.counts.succeeded, files.counts.diverged, files.counts.missing) == (24, 3, 0)
    assert files.recommended is not None and files.recommended["verdict"] in ("closed", "better")


def test_half_finished_run_says_what_is_missing(tmp_path):
    run = tmp_path / "half"
    rows = two_axis_run(run, drop=5)
    # An errored trial (its text must be escaped), a stopped one, and a running one.
    rows[0] = trial_row(0, {"lr": 0.001, "warmup_steps": 0}, 0, status="error")
    rows[1] = trial_row(1, {"lr": 0.001, "warmup_steps": 0}, 1, status="stopped")
    rows[2] = trial_row(2, {"lr": 0.001, "warmup_steps": 0}, 2, status="running")
    write_results(run, rows, ["lr", "warmup_steps"])
    (run / "map").mkdir()
    (run / "map" / "heatmap_old_vs_axes.png").write_bytes(b"stale")
    files = build_map(run)
    # Every file is still written, and the stale plot of an earlier build is gone.
    assert files.summary_csv.is_file() and files.report_html.is_file() and files.heatmaps
    assert files.pareto is not None and all(p.is_file() for p in files.files)
    assert not (run / "map" / "heatmap_old_vs_axes.png").exists()
    counts = files.counts
    # 27 expected, 22 present: 5 missing; 1 errored, 1 stopped, 1 running, 3 diverged.
    assert (counts.expected, counts.present, counts.missing) == (27, 22, 5)
    assert (counts.failed, counts.stopped, counts.unfinished, counts.diverged) == (1, 1, 1, 3)
    # The missing trials are the last grid points: lr=0.1, warmup=400 seeds 1-2 and warmup=100.
    assert [(s["lr"], s["warmup_steps"], seed) for s, seed in files.missing_list] == [
        (0.1, 100, 1), (0.1, 100, 2), (0.1, 400, 0), (0.1, 400, 1), (0.1, 400, 2)]
    text = files.report_html.read_text()
    # The report says how many are missing out of how many, and lists them.
    assert "5 of 27 expected trials are missing" in text
    assert "lr=0.1, warmup_steps=400, seed 2" in text
    # It mentions the running and stopped trials.
    assert "1 trial(s) are still running or pending" in text
    assert "1 trial(s) were stopped early" in text
    # The errored trial is listed with its error text, HTML-escaped.
    assert "RuntimeError: CUDA out of memory &lt;boom&gt; &amp; co" in text
    summary = {(r["lr"], r["warmup_steps"]): r for r in files.rows}
    # The setting with one errored, one stopped, one running trial: 0 seeds, failed.
    assert summary[(0.001, 0)]["n_seeds"] == 0 and summary[(0.001, 0)]["verdict"] == "failed"
    # lr=0.1, warmup=400 has no row at all, so it is not in the summary.
    assert (0.1, 400) not in summary
    # The heatmap cell without any trial is drawn, and the PNG keeps its size.
    assert Image.open(files.heatmaps[0]).size == heatmap_size_px(3, 3)


def test_one_axis_run_gets_a_line_plot(tmp_path):
    run = tmp_path / "shrink"
    shrinks = [0.2, 0.4, 0.6, 0.8, 1.0]
    write_sweep(run, {"shrink": shrinks, "warm.intervention": ["shrink_perturb"]}, SEEDS,
                description="Does <shrink> & perturb close the gap?")
    rows = [trial_row(n, {"shrink": s, "warm.intervention": "shrink_perturb"}, seed,
                      gap=3 * s - 1.5 + 0.1 * seed)
            for n, (s, seed) in enumerate(itertools.product(shrinks, SEEDS))]
    write_results(run, rows, ["shrink", "warm.intervention"])
    files = build_map(run)
    # A single varying axis: no heatmap, one line plot against it.
    assert files.heatmaps == [] and [p.name for p in files.lines] == ["line_shrink.png"]
    # The line plot opens at its fixed size.
    assert Image.open(files.lines[0]).size == (800, 500)
    text = files.report_html.read_text()
    # The spec's description is the study's question, HTML-escaped.
    assert "Does &lt;shrink&gt; &amp; perturb close the gap?" in text
    # Nothing from the data is left unescaped.
    assert "<shrink>" not in text


def test_nqm_run_maps_its_metric(tmp_path):
    run = tmp_path / "nqm"
    horizons, everys = [1, 10, 100], [50, 100]
    write_sweep(run, {"meta_horizon": horizons, "nqm.every": everys}, [0, 1],
                metric="nqm/final_loss", tolerance=None)
    rows = []
    for n, (h, every, seed) in enumerate(itertools.product(horizons, everys, [0, 1])):
        rows.append({"trial_id": f"n{n}", "status": "completed", "seed": seed,
                     "setting_key": f"k{h}-{every}", "meta_horizon": h, "nqm.every": every,
                     "nqm/final_loss": 0.05 / h + every * 1e-4 + 1e-3 * seed,
                     "diverged": False})
    write_results(run, rows, ["meta_horizon", "nqm.every"])
    files = build_map(run)
    # The map judges the metric, not the (absent) gap.
    assert files.quantity == "nqm/final_loss"
    row = next(r for r in files.rows if r["meta_horizon"] == 100 and r["nqm.every"] == 50)
    expected = paired_ci([0.05 / 100 + 50e-4 + 1e-3 * s for s in (0, 1)])
    # summary rows carry the metric's mean and interval; the verdict does not apply.
    assert np.allclose([row["metric_mean"], row["metric_lo"], row["metric_hi"]], expected)
    assert {r["verdict"] for r in files.rows} == {"n/a"}
    # A heatmap of the metric; no Pareto plot (no saving) and no stage plot.
    assert len(files.heatmaps) == 1 and files.pareto is None and files.stages is None
    # The recommendation is the lowest mean loss.
    assert files.recommended["meta_horizon"] == 100 and files.recommended["nqm.every"] == 50
    with open(files.summary_csv) as handle:
        header = next(csv.reader(handle))
    # summary.csv has the metric columns.
    assert {"metric_mean", "metric_lo", "metric_hi"} <= set(header)


def test_run_without_results_or_axes_skips_plots(tmp_path):
    run = tmp_path / "empty"
    write_sweep(run, {"lr": [0.01]}, [0, 1])
    files = build_map(run)
    # No results.csv yet: an empty summary, no plots, a report that says 2 trials are missing.
    assert files.rows == [] and files.images == []
    assert "2 of 2 expected trials are missing" in files.report_html.read_text()
    write_results(run, [trial_row(0, {"lr": 0.01}, 0, gap=0.1),
                        trial_row(1, {"lr": 0.01}, 1, gap=0.12)], ["lr"])
    files = build_map(run)
    # One setting, no axis with two values: a summary row and a Pareto point, no heatmap/line.
    assert len(files.rows) == 1 and files.heatmaps == [] and files.lines == []
    # The summary is the setting's paired interval, closed (upper end ≤ 0.5).
    assert files.rows[0]["verdict"] == "closed"


def test_not_a_run_directory_is_an_input_error(tmp_path):
    # A directory without sweep.json is bad input (exit 2 in the CLI), not a traceback.
    with pytest.raises(InputError, match="RUN_DIR: expected a wssweep run directory"):
        build_map(tmp_path)
    (tmp_path / "sweep.json").write_text("{not json")
    # Neither is one whose sweep.json is not JSON.
    with pytest.raises(InputError, match="RUN_DIR"):
        build_map(tmp_path)
