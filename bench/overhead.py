"""What does running a sweep through wssweep (Ray Tune) cost, against the same trainings run bare?

Measured, on this machine, for one grid sweep (default: sweeps/quickstart.yaml, 6 trials):

  sweep   ``run_sweep`` on a local Ray, wall clock from the call to its return (trials report to
          Tune every epoch, log to W&B (offline without a key), checkpoint, write results.csv;
          the run ends by building the gap map).
          ``ray.init`` is timed apart (``orchestrate.connect`` is called first) and not in it.
  plain   the reference: the SAME trainings (every grid trial's setting and seed, the sweep's
          threads per trial) as a plain Python loop, ``run_trial(cfg)`` in a spawn
          ``multiprocessing.Pool`` with one process per trial slot; wall clock includes the
          pool's start-up (process spawn, imports), as a script doing this by hand would pay.
  minimum the theoretical minimum: perfect packing with zero overhead, i.e. the plain run's
          trial seconds (each ``run_trial`` call, in a worker whose imports and data are already
          warm) summed and divided by the slots (not below the longest trial).

Printed: both walls and their ratios to the minimum, sweep/plain, and the driver overhead per
trial, (sweep wall - plain wall) * slots / trials: the slot-seconds each trial costs on top of
its own training; the part of it spent inside the trials (sweep minus plain trial seconds: W&B,
tune.report, CPU taken by Ray and the Tune driver), also per progress record; the driver's CPU
seconds. Slots = cores // cpus_per_trial (= cores for the quickstart). Both runs are checked to
have trained the same (equal optimizer steps per trial), and both walls against the minimum.

  python bench/overhead.py                         # the quickstart, all cores (a few minutes)
  python bench/overhead.py SWEEP.yaml --set k=v --cores 2 --json out.json
  python bench/overhead.py --smoke                 # tiny data: a check that it runs (~30 s,
                                                   # mostly Ray's and the workers' start-up)
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from wssweep.cache import ArtifactCache
from wssweep.orchestrate import connect, run_sweep
from wssweep.record import RESULTS_FILE
from wssweep.science.experiment import load_experiment_data, run_trial
from wssweep.space import grid_trials
from wssweep.tracking import resolve_mode

STEP_KEYS = ("warm/steps", "cold/steps")  # equal in both runs <=> the same trainings ran
SLACK_S = 0.5  # seconds of timer noise allowed before a wall below the minimum is flagged


def warm_up(cfg) -> None:
    """Pool initializer: import what a trial imports and read its data once, so the trials'
    measured seconds are their own compute (the warm-up counts in the plain wall, not in them)."""
    load_experiment_data(cfg, torch.device("cpu"))


def plain_trial(job: tuple[int, object, str]) -> dict:
    """One trial, bare: the pool's worker. Times in unix seconds. Like the sweep's trials, the
    plain ones share stage 1 and the cold arm through an artifact cache."""
    index, cfg, cache_dir = job
    records = []  # the progress records the sweep's trainable logs to W&B (Tune gets ≤ 1 per s)
    started = time.time()
    metrics = run_trial(cfg, progress=records.append, cache=ArtifactCache(cache_dir))
    return {"index": index, "started_at": started, "finished_at": time.time(),
            "records": len(records), **{k: metrics[k] for k in STEP_KEYS}}


def run_plain(configs: list, slots: int) -> tuple[float, float, list[dict]]:
    """The reference: ``run_trial`` over a spawn pool of ``slots`` processes, one trial per task."""
    t0, w0 = time.time(), time.perf_counter()
    with (tempfile.TemporaryDirectory(prefix="wssweep-bench-cache-") as cache,
          mp.get_context("spawn").Pool(slots, initializer=warm_up, initargs=(configs[0],)) as pool):
        jobs = [(i, cfg, cache) for i, cfg in enumerate(configs)]
        rows = list(pool.imap_unordered(plain_trial, jobs, chunksize=1))
    return t0, time.perf_counter() - w0, sorted(rows, key=lambda r: r["index"])


def latencies(t0: float, t_end: float, rows: list[dict]) -> dict[str, float]:
    """First/last trial start after the call, and the tail from the last finish to the return."""
    starts = sorted(float(r["started_at"]) for r in rows)
    return {"first_start_s": starts[0] - t0, "last_start_s": starts[-1] - t0,
            "tail_s": t_end - max(float(r["finished_at"]) for r in rows)}


def main() -> int:
    args = common.parser(__doc__).parse_args()
    resolved = common.load_sweep(args, "overhead")
    if resolved is None:
        return 2
    spec = resolved.spec
    if spec.method != "grid" or spec.early_terminate is not None:
        print("overhead: error: needs a grid sweep without early_terminate (the plain run must "
              "train exactly what the sweep trains)", file=sys.stderr)
        return 2
    cpus = spec.resources.cpus_per_trial
    threads = max(1, int(cpus))  # what the trainable gives each trial (orchestrate.sweep_record)
    slots = max(1, int(args.cores // cpus))
    trials = grid_trials(spec, resolved.experiment)
    configs = [resolved.config_for({**t["setting"], "threads": threads}, t["seed"])
               for t in trials]
    n = len(configs)
    load_before = os.getloadavg()
    load_experiment_data(configs[0], torch.device("cpu"))  # fill the data cache for both runs

    # 1. the reference: plain Python, the same trainings, the same number of slots
    p_t0, plain_wall, plain_rows = run_plain(configs, slots)
    p_lat = latencies(p_t0, p_t0 + plain_wall, plain_rows)
    trial_s = [r["finished_at"] - r["started_at"] for r in plain_rows]

    # 2. the sweep, for real, on a local Ray with `cores` CPUs
    os.environ["RAY_OVERRIDE_RESOURCES"] = json.dumps({"CPU": args.cores})
    import ray

    w0 = time.perf_counter()
    connect(None, resolve_mode(spec.wandb.mode))
    init_s = time.perf_counter() - w0
    ray_cpus = ray.cluster_resources().get("CPU")
    with tempfile.TemporaryDirectory(prefix="wssweep-bench-") as storage:
        s_t0, w0, c0 = time.time(), time.perf_counter(), time.process_time()
        run_dir = run_sweep(resolved, name="bench", storage=Path(storage), address=None)
        sweep_wall = time.perf_counter() - w0
        driver_cpu = time.process_time() - c0  # the Tune loop, callbacks, state snapshots
        with open(run_dir / RESULTS_FILE, newline="") as f:
            sweep_rows = list(csv.DictReader(f))
        ray.shutdown()
    load_after = os.getloadavg()
    s_lat = latencies(s_t0, s_t0 + sweep_wall, sweep_rows)
    sweep_trial_s = [float(r["finished_at"]) - float(r["started_at"]) for r in sweep_rows]

    # 3. the numbers
    minimum = max(sum(trial_s) / slots, max(trial_s))
    overhead = (sweep_wall - plain_wall) * slots / n
    in_trial = (sum(sweep_trial_s) - sum(trial_s)) / n  # the part spent inside trials
    reports = sum(r["records"] + 1 for r in plain_rows) / n  # + 1: the final report
    swept = list(spec.parameters)
    key = lambda setting, seed: (str(seed), *(str(setting[k]) for k in swept))  # noqa: E731
    plain_steps = {key(t["setting"], t["seed"]): [r[k] for k in STEP_KEYS]
                   for t, r in zip(trials, plain_rows, strict=True)}
    sweep_steps = {key(r, r["seed"]): [int(float(r[k])) for k in STEP_KEYS] for r in sweep_rows}
    same = sum(sweep_steps.get(k) == v for k, v in plain_steps.items())
    out = {
        "spec": str(args.spec), "overrides": resolved.overrides, "trials": n,
        "cores": args.cores, "ray_cpus": ray_cpus, "slots": slots, "threads_per_trial": threads,
        "wandb_mode": resolve_mode(spec.wandb.mode), "loadavg_1m_before": load_before[0],
        "loadavg_1m_after": load_after[0],
        "ray_init_s": init_s, "sweep_wall_s": sweep_wall, "plain_wall_s": plain_wall,
        "minimum_s": minimum, "sweep_over_plain": sweep_wall / plain_wall,
        "sweep_over_minimum": sweep_wall / minimum, "plain_over_minimum": plain_wall / minimum,
        "overhead_per_trial_s": overhead, "in_trial_overhead_per_trial_s": in_trial,
        "reports_per_trial": reports, "driver_cpu_s": driver_cpu,
        "plain_trial_s_sum": sum(trial_s), "sweep_trial_s_sum": sum(sweep_trial_s),
        "plain_latency": p_lat, "sweep_latency": s_lat, "same_steps": f"{same}/{n}",
    }

    print(f"\n{args.spec}: {n} trials, {args.cores} cores -> {slots} slots of {threads} thread(s)"
          f" | W&B {out['wandb_mode']} | load avg 1 min {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    print(f"{'':34}{'wall s':>8}{'x min':>7}{'sum trial s':>13}{'1st start s':>13}"
          f"{'last start s':>14}{'tail s':>8}")
    print(f"{'theoretical minimum (packing)':34}{minimum:8.1f}{1:7.2f}")
    for label, wall, tsum, lat in (
        ("plain Python (spawn Pool)", plain_wall, sum(trial_s), p_lat),
        ("wssweep run_sweep (Ray Tune)", sweep_wall, sum(sweep_trial_s), s_lat),
    ):
        print(f"{label:34}{wall:8.1f}{wall / minimum:7.2f}{tsum:13.1f}{lat['first_start_s']:13.1f}"
              f"{lat['last_start_s']:14.1f}{lat['tail_s']:8.1f}")
    print(f"ray.init (connect; not in the sweep wall): {init_s:.1f} s, Ray CPUs {ray_cpus:g}")
    print(f"sweep / plain: {sweep_wall / plain_wall:.2f}x | driver overhead per trial: "
          f"({sweep_wall:.1f} - {plain_wall:.1f}) s x {slots} / {n} = {overhead:.1f} s "
          f"| same optimizer steps in both runs: {same}/{n} trials")
    print(f"  of which inside the trials (sweep - plain trial seconds, per trial): {in_trial:.1f} s"
          f" over {reports:.0f} progress records = {1000 * in_trial / reports:.1f} ms per record"
          f" | driver CPU during the sweep: {driver_cpu:.1f} s")
    for label, wall in (("sweep", sweep_wall), ("plain", plain_wall)):
        if wall < minimum - SLACK_S:
            print(f"WARNING: the {label} wall is below the theoretical minimum: CPU contention "
                  "during the plain run? Run again on a quiet machine.")
    if same != n or ray_cpus != args.cores:
        print("WARNING: the two runs did not train the same trials on the same cores")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
