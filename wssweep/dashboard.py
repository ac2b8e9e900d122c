"""The sweep's W&B workspace, built with W&B's own workspace library (``wandb-workspaces``).

One workspace per sweep, over the runs of its W&B group (the sweep's name), grouped by
``setting_key`` so that a setting's seeds pool:

- **Gap map**: a parallel-coordinates plot over exactly the swept axes, its last axis (the one
  W&B colours the lines by) the map's mapped column (``ref_gap_mean``, the gap against the
  reference cold start, or ``metric_mean`` for a run without a gap), read from the setting runs
  (``tracking.SETTING_JOB``: one run per row of ``summary.csv``); the map run's ``summary``
  table; its heatmaps.
- **Per stage** (a run with a warm/cold gap): warm and cold test accuracy and the gap, against
  ``stages_done``.

The workspace is a pure function of the run record and the map (:func:`build_workspace`);
:func:`write_workspace` writes its definition, the exact view W&B's ``Workspace.save()`` would
send, to ``RUN_DIR/wandb_workspace.json`` when the map is published, offline and without a
network call; ``wssweep sync`` builds it again and saves it when an API key is present.

Example:
    >>> from wssweep.gapmap import Mapped
    >>> from wssweep.record import SweepRecord, WandbRecord
    >>> sweep = SweepRecord(name="demo", run_dir="runs/demo", spec_path="demo.yaml", spec={},
    ...     experiment={}, seeds=[0, 1], swept=["lr", "warm.perturb"], metric="gap",
    ...     mode="min", wandb=WandbRecord(project="wssweep"))
    >>> view = definition(build_workspace(sweep, Mapped("gap", True), ["heatmap_lr_vs_x"]))
    >>> [c["accessor"] for c in panels(view, PARALLEL)[0]["config"]["columns"]]
    ['config:lr.value', 'config:warm.perturb.value', 'summary:ref_gap_mean']
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from pydantic.dataclasses import dataclass as pydantic_dataclass
from wandb_workspaces import expr

from wssweep.files import atomic_write
from wssweep.gapmap import Mapped
from wssweep.record import RunDir, SweepRecord
from wssweep.tracking import SUMMARY_TABLE

__all__ = ["PARALLEL", "build_workspace", "definition", "describe", "heatmap_keys", "panels",
           "workspace_of", "write_workspace"]

#: W&B's view types of the panels, as the definition names them.
PARALLEL, LINE, WEAVE, MEDIA = ("Parallel Coordinates Plot", "Run History Line Plot", "Weave",
                                "Media Browser")
#: Per-stage panels: the arms' test accuracy and their gap, after each stage.
STAGE_METRICS = ("warm/test_acc", "cold/test_acc", "gap")
STAGE_AXIS = "stages_done"
# The parallel-coordinates colours, lowest to highest value of the colour axis: the heatmaps'
# (wssweep.plots): RdBu_r's ends for the gap (blue: warm better, red: the gap open), else viridis.
_GAP_COLOURS, _METRIC_COLOURS = ("#2166ac", "#f7f7f7", "#b2182b"), ("#440154", "#21918c",
                                                                      "#fde725")


def _gradient(colours: Sequence[str]) -> list[wr.GradientPoint]:
    step = 100 / (len(colours) - 1)
    return [wr.GradientPoint(color=c, offset=i * step) for i, c in enumerate(colours)]


@pydantic_dataclass(config={"validate_assignment": True, "extra": "forbid"}, repr=False)
class _FlatConfigColumn(wr.ParallelCoordinatesPlotColumn):
    """A parallel-coordinates axis on a flat dotted config key.

    W&B stores ``config["warm.perturb"]`` as ``{"warm.perturb": {"value": ...}}``: its accessor is
    ``config:warm.perturb.value``. The library assumes a nested config (``config:warm.value.
    perturb``, documented in its ``expr.groupby_str_to_key``), which would plot nothing for
    wssweep's flattened configs (``tracking.flatten``).
    """

    def _to_model(self) -> Any:
        model = super()._to_model()
        model.accessor = f"config:{self.metric.name}.value"
        return model


def build_workspace(sweep: SweepRecord, mapped: Mapped, heatmaps: Sequence[str],
                    entity: str | None = None) -> ws.Workspace:
    """The sweep's W&B workspace; no network call.

    ``mapped`` is what the map maps (``MapFiles.mapped``), ``heatmaps`` the map run's image keys
    of its heatmaps (the PNGs' stems). ``entity`` defaults to the record's; without either it is
    empty, and ``wssweep sync`` fills in the API key's default entity.
    """
    columns = [_FlatConfigColumn(metric=wr.Config(key)) for key in sweep.swept]
    columns.append(wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(mapped.mean_col),
                                                    display_name=mapped.title))
    gap_map: list[Any] = [
        wr.ParallelCoordinatesPlot(
            title=f"{mapped.described} over the swept axes (setting runs)", columns=columns,
            gradient=_gradient(_GAP_COLOURS if mapped.is_gap else _METRIC_COLOURS),
            layout=wr.Layout(w=24, h=8)),
        wr.WeavePanelSummaryTable(table_name=SUMMARY_TABLE, layout=wr.Layout(w=24, h=10)),
    ]
    if heatmaps:
        # Sorted: the same keys in the same order whether they come from build_map or from the
        # map directory (heatmap_keys).
        gap_map.append(wr.MediaBrowser(title="heatmaps", media_keys=sorted(heatmaps),
                                       num_columns=min(len(heatmaps), 3),
                                       layout=wr.Layout(w=24, h=10)))
    sections = [ws.Section(name="Gap map", panels=gap_map, is_open=True)]
    if mapped.is_gap:
        stages = [wr.LinePlot(title=f"{metric} per stage", x=STAGE_AXIS, y=[metric],
                              groupby_aggfunc="mean", groupby_rangefunc="stderr")
                  for metric in STAGE_METRICS]
        sections.append(ws.Section(name="Per stage: warm vs cold", panels=stages, is_open=True))
    return ws.Workspace(
        entity=entity or sweep.wandb.entity or "", project=sweep.wandb.project,
        name=f"wssweep {sweep.name}", sections=sections,
        settings=ws.WorkspaceSettings(x_axis=STAGE_AXIS, max_runs=100),
        runset_settings=ws.RunsetSettings(
            groupby=[expr.Config("setting_key")],
            filters=[expr.Metric("Group") == sweep.name],
            pinned_columns=["run:displayName", "config:setting_key.value",
                            f"summary:{mapped.mean_col}"]),
    )


def definition(workspace: ws.Workspace) -> dict[str, Any]:
    """The workspace as W&B stores it (a view: entity, project, display name and spec), the same
    JSON ``Workspace.save()`` sends (``upsert_view2`` dumps the spec with these options)."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def panels(view: dict[str, Any], view_type: str) -> list[dict[str, Any]]:
    """The panels of ``view`` (a :func:`definition`) of one W&B view type, in order."""
    sections = view["spec"]["section"]["panelBankConfig"]["sections"]
    return [p for s in sections for p in s["panels"] if p.get("viewType") == view_type]


def heatmap_keys(run_dir: Path) -> list[str]:
    """The map run's image keys of the map's heatmaps: ``tracking.log_map_run`` logs each PNG
    under its stem, and ``report.build_map`` names them ``heatmap_<y>_vs_<x>.png``."""
    return sorted(path.stem for path in RunDir(run_dir).map.glob("heatmap_*.png"))


def workspace_of(run_dir: Path, entity: str | None = None) -> ws.Workspace:
    """The workspace of a run directory whose map was built (``RUN_DIR/map/``)."""
    from wssweep.gapmap import read_run

    data = read_run(Path(run_dir))
    return build_workspace(data.sweep, data.mapped, heatmap_keys(run_dir), entity)


def write_workspace(run_dir: Path, workspace: ws.Workspace) -> Path:
    """Write ``workspace``'s :func:`definition` to ``RUN_DIR/wandb_workspace.json``."""
    path = RunDir(run_dir).workspace
    with atomic_write(path) as handle:
        handle.write(json.dumps(definition(workspace), indent=1))
    return path


def describe(workspace: ws.Workspace) -> str:
    """One line per section: its panels, as ``wssweep sync`` reports what it saves."""
    return "; ".join(f"{s.name}: {len(s.panels)} panels" for s in workspace.sections)



# --------------------------------------------------------------------------- wssweep sync


def offline_runs(run_dir: Path) -> list[Path]:
    """The run's offline W&B run directories (``RUN_DIR/wandb/offline-run-*``), oldest first."""
    return sorted(p for p in RunDir(run_dir).wandb.glob("offline-run-*")
                  if p.is_dir() and not p.is_symlink())


def sync_command(run_dir: Path, dry_run: bool = False) -> list[str]:
    """W&B's own ``wandb sync`` over the run's offline runs (``--dry-run``: it only lists them).

    Run as ``python -m wandb`` of this interpreter, so the venv's wandb is the one that syncs
    without the venv being on ``PATH``.
    """
    return [sys.executable, "-m", "wandb", "sync", *(["--dry-run"] if dry_run else []),
            *(str(p) for p in offline_runs(run_dir))]


def sync(run_dir: Path, dry_run: bool = False) -> int:
    """``wssweep sync RUN_DIR``: upload the offline runs, then save the workspace when
    ``WANDB_API_KEY`` is set; print what it did. Returns the exit status (``wandb sync``'s when
    that fails). The key is never printed: W&B reads it from the environment itself.
    """
    run = RunDir(Path(run_dir).absolute())
    sweep = run.record()  # InputError on RUN_DIR (exit 2) when it is not a run
    if sweep.wandb.mode == "disabled":
        print(f"wssweep: W&B was disabled for {run.path.name} (wandb.mode): no runs to upload and "
              "no workspace to save")
        return 0
    dirs = offline_runs(run.path)
    if dirs:
        command = sync_command(run.path, dry_run)
        what = "listing (dry run)" if dry_run else "uploading"
        print(f"wssweep: {what} {len(dirs)} offline W&B runs of {run.path.name}: "
              f"wandb sync{' --dry-run' if dry_run else ''} {run.wandb}/offline-run-*",
              flush=True)
        code = subprocess.run(command, cwd=run.path).returncode
        if code:
            print(f"wssweep: wandb sync failed (exit {code}); the workspace was not saved",
                  file=sys.stderr)
            return code
    else:
        print(f"wssweep: no offline W&B runs in {run.wandb} (the sweep logged online, or W&B "
              "was disabled): nothing to upload")
    has_key = bool(os.environ.get("WANDB_API_KEY", "").strip())
    if dry_run:
        print(f"wssweep: dry run: the W&B workspace ({describe(workspace_of(run.path))}) would be "
              f"saved to project {sweep.wandb.project} "
              + ("(WANDB_API_KEY is set)" if has_key else
                 "once WANDB_API_KEY is set (it is not)"))
        return 0
    if not has_key:
        print(f"wssweep: skipped saving the W&B workspace: WANDB_API_KEY is not set (saving "
              f"needs the W&B API); its definition is in {run.workspace}; set the key and run "
              f"`wssweep sync {run_dir}` again")
        return 0
    import wandb

    entity = sweep.wandb.entity or wandb.Api().default_entity
    workspace = workspace_of(run.path, entity)
    write_workspace(run.path, workspace)
    workspace.save()
    print(f"wssweep: saved the W&B workspace ({describe(workspace)}): {workspace.url}")
    return 0
