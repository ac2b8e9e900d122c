"""How many trials per second does one GPU train, fused into groups or packed as processes,
against one trial at a time on it?

The trials: seeds 0, 1, ... of the first setting of a sweep (default the quickstart: online
MNIST-1D in 10 chunks, each stage to 99 % train accuracy, Adam, batch 128), on ``device: cuda``,
once per model of ``--models`` (the quickstart's MLP, and the MNIST-1D paper's conv1d, whose
forward pass runs under bfloat16 autocast where the GPU has it). No baseline cache: every trial
trains its stage 1, warm arm and cold arm. The stage loops read nothing back from the GPU within
an epoch (the loss is checked on the device, once per epoch).

  fused   ``run_group`` of K seeds in this process, K in ``--groups`` (1, 8, 32): one batched
          model per stage for all K trials' arms
  packed  N ``run_trial`` processes on the GPU at once, N in ``--per-gpu`` (1, 4, 8): spawned,
          each capped at 1/N of the GPU's memory (``torch.cuda.set_per_process_memory_fraction``),
          each one trial of its own seed, started together after a warm-up trial

The reference is one trial per GPU (K = 1, and N = 1: the same trial, in-process and in a
process of its own). Printed per row: trials/s, its ratio to the reference and the theoretical
ceiling of that ratio (K x for a group of K: a fused step of K models costing one model's step;
N x for N processes: N trials sharing the GPU without slowing each other), and the peak GPU memory
per trial (``torch.cuda.max_memory_allocated``: of the group over K; of each process, the largest;
the CUDA context each process holds besides, a few hundred MiB, is not counted). Each timing
excludes CUDA start-up and data generation (a warm-up trial runs first).

Without a CUDA GPU it measures nothing: it says so on stderr and exits with status 1, or 0 with
``--allow-no-gpu`` (for scripts that run every benchmark on any machine). Bad input: status 2.

  python bench/gpu.py                        # the quickstart, mlp and conv1d: minutes on a GPU
  python bench/gpu.py --quick                # 2 stages of at most 2 epochs: a check that it runs
  python bench/gpu.py configs/online_cifar10_resnet18.yaml --models resnet18 \\
      --set data.root=/path/to/cifar-10-batches-py   # ResNet-18 in channels_last (not fusable:
                                                     # run_group trains its trials one by one)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue as queues
import sys
import time

import common

GROUPS, PER_GPU, MODELS = (1, 8, 32), (1, 4, 8), ("mlp", "conv1d")
QUICK_SETS = ["protocol.chunks=2", "protocol.stop.max_epochs=2", "data.train_size=1000"]
WARMUP_SETS = ["protocol.chunks=2", "protocol.stop.max_epochs=1", "data.train_size=500"]
MIB = 2**20
NO_GPU = ("gpu: no CUDA GPU is visible (torch.cuda.is_available() is false), so nothing was "
          "measured; on a GPU this times fused groups (run_group of K trials) and packed trials "
          "(N run_trial processes per GPU) against one trial per GPU")


def configs(args: argparse.Namespace, model: str, sets: list[str], n: int) -> list:
    """Seeds 0..n-1 of the spec's first setting, ``model`` on CUDA, after ``sets``."""
    from wssweep.spec import load_trial_config

    cfg = load_trial_config(args.spec, [*sets, *args.set, "device=cuda", f"model.name={model}"])
    return [cfg.model_copy(update={"seed": seed}) for seed in range(n)]


def fused(cfgs: list, warmup: list) -> tuple[float, float]:
    """Wall seconds of ``run_group(cfgs)`` and its peak GPU memory (bytes), after a warm-up."""
    import torch

    from wssweep.science.group import run_group

    run_group(warmup)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run_group(cfgs)
    torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cuda.max_memory_allocated()


def _packed_worker(cfg, warmup, fraction: float, barrier, queue) -> None:
    """One packed process: capped, warmed up, then one timed ``run_trial`` once all are ready."""
    try:
        import torch

        from wssweep.science.experiment import run_trial

        torch.cuda.set_per_process_memory_fraction(fraction)
        run_trial(warmup)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        barrier.wait()
        start = time.time()  # wall clock: comparable across processes
        run_trial(cfg)
        torch.cuda.synchronize()
        queue.put((start, time.time(), torch.cuda.max_memory_allocated(), None))
    except Exception as exc:  # reported by the parent, not lost with the child
        barrier.abort()  # the others stop waiting
        queue.put((0.0, 0.0, 0, f"{type(exc).__name__}: {exc}"))


def packed(cfgs: list, warmup: object) -> tuple[float, float]:
    """Wall seconds of ``len(cfgs)`` concurrent ``run_trial`` processes (the first start to the
    last end) and the largest process's peak GPU memory (bytes)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(len(cfgs)), ctx.Queue()
    procs = [ctx.Process(target=_packed_worker,
                         args=(cfg, warmup, 1 / len(cfgs), barrier, queue)) for cfg in cfgs]
    for p in procs:
        p.start()
    reports = []
    while len(reports) < len(procs):
        try:
            reports.append(queue.get(timeout=5))
        except queues.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):  # killed before it could report
                for p in procs:
                    p.terminate()
                raise RuntimeError("a packed trial's process died without a report") from None
    for p in procs:
        p.join()
    errors = [r[3] for r in reports if r[3] is not None]
    if errors:
        raise RuntimeError(f"a packed trial failed: {errors[0]}")
    return (max(r[1] for r in reports) - min(r[0] for r in reports),
            max(r[2] for r in reports))


def sizes(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(","))
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers, comma-separated: {text!r}")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", default=str(common.DEFAULT_SPEC),
                    help="a sweep spec or experiment config (its first setting is used)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override an experiment key, as in wssweep run")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="model.name values, comma-separated")
    ap.add_argument("--groups", type=sizes, default=GROUPS, help="fused group sizes K")
    ap.add_argument("--per-gpu", type=sizes, default=PER_GPU, help="packed processes per GPU N")
    ap.add_argument("--quick", action="store_true", help="2 stages of at most 2 epochs")
    ap.add_argument("--allow-no-gpu", action="store_true",
                    help="without a CUDA GPU, exit with status 0 (default 1)")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 0 if args.allow_no_gpu else 1

    from wssweep.errors import InputError
    from wssweep.science.models import cuda_bf16_native

    sets = QUICK_SETS if args.quick else []
    models = [m for m in args.models.split(",") if m]
    try:
        plans = {m: (configs(args, m, sets, max(*args.groups, *args.per_gpu)),
                     configs(args, m, WARMUP_SETS, 1)) for m in models}
    except InputError as exc:
        print(f"gpu: error: {exc}", file=sys.stderr)
        return 2
    amp = "yes: conv1d and resnet18 train under bfloat16 autocast" if cuda_bf16_native() else (
        "no: every model trains in float32")
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__}, CUDA {torch.version.cuda}"
          f" | native bfloat16 {amp}")
    print(f"{args.spec}{' --quick' if args.quick else ''}: seeds of its first setting; "
          "reference: one trial per GPU (K=1, N=1); ceiling: K x, N x")
    for model, (cfgs, warmup) in plans.items():
        print(f"\nmodel {model}, {cfgs[0].data.name}, {cfgs[0].protocol.kind} protocol")
        print(f"{'':<12} {'wall s':>8} {'trials/s':>9} {'vs 1/GPU':>9} {'ceiling':>8} "
              f"{'peak MiB/trial':>15}")
        reference: dict[str, float] = {}
        for kind, size in [*(("fused", k) for k in args.groups),
                           *(("packed", n) for n in args.per_gpu)]:
            torch.cuda.empty_cache()  # the packed processes get the memory this one cached
            if kind == "fused":
                wall, peak = fused(cfgs[:size], warmup)
                per_trial, label = peak / size, f"fused K={size}"
            else:
                wall, peak = packed(cfgs[:size], warmup[0])
                per_trial, label = peak, f"packed N={size}"  # a process is one trial
            rate = size / wall
            if size == 1:
                reference[kind] = rate
            ratio = f"{rate / reference[kind]:8.2f}x" if kind in reference else f"{'-':>9}"
            print(f"{label:<12} {wall:>8.2f} {rate:>9.3f} {ratio} {size:>7}x "
                  f"{per_trial / MIB:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
