"""The gap map's page: ``report.html``, one self-contained file (images as base64 ``data:`` URIs,
inline CSS) with the question, the spec, the verdict table, the plots, the recommended setting and
what is missing or failed.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from wssweep.cells import EMPTY, finite, missing
from wssweep.gapmap import (
    MAP_DIR,
    NOT_APPLICABLE,
    Mapped,
    RunData,
    TrialCounts,
    cell_text,
    parse_value,
    trial_outcome,
)
from wssweep.plots import setting_label
from wssweep.sequential import DESIGN_NAME
from wssweep.verdicts import CORRECTION_NAMES, DEFAULT_ALPHA, TEST_NAME

if TYPE_CHECKING:
    from wssweep.comparisons import Reference
    from wssweep.report import MapFiles


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt_cell(value: Any) -> str:
    if missing(value, infinite=True):
        return EMPTY
    return f"{value:.4g}" if isinstance(value, float) else str(value)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1250px; padding: 1.5em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.question { font-size: 1.15em; background: #f4f7fb; border-left: 4px solid #3b6fb6;
            padding: 0.6em 1em; }
.warn { background: #fff4e0; border-left: 4px solid #e08a00; padding: 0.5em 1em; }
.ok { background: #eef8ef; border-left: 4px solid #1a9641; padding: 0.5em 1em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; }
td.text { text-align: left; }
td.verdict { font-weight: bold; text-align: center; color: white; }
td.v-closed { background: #1a9641; } td.v-open { background: #d7191c; }
td.v-inconclusive { background: #e08a00; } td.v-failed { background: #7f7f7f; }
td.v-na { background: #3b6fb6; } td.v-better { background: #0b6e2f; }
td.v-unconverged { background: #8e44ad; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.counts td:first-child { text-align: left; }
"""


def _question(data: RunData, mapped: Mapped, axes: Sequence[str]) -> str:
    description = data.spec.get("description")
    if description:
        return str(description)
    over = ", ".join(axes) if axes else "the experiment's settings"
    if mapped.is_gap:
        return (f"Under which settings of {over} does a warm-started model generalize as well as "
                f"one trained from scratch (gap = cold − warm test accuracy within "
                f"{data.tolerance:g} points), and how much compute does the warm start save?")
    better = "lower" if data.mode == "min" else "higher"
    return f"How does {mapped.name} ({better} is better) depend on {over}?"


def _missing_html(counts: TrialCounts, missing: list | None, keys: Sequence[str]) -> str:
    parts = []
    if counts.expected is None:
        parts.append(f"<p class='warn'>The expected number of trials could not be read from "
                     f"sweep.json; {counts.present} trials are in results.csv.</p>")
    elif counts.missing:
        parts.append(f"<p class='warn'><b>This run is incomplete: {counts.missing} of "
                     f"{counts.expected} expected trials are missing</b> from results.csv "
                     f"(only {counts.present} present). Finish it with "
                     f"<code>wssweep resume RUN_DIR</code>, then rebuild the map.</p>")
        if missing:
            items = [f"<li>{_esc(setting_label(s, keys))}, seed {_esc(seed)}</li>"
                     for s, seed in missing[:40]]
            if len(missing) > 40:
                items.append(f"<li>… and {len(missing) - 40} more</li>")
            parts.append("<p>Missing trials:</p><ul class='missing'>" + "".join(items) + "</ul>")
    else:
        parts.append(f"<p class='ok'>All {counts.expected} expected trials are in "
                     "results.csv.</p>")
    if counts.unfinished:
        parts.append(f"<p class='warn'>{counts.unfinished} trial(s) are still running or pending "
                     "(no result yet); they are not counted as seeds.</p>")
    if counts.stopped:
        parts.append(f"<p>{counts.stopped} trial(s) were stopped early by the scheduler (ASHA) "
                     "and are not counted as seeds.</p>")
    return "\n".join(parts)


def _failed_html(data: RunData, mapped: Mapped, limit: int = 30) -> str:
    """The trials that failed or diverged, with their error text."""
    bad = [r for r in data.rows if trial_outcome(r, mapped.name) in ("failed", "diverged")]
    if not bad:
        return ""
    items = []
    for row in bad[:limit]:
        setting = {k: parse_value(cell_text(row.get(k))) for k in data.swept}
        what = trial_outcome(row, mapped.name)
        error = str(row.get("error") or "").strip()
        detail = f": {error}" if error else (" (no result)" if what == "failed" else "")
        items.append(f"<li><code>{_esc(row.get('trial_id', ''))}</code> "
                     f"{_esc(setting_label(setting, data.swept))}, seed {_esc(row.get('seed'))} "
                     f"— {_esc(what)}{_esc(detail)}</li>")
    if len(bad) > limit:
        items.append(f"<li>… and {len(bad) - limit} more</li>")
    return "<p>Failed and diverged trials:</p><ul class='failed'>" + "".join(items) + "</ul>"


def _caption(path: Path, mapped: Mapped) -> str:
    name = path.stem
    what = mapped.described
    if name.startswith("heatmap_"):
        return (f"Mean {what} over two swept axes; each cell one setting (or the average over "
                "the other axes), annotated with its value, 95 % CI and verdict.")
    if name == "pareto":
        return (f"{what[0].upper() + what[1:]} against compute saving, one point per setting; "
                "outlined points are non-dominated (no other setting is both cheaper and "
                "better), the star is the recommended setting.")
    if name.startswith("line_"):
        return f"Mean {what} ± 95 % CI against {name[len('line_'):]}."
    if name == "stages":
        return ("Test accuracy after each stage of the online protocol, warm vs cold start, for "
                "a few settings (best to worst).")
    return path.name


def _reference_html(result: MapFiles, data: RunData) -> str:
    """What every warm start is judged against, and how it was chosen."""
    ref = result.reference
    if ref is None or not result.mapped.is_gap:
        return ""
    def one(leaf: Reference) -> str:
        recipe = (setting_label(leaf.settings, list(leaf.settings)) if leaf.settings
                  else "the experiment")
        seeds = f"{len(leaf.seeds)} seeds" if leaf.seeds else "no seeds"
        val = (f", mean validation accuracy {leaf.mean_val_acc:.2f} %"
               if finite(leaf.mean_val_acc) else "")
        return f"{_esc(recipe)}: {_esc(leaf.described)} ({_esc(seeds)}{_esc(val)})"

    where = f"Paired per seed; in <code>{_esc(MAP_DIR)}/reference.json</code>."
    if ref.how == "per_problem":
        items = "".join(f"<li>{one(leaf)}</li>" for leaf in ref.leaves())
        return (f"<h2>Reference cold starts</h2><p>{_esc(ref.described)}:</p><ul>{items}</ul>"
                f"<p>{where}</p>")
    return f"<h2>Reference cold start</h2><p>{one(ref)}. {where}</p>"


def render_html(data: RunData, result: MapFiles, varying: Sequence[str]) -> str:
    """The report page as one self-contained HTML string."""
    mapped, rows, counts = result.mapped, result.rows, result.counts
    keys = list(varying)
    name = data.sweep.name
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>Gap map: {_esc(name)}</title><style>{CSS}</style></head><body>",
           f"<h1>Gap map: {_esc(name)}</h1>",
           f"<p class='question'>{_esc(_question(data, mapped, keys))}</p>"]

    out.append("<h2>Trials</h2>")
    count_rows = [("succeeded", counts.succeeded), ("failed (error or no result)", counts.failed),
                  ("diverged", counts.diverged), ("stopped early (ASHA)", counts.stopped),
                  ("running or pending", counts.unfinished),
                  ("missing (expected − present)",
                   "unknown" if counts.missing is None else counts.missing),
                  ("expected", "unknown" if counts.expected is None else counts.expected)]
    out.append("<table class='counts'>" + "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in count_rows) + "</table>")
    out.append(_missing_html(counts, result.missing_list, data.swept))
    out.append(_failed_html(data, mapped))

    out.append(_reference_html(result, data))
    out.append("<h2>Recommended setting</h2>")
    rec = result.recommended
    lo_col, hi_col = mapped.ci_cols
    if mapped.is_gap:
        on_val = result.reference is None or result.reference.how != "same_recipe"
        if rec is not None:
            saving = (f"saves ×{rec['saving_mean']:.3g} optimizer steps"
                      + (f" (95 % CI {rec['saving_lo']:.3g} – {rec['saving_hi']:.3g})"
                         if finite(rec["saving_lo"]) else "")
                      if finite(rec["saving_mean"]) else "saving unknown")
            chosen = ("chosen on the validation split; on test" if on_val
                      else "chosen on test (this run has no validation split)")
            out.append(
                f"<p class='ok'>The cheapest warm start that closes the gap: "
                f"<b>{_esc(setting_label(rec, data.swept))}</b> — {_esc(saving)}; {chosen} its "
                f"verdict is <b>{_esc(rec['verdict'])}</b>, gap {rec[mapped.mean_col]:+.2f} "
                f"points (95 % CI {rec[lo_col]:+.2f} to {rec[hi_col]:+.2f}, "
                f"{rec.get('n_paired', rec['n_seeds'])} seeds).</p>")
        else:
            closest = [r for r in rows if finite(r[hi_col]) and r["verdict"] != "failed"]
            text = f"No setting closed the gap within {data.tolerance:g} points."
            if closest:
                best = min(closest, key=lambda r: r[hi_col])
                text += (f" Closest: {setting_label(best, data.swept)} (gap "
                         f"{best[mapped.mean_col]:+.2f}, CI upper end {best[hi_col]:+.2f}, "
                         f"verdict {best['verdict']}).")
            out.append(f"<p class='warn'>{_esc(text)}</p>")
    elif rec is not None:
        better = "lowest" if data.mode == "min" else "highest"
        out.append(f"<p class='ok'>Best setting by {_esc(mapped.name)} ({better} mean): "
                   f"<b>{_esc(setting_label(rec, data.swept))}</b> — "
                   f"{_esc(_fmt_cell(rec['metric_mean']))}.</p>")
    else:
        out.append("<p class='warn'>No setting produced a result.</p>")

    out.append("<h2>Verdicts</h2>")
    tally = {v: n for v, n in result.verdicts.items() if n}
    if mapped.is_gap:
        test = (f"each a {TEST_NAME} at {DEFAULT_ALPHA:g} corrected across the {len(rows)} "
                f"settings by {CORRECTION_NAMES[result.correction]}"
                if data.sweep.seed_plan is None else
                f"seeds added until decided: {DESIGN_NAME}, at {DEFAULT_ALPHA:g} in all")
        out.append(f"<p>Verdict per setting, against the reference cold start (gap tolerance "
                   f"{data.tolerance:g} points), {_esc(test)}: "
                   "<b>closed</b> when the gap is significantly below the tolerance, "
                   "<b>better</b> when the warm start is also significantly better than the "
                   "reference, <b>open</b> when the gap is significantly above the tolerance, "
                   "<b>inconclusive</b> otherwise (also below two seeds), <b>unconverged</b> "
                   "when the compared arms stopped on different criteria for most seeds, "
                   "<b>failed</b> when more than half the seeds did not train. "
                   + _esc(", ".join(f"{v}: {n}" for v, n in tally.items())) + ".</p>")
    else:
        out.append(f"<p>The run maps {_esc(mapped.name)}; verdicts on the gap do not apply "
                   "(<b>n/a</b>) except <b>failed</b>.</p>")
    if rows:
        columns = list(rows[0])
        out.append("<div class='scroll'><table class='verdicts'><thead><tr>"
                   + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr></thead><tbody>")
        for row in rows:
            cells = []
            for c in columns:
                value = row.get(c)
                if c == "verdict":
                    cls = "na" if value == NOT_APPLICABLE else _esc(value)
                    cells.append(f"<td class='verdict v-{cls}'>{_esc(value)}</td>")
                else:
                    cls = " class='text'" if isinstance(value, str) else ""
                    cells.append(f"<td{cls}>{_esc(_fmt_cell(value))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table></div>")
        out.append(f"<p>Also in <code>{_esc(MAP_DIR)}/summary.csv</code>. n_seeds: valid seeds; "
                   "n_failed: diverged, errored or without a result; n_stopped: stopped, running "
                   "or pending; warm/test_acc and cold/test_acc: means over valid seeds.</p>")
    else:
        out.append("<p class='warn'>No trial has a row in results.csv yet.</p>")

    out.append("<h2>Plots</h2>")
    if not result.images:
        out.append("<p>No plots: no swept parameter has two or more values with results "
                   "(or no setting has a result yet).</p>")
    for image in result.images:
        encoded = base64.b64encode(image.read_bytes()).decode("ascii")
        out.append(f"<figure><img alt='{_esc(image.stem)}' src='data:image/png;base64,"
                   f"{encoded}'><figcaption>{_esc(_caption(image, mapped))} "
                   f"<code>{_esc(image.name)}</code></figcaption></figure>")

    out.append("<h2>Sweep spec</h2>")
    out.append("<pre>" + _esc(yaml.safe_dump(data.spec, sort_keys=False, allow_unicode=True))
               + "</pre>")
    if data.sweep.experiment:
        out.append("<details><summary>Resolved experiment</summary><pre>"
                   + _esc(yaml.safe_dump(data.sweep.experiment, sort_keys=False,
                                         allow_unicode=True)) + "</pre></details>")
    out.append("<p style='color:#777'>Built by <code>wssweep map</code> from results.csv and "
               "sweep.json.</p></body></html>")
    return "\n".join(out)


