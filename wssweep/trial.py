"""The Ray Tune trainable: one (setting, seed) trial, reported per epoch to Tune and W&B.

The science runs in ``wssweep.science.experiment.run_trial``; this module only wires its progress
records into ``ray.tune.report`` (with a checkpoint holding the final metrics) and one W&B run.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from wssweep import tracking
from wssweep.cache import ArtifactCache
from wssweep.results import setting_key
from wssweep.science.experiment import run_trial
from wssweep.spec import experiment_from_mapping

CACHE_DIR = "cache"  # stage 1 and cold arms shared between the trials of a run
STARTS_FILE = "trial_starts.jsonl"  # one line per trial start: proof of what ran when
# A Tune report costs ~10 ms (bench/overhead.py); epochs of small models take less. Epoch records
# go to Tune at most this often (every one still goes to W&B); stage ends always go.
REPORT_EVERY_S = 1.0


def _scalars(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if isinstance(v, int | float | bool | str)}


def _number(value: Any) -> float:
    """Tune needs the search metric in every report; unknown or diverged is NaN, not missing."""
    return float("nan") if value is None else float(value)


def trial_status(metrics: dict[str, Any]) -> str:
    return "diverged" if metrics.get("diverged") else "completed"


def trainable(config: dict[str, Any], sweep: dict[str, Any]) -> None:
    """Run one trial of ``sweep`` (the resolved spec as a plain dict) for Tune's ``config``."""
    from wssweep.space import trial_identity

    started = time.time()
    run_dir = Path(sweep["run_dir"])
    setting, seed = trial_identity(config, sweep["seeds"])
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    with open(run_dir / STARTS_FILE, "a") as handle:
        handle.write(json.dumps({"trial_id": trial_id, "started_at": started}) + "\n")

    device = sweep["experiment"].get("device", "cpu")
    if ray.get_gpu_ids() and torch.cuda.is_available():
        device = "cuda"
        # trials_per_gpu: N trials share one GPU, each capped to its 1/N of the memory.
        torch.cuda.set_per_process_memory_fraction(1.0 / sweep["trials_per_gpu"])
    overrides = {**setting, "seed": seed, "threads": sweep["threads"], "device": device}
    cfg = experiment_from_mapping(sweep["experiment"], setting=overrides)
    key = setting_key(cfg.model_dump(exclude={"seed"}))
    runtime = ray.get_runtime_context()
    identity = {"setting_key": key, "seed": seed, "started_at": started, **setting,
                # Where it ran and what it got: cluster spread and GPU packing are visible.
                "node_id": runtime.get_node_id(),
                "gpu_share": runtime.get_assigned_resources().get("GPU", 0.0)}

    run = tracking.start(
        run_dir, project=sweep["wandb"]["project"], entity=sweep["wandb"].get("entity"),
        group=sweep["name"], name=f"{key}-seed{seed}", run_id=trial_id,
        config={**tracking.flatten(cfg.model_dump()), **identity},
        mode=sweep["wandb"]["mode"], tags=sweep["wandb"].get("tags"))
    metric = sweep["metric"]
    latest: dict[str, Any] = {metric: float("nan"), "stages_done": 0}
    last_report = [0.0]

    def progress(record: dict[str, Any]) -> None:
        latest["stages_done"] = record["stages_done"]
        run.log(_scalars(record), step=record["step"])
        if record["event"] == "stage":
            latest.update({k: _number(v) for k, v in record.items()
                           if k in ("gap", "warm/test_acc", "cold/test_acc")})
        elif time.time() - last_report[0] < REPORT_EVERY_S:
            return
        last_report[0] = time.time()
        tune.report({**_scalars(record), **latest, **identity})

    try:
        metrics = run_trial(cfg, progress=progress, cache=ArtifactCache(run_dir / CACHE_DIR))
    except BaseException:
        run.finish({}, exit_code=1)
        raise
    final = {**metrics, **identity, "status": trial_status(metrics), "final": True,
             "finished_at": time.time(), "stages_done": latest["stages_done"]}
    final[metric] = _number(metrics.get(metric))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "metrics.json").write_text(json.dumps(metrics))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
    run.finish(metrics)
