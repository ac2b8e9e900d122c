"""User code for end-to-end tests, loaded by import path inside Ray workers."""

import math
import time

from torch import nn


def broken_net(input_shape, num_classes) -> nn.Module:
    """A model that builds (so validate accepts it) and raises when it trains: a failing trial."""

    class BrokenNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(math.prod(input_shape), num_classes)

        def forward(self, x):
            raise RuntimeError("broken_net refuses to train (a trial made to raise)")

    return BrokenNet()


def tiny_net(input_shape, num_classes, hidden: int = 16) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def slow_net(input_shape, num_classes, delay: float = 0.05) -> nn.Module:
    """A linear classifier whose forward pass waits ``delay`` seconds, so a trial lasts a few
    seconds of wall time without using CPU, and overlaps and kill points hold even on a busy
    2-core machine."""

    class SlowNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Sequential(nn.Flatten(),
                                        nn.Linear(math.prod(input_shape), num_classes))

        def forward(self, x):
            time.sleep(delay)
            return self.linear(x)

    return SlowNet()
