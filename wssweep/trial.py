"""The Ray Tune trainable: one (setting, seed) trial, reported per epoch to Tune and W&B.

The science runs in ``wssweep.science.experiment.run_trial``; this module wires its progress
records into ``ray.tune.report`` and one W&B run, and keeps the trial's records in the run
directory (``wssweep.checkpoint.TrialStore``): a stage checkpoint after every stage, so a restarted
trial continues where it was, and the final metrics, written before they are reported, so a
finished trial never trains again.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
import torch
from ray import tune

from wssweep import tracking
from wssweep.cache import ArtifactCache
from wssweep.checkpoint import GroupStore, TrialStore, member_id, trial_members, unit_name
from wssweep.record import RunDir, SweepRecord
from wssweep.results import error_line
from wssweep.science.experiment import run_trial
from wssweep.science.group import fusable_configs, run_group
from wssweep.space import claims_cold_arms
from wssweep.spec import experiment_from_mapping

if TYPE_CHECKING:
    from wssweep.config import ExperimentConfig

# A Tune report costs ~10 ms (bench/overhead.py); epochs of small models take less. Epoch records
# go to Tune at most this often (every one still goes to W&B); stage ends always go.
REPORT_EVERY_S = 1.0
# Tests set these to a file's path: while the file exists, a trial waits after writing its final
# record (before reporting it), or after checkpointing a stage (before going on), so a test can
# stop the driver in exactly that window on a fast or a slow machine.
HOLD_AFTER_FINAL_ENV = "WSSWEEP_TEST_HOLD_AFTER_FINAL"
HOLD_AFTER_STAGE_ENV = "WSSWEEP_TEST_HOLD_AFTER_STAGE"


def _scalars(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if isinstance(v, int | float | bool | str)}


# What every Tune report carries from the last finished stage: ASHA compares the objective
# (the validation gap, say) at each rung, and the progress line shows it.
STAGE_METRICS = ("gap", "val_gap", "warm/test_acc", "cold/test_acc", "warm/val_acc",
                 "cold/val_acc")


def _number(value: Any) -> float:
    """Tune needs the search metric in every report; unknown or diverged is NaN, not missing."""
    return float("nan") if value is None else float(value)


def trial_status(metrics: dict[str, Any]) -> str:
    return "diverged" if metrics.get("diverged") else "completed"


def read_starts(run_dir: Path) -> list[dict[str, Any]]:
    """Every start and replay recorded in ``run_dir`` (oldest first): proof of what ran when."""
    path = RunDir(run_dir).starts
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record_start(run_dir: Path, entry: dict[str, Any]) -> None:
    # One short O_APPEND write per line: concurrent trials never interleave within a line.
    with open(RunDir(run_dir).starts, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def _hold(env: str) -> None:
    hold = os.environ.get(env)
    while hold and Path(hold).exists():
        time.sleep(0.05)


def placed_config(sweep: SweepRecord, setting: dict[str, Any], seed: int,
                  device: str) -> ExperimentConfig:
    """The config a trial runs here: its setting and seed, this node's device and threads."""
    overrides = {**setting, "seed": seed, "threads": sweep.threads, "device": device}
    return experiment_from_mapping(sweep.experiment, setting=overrides)


@dataclass
class _Member:
    """One (setting, seed) of a Tune trial, with its records in the run directory."""

    setting: dict[str, Any]
    seed: int
    key: str  # the setting's key
    store: TrialStore
    id: str  # its W&B run and results row: the Tune trial's id, then its index in a group
    identity: dict[str, Any] = field(default_factory=dict)
    run: Any = None  # its W&B run
    latest: dict[str, Any] = field(default_factory=dict)  # its last stage's STAGE_METRICS
    stages_done: int = 0  # as its last progress record said

    @property
    def unit(self) -> str:
        return unit_name(self.key, self.seed)


def group_report(records: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    """What a group reports to Tune: each of ``STAGE_METRICS`` and the objective as the mean over
    the members that have a number for it (NaN when none has: Tune needs the key), so ASHA and
    the searchers compare settings by their seeds' mean."""
    out: dict[str, Any] = {"members": len(records)}
    for key in dict.fromkeys((*STAGE_METRICS, objective)):
        values = [float(r[key]) for r in records if isinstance(r.get(key), int | float)
                  and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
        out[key] = statistics.fmean(values) if values else float("nan")
    return out


def trainable(config: dict[str, Any], sweep: SweepRecord) -> None:
    """Run the (setting, seed) members of Tune's ``config`` (one, or a group trained as one
    fused model: ``wssweep.space.trial_members``) for ``sweep`` (its run record)."""
    started = time.time()
    run_dir = Path(sweep.run_dir)
    trial_id = tune.get_context().get_trial_id()
    found = trial_members(config, sweep)
    grouped = len(found) > 1
    members = [_Member(setting, seed, key, TrialStore(run_dir, unit_name(key, seed)),
                       member_id(trial_id, index, grouped))
               for index, (setting, seed, key) in enumerate(found)]

    # Finished means finished. Tune's experiment snapshot (taken every TUNE_GLOBAL_CHECKPOINT_S)
    # can predate a trial's end, and Tuner.restore then runs that trial again; nor can a Tune
    # checkpoint close that window, since it too is only found through the snapshot. The final
    # record, keyed by setting and seed and written before the report, is found whatever Tune
    # restored, so the trial reports it again and trains nothing.
    finals = {m.unit: m.store.final() for m in members}
    todo = [m for m in members if finals[m.unit] is None]
    for m in members:
        if finals[m.unit] is not None:
            _record_start(run_dir, {"trial_id": trial_id, "unit": m.unit, "event": "replay",
                                    "at": started})
    if not todo:
        # Tune fills in trial_id itself; the record's is the trial that wrote it.
        tune.report({"final": True, **group_report(list(finals.values()), sweep.objective)}
                    if grouped else
                    {k: v for k, v in finals[members[0].unit].items() if k != "trial_id"})
        return

    runtime = ray.get_runtime_context()
    device = sweep.experiment.get("device", "cpu")
    if ray.get_gpu_ids() and torch.cuda.is_available():
        device = "cuda"
        # trials_per_gpu: N trials share one GPU, each capped to its 1/N of the memory.
        torch.cuda.set_per_process_memory_fraction(1.0 / sweep.trials_per_gpu)
    starts = read_starts(run_dir)
    cfgs = []
    for m in todo:
        previous = [s for s in starts if s["unit"] == m.unit and s["event"] == "start"]
        _record_start(run_dir, {"trial_id": trial_id, "unit": m.unit, "event": "start",
                                "at": started, "restarts": len(previous),
                                "node_id": runtime.get_node_id()})
        cfgs.append(placed_config(sweep, m.setting, m.seed, device))
        m.identity = {"setting_key": m.key, "seed": m.seed, **m.setting,
                      "started_at": previous[0]["at"] if previous else started,
                      "restarts": len(previous),
                      # Where it ran and what it got: cluster spread and GPU packing are visible.
                      "node_id": runtime.get_node_id(),
                      "gpu_share": runtime.get_assigned_resources().get("GPU", 0.0),
                      "group_size": len(members)}
        m.run = tracking.start(
            run_dir, project=sweep.wandb.project, entity=sweep.wandb.entity,
            group=sweep.name, name=f"{m.key}-seed{m.seed}",
            run_id=m.id,
            config={**tracking.flatten(cfgs[-1].model_dump()), **m.identity},
            mode=sweep.wandb.mode, tags=sweep.wandb.tags)
    objective = sweep.objective
    latest: dict[str, Any] = {objective: float("nan"), "stages_done": 0}
    last_report = [0.0]
    reporting = [False]  # set while Tune or W&B has control: their exceptions are not results

    def progress(m: _Member, record: dict[str, Any]) -> None:
        reporting[0] = True
        latest["stages_done"] = m.stages_done = record["stages_done"]
        m.run.log(_scalars(record), step=record["step"])
        if record["event"] == "stage":
            m.latest.update({k: _number(v) for k, v in record.items() if k in STAGE_METRICS})
        if grouped:  # the group reports once a stage is over for all (on_stage)
            reporting[0] = False
            return
        if record["event"] == "stage":
            _hold(HOLD_AFTER_STAGE_ENV)
            latest.update(m.latest)
        elif time.time() - last_report[0] < REPORT_EVERY_S:
            reporting[0] = False
            return
        last_report[0] = time.time()
        tune.report({**_scalars(record), **latest, **m.identity})
        reporting[0] = False

    def on_stage(stages_done: int) -> None:
        reporting[0] = True
        _hold(HOLD_AFTER_STAGE_ENV)
        tune.report({"stages_done": stages_done,
                     **group_report([m.latest for m in todo], objective)})
        reporting[0] = False

    cache = ArtifactCache(RunDir(run_dir).baselines)
    callbacks = [functools.partial(progress, m) for m in todo]
    try:
        if len(todo) == 1:
            results = [run_trial(cfgs[0], progress=callbacks[0], cache=cache,
                                 checkpoint=todo[0].store, wait_for_cold=sweep.early_terminate)]
        elif fusable_configs(cfgs):
            results = run_group(cfgs, callbacks, cache=cache,
                                checkpoint=GroupStore([m.store for m in todo]),
                                on_stage=on_stage, claim_cold_arms=claims_cold_arms(config),
                                wait_for_cold=sweep.early_terminate)
        else:  # members that cannot share one model (kind: nqm) run one after another
            results = [run_trial(c, progress=p, cache=cache, checkpoint=m.store)
                       for c, p, m in zip(cfgs, callbacks, todo, strict=True)]
        outcomes = [(metrics, trial_status(metrics), "") for metrics in results]
    except Exception as exc:
        for m in todo:
            m.run.finish({}, exit_code=1)
        if reporting[0]:
            raise  # Tune stopping the trial, or W&B failing: for Tune to handle (and retry)
        # The science raised: that is this trial's result, recorded and not retried.
        outcomes = [({}, "error", error_line(f"{type(exc).__name__}: {exc}"))] * len(todo)
    except BaseException:
        for m in todo:
            m.run.finish({}, exit_code=1)
        raise
    for m, (metrics, status, error) in zip(todo, outcomes, strict=True):
        final = {**metrics, **m.identity, "status": status, "error": error, "final": True,
                 "finished_at": time.time(), "stages_done": m.stages_done}
        final[objective] = _number(metrics.get(objective))
        m.store.write_final({**final, "trial_id": m.id})
        finals[m.unit] = final
    _hold(HOLD_AFTER_FINAL_ENV)
    tune.report({"final": True, **group_report(list(finals.values()), objective)} if grouped
                else finals[todo[0].unit])
    for m, (metrics, status, _) in zip(todo, outcomes, strict=True):
        if status != "error":
            m.run.finish(metrics)
