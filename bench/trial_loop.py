"""What does the science's trial loop cost, against a bare PyTorch loop doing the same work?

Measured, on this machine, for one trial (default: the quickstart's first setting and seed):

  trial    ``run_trial(cfg)`` in this process: both arms, every stage, its stop rule, schedules,
           interventions and evaluations (no cache, no checkpoint, no progress sink).
  bare     the reference: a plain PyTorch loop doing the SAME work the trial reports it did:
           it loads the data, then for stage 1 and for each later stage of each arm, a fresh
           model of the same architecture and the same optimizer, that stage's optimizer steps
           on mini-batches of its pool size, one train-accuracy pass per epoch, then test and
           validation accuracy.
  minimum  the bare loop is the floor this bench holds the trial to: the target is at most
           1.10x of it (issue 13, cheap steps).

After one untimed round (data generated, imports and kernels warm), both are timed ``--repeat``
times, alternating, and the median of each is compared; one thread
(``threads`` of the config) as a trial of the quickstart runs.

  python bench/trial_loop.py                 # the quickstart trial (~1-2 min)
  python bench/trial_loop.py --smoke         # digits, 2 stages of 2 epochs (seconds)
  python bench/trial_loop.py SWEEP.yaml --set k=v --repeat 5
"""

from __future__ import annotations

import statistics
import time

import common
import torch
import torch.nn.functional as F

from wssweep.science.data import holdout
from wssweep.science.experiment import derive_seed, load_experiment_data, run_trial
from wssweep.science.models import build_model
from wssweep.science.optim import make_optimizer
from wssweep.science.train import EVAL_BATCH
from wssweep.spec import load_trial_config

TARGET = 1.10  # the trial's wall at most this multiple of the bare loop's


@torch.no_grad()
def bare_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(x[i : i + EVAL_BATCH]).argmax(1) == y[i : i + EVAL_BATCH]).sum()
                  for i in range(0, len(x), EVAL_BATCH))
    model.train()
    return float(correct) / len(x)


def bare_loop(cfg, work: list[tuple[int, int, int]]) -> float:
    """Seconds for a bare loop over ``work``: (pool size, steps, epochs) per trained stage."""
    start = time.perf_counter()
    # Loading the data is part of a trial's work, here as there.
    data, x_val, y_val = holdout(load_experiment_data(cfg, torch.device("cpu")),
                                 cfg.protocol.val_fraction, torch.Generator().manual_seed(0))
    o = cfg.optim
    for n, steps, epochs in work:
        model = build_model(cfg.model, input_shape=data.input_shape,
                            num_classes=data.num_classes, seed=derive_seed(cfg.seed, "init"))
        opt = make_optimizer(o.name, model.parameters(), cfg.lr, momentum=o.momentum,
                             betas=o.betas, weight_decay=o.weight_decay)
        x, y = data.x_train[:n], data.y_train[:n]
        per_epoch = max(1, steps // max(epochs, 1))
        done = 0
        for _ in range(epochs):
            order = torch.randperm(n)
            for i in range(min(per_epoch, steps - done)):
                idx = order[(i * o.batch_size) % n :][: o.batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
            bare_accuracy(model, x, y)
        bare_accuracy(model, data.x_test, data.y_test)
        bare_accuracy(model, x_val, y_val)
    return time.perf_counter() - start


def work_of(metrics: dict) -> list[tuple[int, int, int]]:
    """What the trial trained: stage 1 once, then every later stage of each arm."""
    out = []
    for arm in ("warm", "cold"):
        stages = zip(metrics[f"{arm}/stage_n_train"], metrics[f"{arm}/stage_steps"],
                     metrics[f"{arm}/stage_epochs"], strict=True)
        for k, stage in enumerate(stages):
            if k > 0 or arm == "warm":  # stage 1 is shared by the arms
                out.append(stage)
    return out


def main() -> None:
    parser = common.parser(__doc__, cores=False, json=False)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cfg = load_trial_config(args.spec, common.overrides(args))
    cfg = cfg.model_copy(update={"device": "cpu"})
    torch.set_num_threads(cfg.threads)
    # One untimed round first: the data generated and cached, lazy imports and kernels warm.
    bare_loop(cfg, work_of(run_trial(cfg)))
    trial_s, bare_s, work = [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        metrics = run_trial(cfg)
        trial_s.append(time.perf_counter() - start)
        work = work_of(metrics)
        bare_s.append(bare_loop(cfg, work))
    trial, bare = statistics.median(trial_s), statistics.median(bare_s)
    steps = sum(s for _, s, _ in work)
    print(f"{args.spec}: one trial, {len(work)} trained stages, {steps} optimizer steps, "
          f"{cfg.threads} thread(s), median of {args.repeat}")
    print(f"  bare PyTorch loop (the reference and minimum)  {bare:8.3f} s  1.00x")
    print(f"  run_trial (the science's loop)                 {trial:8.3f} s  {trial / bare:.2f}x"
          f"  (target <= {TARGET:.2f}x: {'met' if trial / bare <= TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
