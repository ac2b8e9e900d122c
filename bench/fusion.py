"""What training trials as fused groups (``run_group``) saves over running them one by one.

In-process (no Ray), on a grid sweep's settings (default the quickstart's four) and N seeds:

- (a) ``run_trial`` of every (setting, seed) one after another, with one ``ArtifactCache`` in a
  temporary directory: today's path, one cold arm per seed.
- (b) ``run_group`` over the seeds of one setting, one group after another, sharing a cache too
  (the issue's default grouping: the first group trains the cold arms, the others reuse them).
- (c) one ``run_group`` of everything (``fuse: settings``): the cold arm of a seed trained once.

each with every ``--threads`` value. It prints the walls, (a)/(b) and (a)/(c) against the
reference (K x would be perfect: a group of K trials costing one trial), and whether each
setting's mean gap in (b) and (c) lies within the 95 % CI of (a)'s over the seeds.

  python bench/fusion.py                    # the quickstart, 12 seeds, threads 1 and 2 (long)
  python bench/fusion.py --seeds 3 --threads 2
  python bench/fusion.py --smoke            # digits, 2 chunks, 2 epochs: seconds
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from wssweep.cache import ArtifactCache
from wssweep.science.experiment import load_experiment_data, run_trial
from wssweep.science.group import run_group
from wssweep.space import grid_trials

Z95 = 1.96


def measure(cfgs: list[list]) -> tuple[float, list, float, list, float, list]:
    """(a), (b) and (c) of ``cfgs`` (one row of seeds per setting): each wall and metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        cache_a, cache_b = ArtifactCache(Path(tmp) / "a"), ArtifactCache(Path(tmp) / "b")
        start = time.perf_counter()
        a = [[run_trial(c, cache=cache_a) for c in row] for row in cfgs]
        wall_a = time.perf_counter() - start
        start = time.perf_counter()
        b = [run_group(row, cache=cache_b) for row in cfgs]
        wall_b = time.perf_counter() - start
    start = time.perf_counter()
    c = run_group([c for row in cfgs for c in row])
    return wall_a, a, wall_b, b, time.perf_counter() - start, c


def agrees(reference: list[dict], other: list[dict]) -> bool:
    """Whether ``other``'s mean gap is within the 95 % CI of ``reference``'s (over seeds)."""
    ref = [m["gap"] for m in reference if m["gap"] is not None]
    got = [m["gap"] for m in other if m["gap"] is not None]
    if len(ref) != len(got):
        return False  # a trial diverged in one run only
    if len(ref) < 2:  # one seed has no CI: the same gap, float rounding aside
        return all(math.isclose(g, r, abs_tol=1e-6) for g, r in zip(got, ref, strict=True))
    half = Z95 * statistics.stdev(ref) / math.sqrt(len(ref))
    return abs(statistics.mean(got) - statistics.mean(ref)) <= half + 1e-9


def main() -> int:
    ap = common.parser(__doc__, cores=False, json=False)
    ap.add_argument("--seeds", type=int, default=12, help="seeds per setting")
    ap.add_argument("--threads", default="1,2", help="torch threads, comma-separated")
    args = ap.parse_args()
    resolved = common.load_sweep(args, "fusion")
    if resolved is None:
        return 2
    settings = []
    for t in grid_trials(resolved.spec, resolved.experiment):
        if t["setting"] not in settings:
            settings.append(t["setting"])
    seeds = range(args.seeds)
    k_b, k_c = len(seeds), len(seeds) * len(settings)
    first = resolved.config_for(settings[0], 0)
    load_experiment_data(first, torch.device("cpu"))  # fill the data cache before timing
    print(f"{args.spec}: {len(settings)} settings x {len(seeds)} seeds = {k_c} trials")
    for threads in (int(t) for t in args.threads.split(",")):
        cfgs = [[resolved.config_for({**s, "threads": threads}, seed) for seed in seeds]
                for s in settings]
        # Untimed: the first trial and group pay one-time costs (imports, kernels, allocator).
        run_trial(cfgs[0][0])
        run_group(cfgs[0][:2])
        wall_a, a, wall_b, b, wall_c, flat = measure(cfgs)
        c = [flat[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(settings))]
        steps = all(x["warm/steps"] == y["warm/steps"] == z["warm/steps"]
                    for ra, rb, rc in zip(a, b, c, strict=True)
                    for x, y, z in zip(ra, rb, rc, strict=True))
        print(f"threads={threads} (a) run_trial one by one, shared cache: {wall_a:.2f} s")
        print(f"threads={threads} (b) run_group per setting (K={k_b}), shared cache: "
              f"{wall_b:.2f} s  (a)/(b) = {wall_a / wall_b:.2f}x  (reference: {k_b}x would be "
              "perfect)")
        print(f"threads={threads} (c) run_group of everything (K={k_c}): {wall_c:.2f} s  "
              f"(a)/(c) = {wall_a / wall_c:.2f}x  (reference: {k_c}x would be perfect)")
        ok_b = all(agrees(ra, rb) for ra, rb in zip(a, b, strict=True))
        ok_c = all(agrees(ra, rc) for ra, rc in zip(a, c, strict=True))
        print(f"threads={threads} gaps within the seeds' 95% CI of (a): (b) "
              f"{'yes' if ok_b else 'NO'}, (c) {'yes' if ok_c else 'NO'}; warm steps equal: "
              f"{'yes' if steps else 'no (float32 rounding moved a stop)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
