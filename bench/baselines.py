"""What does a second sweep on the same baseline cost, against the first?

Two runs of the same sweep (default: sweeps/quickstart.yaml) under one ``--storage``, one after
the other, on one local Ray:

  first    trains every seed's stage 1 and cold arm, and stores them in STORAGE/.baselines/
           (the reference).
  second   finds them there: it trains only the warm arms (``baseline_reused`` in every row).
  minimum  the second run's warm-arm training seconds spread over the slots: all it has left to
           do, with zero overhead.

Printed: both walls, second / first (the target is at most 0.5, issue 13), the minimum as a
fraction of the first, and how many cold arms each run trained.

  python bench/baselines.py                  # the quickstart twice (a few minutes)
  python bench/baselines.py --smoke          # digits, 2 stages of 2 epochs (~40 s, mostly Ray)
  python bench/baselines.py SWEEP.yaml --set k=v --cores 2 --json out.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import common

from wssweep.cells import truthy
from wssweep.orchestrate import connect, run_sweep
from wssweep.results import read_results
from wssweep.tracking import resolve_mode

TARGET = 0.5  # the second run's wall at most this fraction of the first's
REUSED = "baseline_reused"


def main() -> int:
    args = common.parser(__doc__).parse_args()
    resolved = common.load_sweep(args, "baselines")
    if resolved is None:
        return 2
    slots = max(1, int(args.cores // resolved.spec.resources.cpus_per_trial))
    os.environ["RAY_OVERRIDE_RESOURCES"] = json.dumps({"CPU": args.cores})
    connect(None, resolve_mode(resolved.spec.wandb.mode))
    walls, rows = {}, {}
    with tempfile.TemporaryDirectory(prefix="wssweep-bench-") as storage:
        for name in ("first", "second"):
            start = time.perf_counter()
            run_dir = run_sweep(resolved, name=name, storage=Path(storage), address=None)
            walls[name] = time.perf_counter() - start
            rows[name] = read_results(run_dir / "results.csv")
    trained = {name: sum(not truthy(r.get(REUSED)) for r in table) for name, table in rows.items()}
    warm_s = sum(float(r["warm/seconds"] or 0) for r in rows["second"])
    minimum = warm_s / slots
    ratio = walls["second"] / walls["first"]
    out = {"spec": str(args.spec), "overrides": resolved.overrides, "cores": args.cores,
           "slots": slots, "trials": len(rows["first"]), "first_wall_s": walls["first"],
           "second_wall_s": walls["second"], "second_over_first": ratio,
           "minimum_s": minimum, "minimum_over_first": minimum / walls["first"],
           "baselines_trained_first": trained["first"],
           "baselines_trained_second": trained["second"]}
    print(f"\n{args.spec}: {out['trials']} trials a run, {args.cores} cores -> {slots} slots")
    print(f"  first run (trains the baselines; the reference)  {walls['first']:8.1f} s  1.00"
          f"  baselines trained: {trained['first']}/{out['trials']}")
    print(f"  second run (the same sweep, same --storage)      {walls['second']:8.1f} s  "
          f"{ratio:.2f}  baselines trained: {trained['second']}/{out['trials']}  "
          f"(target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'})")
    print(f"  theoretical minimum of the second (its warm arms over {slots} slots)"
          f"  {minimum:8.1f} s  {minimum / walls['first']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
