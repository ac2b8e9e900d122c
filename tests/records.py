"""Run records for tests that write a run directory by hand (the map, the report, the pages)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from wssweep.record import DEFAULT_TOLERANCE, GridTrial, RunDir, SweepRecord, WandbRecord


def grid_record(run_dir: Path, parameters: dict[str, list[Any]], seeds: list[int], *,
                metric: str = "gap", mode: str = "min", tolerance: float | None = None,
                description: str | None = None,
                experiment: dict[str, Any] | None = None) -> SweepRecord:
    """The record ``wssweep run`` writes for a grid over ``parameters`` (settings outer, seeds
    inner, as ``wssweep.space.grid_trials`` orders them)."""
    experiment = experiment if experiment is not None else {
        "data": {"name": "digits"}, "model": {"name": "mlp"}}
    spec: dict[str, Any] = {
        "experiment": experiment, "method": "grid",
        "metric": {"name": metric, "goal": "minimize" if mode == "min" else "maximize"},
        "parameters": {k: {"values": v} for k, v in parameters.items()}, "seeds": seeds}
    if tolerance is not None:
        spec["gap_tolerance"] = tolerance
    if description:
        spec["description"] = description
    grid = [GridTrial(setting=dict(zip(parameters, values, strict=True)), seed=seed)
            for values in itertools.product(*parameters.values()) for seed in seeds]
    return SweepRecord(
        name=Path(run_dir).name, run_dir=str(run_dir), spec_path=f"{Path(run_dir).name}.yaml",
        spec=spec, experiment=experiment, seeds=seeds, swept=list(parameters), metric=metric,
        mode=mode, gap_tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        wandb=WandbRecord(mode="disabled"), expected_trials=len(grid), grid=grid)


def write_grid_record(run_dir: Path, parameters: dict[str, list[Any]], seeds: list[int],
                      **options: Any) -> SweepRecord:
    """``grid_record``, written as the run's sweep.json."""
    record = grid_record(run_dir, parameters, seeds, **options)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    RunDir(run_dir).write_record(record)
    return record
