"""The gap map's plots: heatmaps over pairs of swept axes, the Pareto plot of gap against saving,
line plots along each axis, and test accuracy per stage. Each function writes one PNG and returns
its path (or ``None`` when it has nothing to show). Matplotlib is used through ``Figure`` and its
Agg canvas only: no pyplot, no global backend change.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from wssweep.cells import DASH, finite, mapping_cell, mapping_text, missing
from wssweep.files import atomic_write
from wssweep.gapmap import (
    NOT_APPLICABLE,
    Mapped,
    to_float,
)
from wssweep.verdicts import VERDICTS

PARETO_FILE = "pareto.png"
STAGES_FILE = "stages.png"
DPI = 100
#: A numeric axis with more distinct values than this (random or bayes search) is binned.
MAX_CATEGORIES = 10
N_BINS = 6
#: More lines than this in a line plot: the other axes are averaged over instead.
MAX_LINES = 6
MAX_STAGE_PANELS = 4
#: What each headline axis means, by the last part of its dotted key.
AXIS_LABELS = {
    "lr": "target learning rate",
    "warmup_steps": "warmup (optimizer steps)",
    "shrink": "shrink λ",
    "meta_horizon": "meta-horizon H (steps)",
    "perturb": "perturb σ (fraction of a fresh init)",
    "intervention": "warm-start intervention",
}
VERDICT_MARKS = {"better": "✓✓", "closed": "✓", "open": "✗", "inconclusive": "?",
                 "unconverged": "≁", "failed": "failed", NOT_APPLICABLE: ""}
VERDICT_COLOURS = {"better": "#0b6e2f", "closed": "#1a9641", "open": "#d7191c",
                   "inconclusive": "#e08a00", "unconverged": "#8e44ad", "failed": "#7f7f7f",
                   NOT_APPLICABLE: "#3b6fb6"}
FAILED_FACE, EMPTY_FACE = "#c8c8c8", "#f3f3f3"


# --------------------------------------------------------------------------------------------
# Axes and labels


def fmt_value(value: Any, digits: int = 3) -> str:
    """A parameter value as a readable tick: ``0.001``, ``1e-5``, ``400``, ``shrink_perturb``.

    Example:
        >>> fmt_value(1e-05), fmt_value('{"intervention": "dash", "keep_optimizer": true}')
        ('1e-5', 'intervention dash, keep_optimizer True')
    """
    if missing(value):
        return DASH
    if (mapping := mapping_cell(value)) is not None:  # a swept mapping: its keys name it
        return mapping_text(mapping, lambda v: fmt_value(v, digits))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e6):
        return str(int(value))
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def axis_title(key: str) -> str:
    """An axis name with its meaning and unit: ``target learning rate  [warm.lr]``."""
    label = AXIS_LABELS.get(key.rsplit(".", 1)[-1])
    return f"{label}  [{key}]" if label else key


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (last if lasts.count(last) == 1 else k) for k, last in zip(keys, lasts, strict=True)}


@dataclass
class Axis:
    """A swept parameter as plot categories; a numeric axis with many values is binned."""

    key: str
    labels: list[str]
    values: list[Any]          # category values (bin centres for a binned axis)
    numeric: bool
    edges: np.ndarray | None = None

    @property
    def binned(self) -> bool:
        return self.edges is not None

    def index(self, value: Any) -> int | None:
        if value is None:
            return None
        if self.edges is not None:
            i = int(np.searchsorted(self.edges, float(value), side="right")) - 1
            return min(max(i, 0), len(self.labels) - 1)
        return self.values.index(value) if value in self.values else None

    @property
    def log(self) -> bool:
        nums = [float(v) for v in self.values] if self.numeric else []
        return bool(nums) and min(nums) > 0 and max(nums) / min(nums) >= 20


def make_axis(key: str, rows: Sequence[dict[str, Any]]) -> Axis:
    values = [r.get(key) for r in rows if r.get(key) is not None]
    numeric = bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                   for v in values)
    distinct = sorted(set(values), key=lambda v: (0, float(v), "") if numeric else (1, 0, str(v)))
    if not numeric or len(distinct) <= MAX_CATEGORIES:
        return Axis(key, [fmt_value(v) for v in distinct], distinct, numeric)
    lo, hi = float(min(distinct)), float(max(distinct))
    log = lo > 0 and hi / lo >= 20
    edges = np.geomspace(lo, hi, N_BINS + 1) if log else np.linspace(lo, hi, N_BINS + 1)
    centres = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
    labels = [f"{fmt_value(a, 2)}–{fmt_value(b, 2)}" for a, b in itertools.pairwise(edges)]
    return Axis(key, labels, [float(c) for c in centres], True, edges)


def setting_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    """``lr=0.01, warmup_steps=100`` over the varying axes; ``all trials`` when none vary."""
    names = _short_names(keys)
    return ", ".join(fmt_value(row.get(k)) if mapping_cell(row.get(k)) is not None
                     else f"{names[k]}={fmt_value(row.get(k))}" for k in keys) or "all trials"


# --------------------------------------------------------------------------------------------
# Helpers


def slug(key: str) -> str:
    """``key`` as a file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


def _save(fig: Figure, path: Path) -> Path:
    """Save a PNG atomically: a temp file in the same directory, then rename."""
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI)
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(text)
    return path


def heatmap_size_px(nx: int, ny: int) -> tuple[int, int]:
    """The heatmap's size in pixels (width, height) for ``nx`` × ``ny`` cells."""
    width, height = _heatmap_figsize(nx, ny)
    return round(width * DPI), round(height * DPI)


def _heatmap_figsize(nx: int, ny: int) -> tuple[float, float]:
    return max(7.5, 1.3 * nx + 3.5), max(5.6, 0.9 * ny + 2.8)


def _verdict_legend(mapped: Mapped, tolerance: float, averaged: bool = False) -> str:
    note = ("\naveraged cells: number of settings per verdict (F: failed); failed settings are "
            "left out of the average" if averaged else "")
    if not mapped.is_gap:
        return "grey hatched: failed (diverged or no result) · light grey: no data" + note
    return (f"vs the reference cold start, one-sided t-tests corrected across settings: "
            f"✓✓ better · ✓ closed (within {tolerance:g} points) · ✗ open (worse by more) · "
            "? inconclusive\n≁ unconverged: the arms stopped on different criteria for most "
            "seeds · grey hatched: failed (did not train) · "
            "red: warm start generalizes worse than cold · blue: better" + note)


def _norm_for(values: np.ndarray, mapped: Mapped, tolerance: float):
    finite = values[np.isfinite(values)]
    if mapped.is_gap:
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        vmax = max(vmax, 2 * tolerance, 1e-9)
        return Normalize(-vmax, vmax), colormaps["RdBu_r"]
    cmap = colormaps["viridis"]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() >= 30:
        return LogNorm(finite.min(), finite.max()), cmap
    if finite.size and finite.min() < finite.max():
        return Normalize(finite.min(), finite.max()), cmap
    centre = float(finite[0]) if finite.size else 0.0
    return Normalize(centre - 1, centre + 1), cmap


# --------------------------------------------------------------------------------------------
# Plots


def plot_heatmap(path: Path, ya: Axis, xa: Axis, rows: Sequence[dict[str, Any]],
                 others: Sequence[str], mapped: Mapped, tolerance: float,
                 lower_is_better: bool = True) -> Path:
    """The mean of the mapped quantity over settings in each (ya, xa) cell; other axes averaged
    over."""
    ny, nx = len(ya.labels), len(xa.labels)
    cells: list[list[list[dict[str, Any]]]] = [[[] for _ in range(nx)] for _ in range(ny)]
    for row in rows:
        iy, ix = ya.index(row.get(ya.key)), xa.index(row.get(xa.key))
        if iy is not None and ix is not None:
            cells[iy][ix].append(row)
    col = mapped.mean_col
    lo_col, hi_col = mapped.ci_cols
    values = np.full((ny, nx), np.nan)
    for iy, ix in itertools.product(range(ny), range(nx)):
        means = [r[col] for r in cells[iy][ix] if r["verdict"] != "failed" and finite(r[col])]
        if means:
            values[iy, ix] = float(np.mean(means))
    norm, cmap = _norm_for(values, mapped, tolerance)

    fig = Figure(figsize=_heatmap_figsize(nx, ny), layout="constrained")
    ax = fig.add_subplot()
    cmap = cmap.with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, origin="lower",
                      aspect="auto")
    size = 10 if nx * ny <= 25 else 8 if nx * ny <= 64 else 6
    for iy, ix in itertools.product(range(ny), range(nx)):
        members = cells[iy][ix]
        value = values[iy, ix]
        if not math.isfinite(value):
            failed = any(r["verdict"] == "failed" for r in members)
            ax.add_patch(Rectangle((ix - 0.5, iy - 0.5), 1, 1, facecolor=FAILED_FACE if failed
                                   else EMPTY_FACE, hatch="///" if failed else None,
                                   edgecolor="#8c8c8c", linewidth=0))
            text = "failed" if failed else ("no result" if members else "no data")
            ax.text(ix, iy, text, ha="center", va="center", fontsize=size,
                    color="#333333" if failed else "#8c8c8c",
                    fontweight="bold" if failed else "normal",
                    bbox={"facecolor": FAILED_FACE, "edgecolor": "none", "pad": 1.5}
                    if failed else None)
            continue
        lines = [mapped.fmt(value)]
        if len(members) == 1:
            row = members[0]
            if finite(row[lo_col]) and nx * ny <= 36:
                lines.append(mapped.fmt_ci(row[lo_col], row[hi_col]))
            mark = (f"{VERDICT_MARKS[row['verdict']]} {row['verdict']}  "
                    if row["verdict"] != NOT_APPLICABLE else "")
            # the seeds a verdict rests on: those paired with the reference cold start
            lines.append(f"{mark}n={row.get('n_paired', row['n_seeds'])}")
        else:
            tally = [f"{VERDICT_MARKS[v] if v != 'failed' else 'F'}{n}"
                     for v in VERDICTS
                     if (n := sum(r["verdict"] == v for r in members))]
            if tally:
                lines.append(" ".join(tally))
            lines.append(f"({len(members)} settings)")
        red, green, blue, _ = cmap(norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        ax.text(ix, iy, "\n".join(lines), ha="center", va="center", fontsize=size,
                color="white" if dark else "black", linespacing=1.3)
    for i in range(nx + 1):
        ax.axvline(i - 0.5, color="white", linewidth=2)
    for i in range(ny + 1):
        ax.axhline(i - 0.5, color="white", linewidth=2)
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    ax.set_xticks(range(nx), labels=xa.labels,
                  rotation=30 if nx > 4 and max(map(len, xa.labels)) > 5 else 0)
    ax.set_yticks(range(ny), labels=ya.labels)
    ax.tick_params(length=0)
    ax.set_xlabel(axis_title(xa.key), fontsize=11)
    ax.set_ylabel(axis_title(ya.key), fontsize=11)
    what = mapped.title
    how = ("mean over seeds (95 % CI in brackets)"
           if not others else f"mean over seeds and over {', '.join(others)} (marginalised)")
    binned = [a.key for a in (ya, xa) if a.binned]
    if binned:
        how += f"; {', '.join(binned)} binned into ranges"
    ax.set_title(f"{what}: {ya.key} × {xa.key}\n{how}", fontsize=12)
    label = mapped.label
    if not mapped.is_gap:
        label += f" — {'lower' if lower_is_better else 'higher'} is better"
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)
    averaged = any(len(c) > 1 for line in cells for c in line)
    fig.supxlabel(_verdict_legend(mapped, tolerance, averaged), fontsize=8, color="#444444")
    return _save(fig, path)


def _pareto_front(points: list[tuple[float, float]], lower_is_better: bool) -> list[int]:
    """Indices of the non-dominated points (x = saving, higher better; y per ``lower``)."""
    sign = 1 if lower_is_better else -1
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            x2 >= x and sign * y2 <= sign * y and (x2 > x or sign * y2 < sign * y)
            for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def plot_pareto(path: Path, rows: Sequence[dict[str, Any]], keys: Sequence[str], mapped: Mapped,
                tolerance: float, lower_is_better: bool,
                recommended: dict[str, Any] | None) -> Path | None:
    """Gap (y) vs saving (x) per setting with error bars; the Pareto front labelled."""
    col = mapped.mean_col
    lo_col, hi_col = mapped.ci_cols
    pts = [r for r in rows if r["verdict"] != "failed" and finite(r[col])
           and finite(r["saving_mean"])]
    if not pts:
        return None
    fig = Figure(figsize=(8.5, 5.8), layout="constrained")
    ax = fig.add_subplot()
    coords = [(r["saving_mean"], r[col]) for r in pts]
    front = set(_pareto_front(coords, lower_is_better))
    seen: set[str] = set()
    for i, row in enumerate(pts):
        x, y = coords[i]
        xerr = [[x - row["saving_lo"]], [row["saving_hi"] - x]] if finite(row["saving_lo"]) \
            else None
        yerr = [[y - row[lo_col]], [row[hi_col] - y]] if finite(row[lo_col]) else None
        colour = VERDICT_COLOURS[row["verdict"]]
        label = row["verdict"] if row["verdict"] not in seen else None
        seen.add(row["verdict"])
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=colour, ecolor=colour,
                    elinewidth=1, capsize=3, markersize=9 if i in front else 6,
                    markeredgecolor="black" if i in front else colour,
                    markeredgewidth=1.5 if i in front else 0.5, alpha=1 if i in front else 0.55,
                    label=label, zorder=3)
    ordered = sorted(front, key=lambda i: coords[i][0])
    if len(ordered) > 1:
        ax.plot([coords[i][0] for i in ordered], [coords[i][1] for i in ordered], "--",
                color="black", linewidth=1, label="non-dominated settings (Pareto front)",
                zorder=2)
    if recommended is not None and finite(recommended.get(col)) \
            and finite(recommended.get("saving_mean")):
        ax.plot(recommended["saving_mean"], recommended[col], marker="*", markersize=20,
                color="gold", markeredgecolor="black", linestyle="none", zorder=5,
                label="recommended: cheapest closed setting" if mapped.is_gap
                else "recommended: best setting")
    ax.axvline(1.0, color="#888888", linestyle=":", linewidth=1, label="saving = 1 (none)")
    savings = [x for x, _ in coords]
    if max(savings) - min(savings) <= 1e-9 * max(1.0, abs(max(savings))):
        ax.text(0.02, 0.98, f"every setting has the same saving (×{savings[0]:.3g}):\n"
                "the front is just the lowest " + mapped.name,
                transform=ax.transAxes, va="top", fontsize=9, color="#444444",
                bbox={"facecolor": "white", "edgecolor": "#cccccc", "alpha": 0.9})
    if mapped.is_gap:
        ax.axhline(0.0, color="#888888", linewidth=0.8)
        ax.axhline(tolerance, color=VERDICT_COLOURS["closed"], linestyle="--", linewidth=1.2,
                   label=f"gap tolerance = {tolerance:g} points")
        bottom, top = ax.get_ylim()
        bottom = min(bottom, -tolerance)
        ax.axhspan(bottom, tolerance, color=VERDICT_COLOURS["closed"], alpha=0.08, zorder=0,
                   label="closed if the whole CI lies in the green band")
        ax.set_ylim(bottom, max(top, tolerance + 0.5))
        ax.set_title("The cheapest warm start that closes the gap\n"
                     "gap vs compute saving, one point per setting (mean ± 95 % CI over seeds)",
                     fontsize=12)
    else:
        better = "lower" if lower_is_better else "higher"
        ax.set_title(f"{mapped.name} vs compute saving, one point per setting\n"
                     f"({better} {mapped.name} is better; mean ± 95 % CI over seeds)", fontsize=12)
    # Labels last, once the limits are known: left of points in the right half, so they stay in.
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for n, i in enumerate(ordered):
        x, y = coords[i]
        right = x > (x0 + x1) / 2
        up = (n % 2 == 0) if y < (y0 + y1) / 2 else (n % 2 == 1)
        ax.annotate(setting_label(pts[i], keys), (x, y), xytext=(-12 if right else 12,
                                                                 14 if up else -16),
                    textcoords="offset points", fontsize=8, ha="right" if right else "left",
                    va="center", arrowprops={"arrowstyle": "-", "color": "#666666", "lw": 0.8},
                    bbox={"facecolor": "white", "edgecolor": "#999999", "alpha": 0.9,
                          "boxstyle": "round,pad=0.2"}, zorder=6)
    ax.set_xlabel("saving = cold steps / warm steps (× fewer optimizer steps; > 1: warm cheaper)")
    ax.set_ylabel(mapped.axis_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return _save(fig, path)


def plot_line(path: Path, axis: Axis, rows: Sequence[dict[str, Any]], varying: Sequence[Axis],
              mapped: Mapped, tolerance: float) -> Path:
    """The mapped quantity ± CI against one axis; one line per combination of the other axes (or
    their mean when there are too many)."""
    col = mapped.mean_col
    lo_col, hi_col = mapped.ci_cols
    others = [a for a in varying if a.key != axis.key]
    usable = [r for r in rows if r["verdict"] != "failed" and finite(r[col])
              and axis.index(r.get(axis.key)) is not None]
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in usable:
        groups.setdefault(setting_label(row, [a.key for a in others]), []).append(row)
    how = ""
    if axis.binned:  # a continuous axis: each setting at its own value
        for name in VERDICT_MARKS:
            members = [r for r in usable if r["verdict"] == name]
            if members:
                ax.errorbar([float(r[axis.key]) for r in members], [r[col] for r in members],
                            yerr=_yerr(members, col, lo_col, hi_col), fmt="o", capsize=3,
                            color=VERDICT_COLOURS[name], alpha=0.8,
                            label=name if name != NOT_APPLICABLE else "setting")
        if axis.log:
            ax.set_xscale("log")
        how = "each point one setting" + (f" (other axes vary: {', '.join(a.key for a in others)})"
                                          if others else "")
    else:
        style = "-" if axis.numeric else "none"
        if len(groups) <= MAX_LINES:
            width = 0.25 if len(groups) > 1 else 0.0
            colours = colormaps["tab10"]
            for g, (name, members) in enumerate(sorted(groups.items())):
                members = sorted(members, key=lambda r: axis.index(r.get(axis.key)))
                shift = (g - (len(groups) - 1) / 2) * width / max(len(groups), 1)
                xs = [axis.index(r.get(axis.key)) + shift for r in members]
                ys = [r[col] for r in members]
                colour = colours(g % 10) if len(groups) > 1 else "#3b6fb6"
                ax.errorbar(xs, ys, yerr=_yerr(members, col, lo_col, hi_col), fmt="o",
                            linestyle=style, color=colour, capsize=4, markersize=6,
                            label=name if others else "mean ± 95 % CI over seeds")
                if len(groups) == 1:
                    for x, r in zip(xs, members, strict=True):
                        if r["verdict"] != NOT_APPLICABLE:
                            mark = f"{VERDICT_MARKS[r['verdict']]} {r['verdict']}"
                            ax.annotate(mark, (x, r[col]), xytext=(8, 6),
                                        textcoords="offset points", fontsize=9,
                                        color=VERDICT_COLOURS[r["verdict"]],
                                        bbox={"facecolor": "white", "edgecolor": "none",
                                              "alpha": 0.85, "pad": 1})
            how = ("mean ± 95 % CI over seeds" if not others
                   else f"one line per {', '.join(a.key for a in others)}; mean ± 95 % CI")
        else:
            xs, ys, lows, highs = [], [], [], []
            for i in range(len(axis.labels)):
                vals = [r[col] for r in usable if axis.index(r.get(axis.key)) == i]
                if vals:
                    xs.append(i)
                    ys.append(float(np.mean(vals)))
                    lows.append(min(vals))
                    highs.append(max(vals))
            ax.fill_between(xs, lows, highs, color="#3b6fb6", alpha=0.15,
                            label="range of the settings' means")
            ax.plot(xs, ys, marker="o", linestyle=style, color="#3b6fb6",
                    label="mean over settings")
            how = f"mean over seeds and over {', '.join(a.key for a in others)} (marginalised)"
        ax.set_xticks(range(len(axis.labels)), labels=axis.labels)
        ax.set_xlim(-0.5, len(axis.labels) - 0.5)
    if mapped.is_gap:
        ax.axhline(0.0, color="#555555", linewidth=0.9, label="no gap")
        ax.axhline(tolerance, color=VERDICT_COLOURS["closed"], linestyle="--", linewidth=1.2,
                   label=f"tolerance = {tolerance:g} points (closed: CI's upper end below)")
        ax.set_title(f"Warm-start gap against {axis.key}\n{how}", fontsize=12)
    else:
        ax.set_title(f"{mapped.name} against {axis.key}\n{how}", fontsize=12)
    ax.set_xlabel(axis_title(axis.key))
    ax.set_ylabel(mapped.axis_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return _save(fig, path)


def _yerr(rows: Sequence[dict[str, Any]], col: str, lo_col: str, hi_col: str) -> np.ndarray:
    lo = [r[col] - r[lo_col] if finite(r[lo_col]) else 0.0 for r in rows]
    hi = [r[hi_col] - r[col] if finite(r[hi_col]) else 0.0 for r in rows]
    return np.array([lo, hi])


def _stage_lists(rows: Sequence[dict[str, str]], column: str) -> list[list[float]]:
    out = []
    for row in rows:
        try:
            values = json.loads(row.get(column) or "null")
        except ValueError:
            continue
        if isinstance(values, list) and values:
            out.append([to_float(v) for v in values])
    return out


def _ragged_mean(lists: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(map(len, lists))
    arr = np.full((len(lists), width), np.nan)
    for i, values in enumerate(lists):
        arr[i, : len(values)] = values
    counts = np.isfinite(arr).sum(axis=0)
    mean = np.where(counts > 0, np.nansum(arr, axis=0) / np.maximum(counts, 1), np.nan)
    sq = np.nansum((arr - mean) ** 2, axis=0)
    std = np.where(counts > 1, np.sqrt(sq / np.maximum(counts - 1, 1)), np.nan)
    return mean, std


def plot_stages(path: Path, rows: Sequence[dict[str, Any]], trials: dict[int, list[dict]],
                keys: Sequence[str], mapped: Mapped) -> Path | None:
    """Test accuracy after each stage, warm vs cold, for a few settings (online protocols)."""
    col = mapped.mean_col
    candidates = [i for i, r in enumerate(rows)
                  if _stage_lists(trials.get(i, []), "warm/stage_test_acc")
                  and _stage_lists(trials.get(i, []), "cold/stage_test_acc")]
    if not candidates:
        return None
    candidates.sort(key=lambda i: (not finite(rows[i][col]),
                                   rows[i][col] if finite(rows[i][col]) else 0.0))
    picks = sorted(set(np.linspace(0, len(candidates) - 1,
                                   min(MAX_STAGE_PANELS, len(candidates))).round().astype(int)))
    chosen = [candidates[p] for p in picks]
    fig = Figure(figsize=(1.0 + 4.0 * len(chosen), 4.6), layout="constrained")
    axes = fig.subplots(1, len(chosen), sharey=True, squeeze=False)[0]
    for ax, i in zip(axes, chosen, strict=True):
        row = rows[i]
        for arm, colour in (("cold", "#3b6fb6"), ("warm", "#e66101")):
            mean, std = _ragged_mean(_stage_lists(trials[i], f"{arm}/stage_test_acc"))
            stages = np.arange(1, mean.size + 1)
            ax.plot(stages, mean, marker="o", color=colour, label=f"{arm} start")
            if np.isfinite(std).any():
                ax.fill_between(stages, mean - std, mean + std, color=colour, alpha=0.15)
        title = setting_label(row, keys)
        if finite(row[col]):
            title += ("\ngap " if mapped.is_gap else "\n") + mapped.fmt(row[col])
            title += f" · {row['verdict']}" if row["verdict"] != NOT_APPLICABLE else ""
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("stage k (model after data chunk k arrived)")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=9)
    fig.suptitle("Test accuracy after each stage: warm start vs cold start "
                 "(mean ± sd over seeds)", fontsize=12)
    return _save(fig, path)


