"""The Ray Tune trainable: one (setting, seed) trial, reported per epoch to Tune and W&B.

The science runs in ``wssweep.science.experiment.run_trial``; this module wires its progress
records into ``ray.tune.report`` and one W&B run, and keeps the trial's records in the run
directory (``wssweep.checkpoint.TrialStore``): a stage checkpoint after every stage, so a restarted
trial continues where it was, and the final metrics, written before they are reported, so a
finished trial never trains again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
import torch
from ray import tune

from wssweep import tracking
from wssweep.cache import ArtifactCache
from wssweep.checkpoint import TrialStore, trial_setting, unit_name
from wssweep.record import RunDir, SweepRecord
from wssweep.results import error_line
from wssweep.science.experiment import run_trial
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


def trainable(config: dict[str, Any], sweep: SweepRecord) -> None:
    """Run one trial of ``sweep`` (its run record) for Tune's ``config``."""
    started = time.time()
    run_dir = Path(sweep.run_dir)
    setting, seed, key = trial_setting(config, sweep)
    trial_id = tune.get_context().get_trial_id()
    unit = unit_name(key, seed)
    store = TrialStore(run_dir, unit)

    # Finished means finished. Tune's experiment snapshot (taken every TUNE_GLOBAL_CHECKPOINT_S)
    # can predate a trial's end, and Tuner.restore then runs that trial again; nor can a Tune
    # checkpoint close that window, since it too is only found through the snapshot. The final
    # record, keyed by setting and seed and written before the report, is found whatever Tune
    # restored, so the trial reports it again and trains nothing.
    final = store.final()
    if final is not None:
        _record_start(run_dir, {"trial_id": trial_id, "unit": unit, "event": "replay",
                                "at": started})
        # Tune fills in trial_id itself; the record's is the trial that wrote it.
        tune.report({k: v for k, v in final.items() if k != "trial_id"})
        return

    previous = [s for s in read_starts(run_dir) if s["unit"] == unit and s["event"] == "start"]
    runtime = ray.get_runtime_context()
    _record_start(run_dir, {"trial_id": trial_id, "unit": unit, "event": "start", "at": started,
                            "restarts": len(previous), "node_id": runtime.get_node_id()})
    device = sweep.experiment.get("device", "cpu")
    if ray.get_gpu_ids() and torch.cuda.is_available():
        device = "cuda"
        # trials_per_gpu: N trials share one GPU, each capped to its 1/N of the memory.
        torch.cuda.set_per_process_memory_fraction(1.0 / sweep.trials_per_gpu)
    cfg = placed_config(sweep, setting, seed, device)
    identity = {"setting_key": key, "seed": seed, **setting,
                "started_at": previous[0]["at"] if previous else started,
                "restarts": len(previous),
                # Where it ran and what it got: cluster spread and GPU packing are visible.
                "node_id": runtime.get_node_id(),
                "gpu_share": runtime.get_assigned_resources().get("GPU", 0.0)}

    run = tracking.start(
        run_dir, project=sweep.wandb.project, entity=sweep.wandb.entity,
        group=sweep.name, name=f"{key}-seed{seed}", run_id=trial_id,
        config={**tracking.flatten(cfg.model_dump()), **identity},
        mode=sweep.wandb.mode, tags=sweep.wandb.tags)
    objective = sweep.objective
    latest: dict[str, Any] = {objective: float("nan"), "stages_done": 0}
    last_report = [0.0]
    reporting = [False]  # set while Tune or W&B has control: their exceptions are not results

    def progress(record: dict[str, Any]) -> None:
        reporting[0] = True
        latest["stages_done"] = record["stages_done"]
        run.log(_scalars(record), step=record["step"])
        if record["event"] == "stage":
            _hold(HOLD_AFTER_STAGE_ENV)
            latest.update({k: _number(v) for k, v in record.items()
                           if k in STAGE_METRICS})
        elif time.time() - last_report[0] < REPORT_EVERY_S:
            reporting[0] = False
            return
        last_report[0] = time.time()
        tune.report({**_scalars(record), **latest, **identity})
        reporting[0] = False

    try:
        metrics = run_trial(cfg, progress=progress, cache=ArtifactCache(RunDir(run_dir).baselines),
                            checkpoint=store)
        status, error = trial_status(metrics), ""
    except Exception as exc:
        run.finish({}, exit_code=1)
        if reporting[0]:
            raise  # Tune stopping the trial, or W&B failing: for Tune to handle (and retry)
        # The science raised: that is this trial's result, recorded and not retried.
        metrics, status, error = {}, "error", error_line(f"{type(exc).__name__}: {exc}")
    except BaseException:
        run.finish({}, exit_code=1)
        raise
    final = {**metrics, **identity, "status": status, "error": error, "final": True,
             "finished_at": time.time(), "stages_done": latest["stages_done"]}
    final[objective] = _number(metrics.get(objective))
    store.write_final({**final, "trial_id": trial_id})
    _hold(HOLD_AFTER_FINAL_ENV)
    tune.report(final)
    if status != "error":
        run.finish(metrics)
