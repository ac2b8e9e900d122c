"""User code for end-to-end tests, loaded by import path inside Ray workers."""

from torch import nn


def broken_net(input_shape, num_classes) -> nn.Module:
    raise RuntimeError("broken_net refuses to build (a trial made to raise)")


def tiny_net(input_shape, num_classes, hidden: int = 16) -> nn.Module:
    import math

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
