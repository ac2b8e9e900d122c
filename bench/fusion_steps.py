"""How many model-steps per second does fused training give, against training one by one?

The quickstart's model and optimizer (configs/online_mnist1d_mlp.yaml): an MLP 40-100-100-10
with ReLU, Adam at 1e-3, batch 128, on a 4000-example pool (MNIST-1D's size; random inputs, since
only the time is measured). K members train E epochs each (the stop rule can only end them at
the epoch cap, so no member is dropped early), with train accuracy measured after every epoch as
the stage loop does.

  fused       ``train_stage_group`` on the K members (engine bmm, and vmap for comparison)
  sequential  the reference: K ``train_stage`` calls, one after the other

Printed per K: model-steps/s of each, and fused/sequential, against the theoretical reference
K× (a fused step of K models costing what one model's step costs). One thread throughout.

  python bench/fusion_steps.py            # K = 1, 4, 12, 32; well under a minute
  python bench/fusion_steps.py --quick    # K = 1, 4 on a 512-example pool: a check that it runs
"""

from __future__ import annotations

import time

import torch

from wssweep.config import ModelConfig
from wssweep.science.fused import Member, train_stage_group
from wssweep.science.models import build_model
from wssweep.science.optim import make_optimizer
from wssweep.science.train import StopRule, train_stage

N, BATCH, EPOCHS = 4000, 128, 2
STOP = StopRule(train_acc=1.0, plateau_std=0.0, plateau_window=10, max_epochs=EPOCHS,
                min_epochs=1)


def group(k: int, n: int = N) -> list[Member]:
    x = torch.randn(n, 40, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1))
    out = []
    for i in range(k):
        model = build_model(ModelConfig(name="mlp", width=100, depth=2), input_shape=(40,),
                            num_classes=10, seed=i)
        opt = make_optimizer("adam", model.parameters(), 1e-3, momentum=0.0,
                             betas=(0.9, 0.999), weight_decay=0.0)
        out.append(Member(model=model, optimizer=opt, schedule=lambda step: 1e-3, x=x, y=y,
                          x_test=x[:1000], y_test=y[:1000], batch_size=BATCH, stop=STOP,
                          generator=torch.Generator().manual_seed(100 + i)))
    return out


def sequential(members: list[Member]) -> int:
    return sum(train_stage(m.model, m.optimizer, m.schedule, m.x, m.y, m.x_test, m.y_test,
                           batch_size=m.batch_size, stop=m.stop, generator=m.generator).steps
               for m in members)


def rate(run, k: int, repeats: int = 2, n: int = N) -> float:
    """Best of ``repeats`` model-steps/s (the machine may be shared)."""
    best = 0.0
    for _ in range(repeats):
        members = group(k, n)
        start = time.perf_counter()
        steps = run(members)
        best = max(best, steps / (time.perf_counter() - start))
    return best


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="K = 1, 4 on a small pool, once")
    args = ap.parse_args()
    sizes, n, repeats = ((1, 4), 512, 1) if args.quick else ((1, 4, 12, 32), N, 2)
    torch.set_num_threads(1)
    print(f"MLP 40-100-100-10, Adam, batch {BATCH}, pool {n}, {EPOCHS} epochs per member, "
          "1 thread; model-steps/s")
    print(f"{'K':>3} {'sequential':>11} {'fused bmm':>10} {'fused vmap':>11} "
          f"{'bmm/seq':>8} {'vmap/seq':>9} {'reference':>9}")
    for k in sizes:
        seq = rate(sequential, k, repeats, n)
        bmm = rate(lambda ms: sum(r.steps for r in train_stage_group(ms, engine="bmm")), k,
                   repeats, n)
        vmap = rate(lambda ms: sum(r.steps for r in train_stage_group(ms, engine="vmap")), k,
                    repeats, n)
        print(f"K={k:>3} {seq:>11.0f} {bmm:>10.0f} {vmap:>11.0f} {bmm / seq:>7.2f}x "
              f"{vmap / seq:>8.2f}x {k:>8}x")
