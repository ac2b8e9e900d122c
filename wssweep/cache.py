"""Artifact reuse within one run: what one trial computed, another with the same inputs loads.

A sweep over warm-start settings trains the same stage 1 and the same cold baseline for every
setting of a seed. ``run_trial`` keys those artifacts by a hash of exactly the settings that
determine them (``wssweep.science.experiment.baseline_key``) and stores them here, under the run
directory. Writes are atomic (temp file, then rename), so concurrent trials are safe: two trials
that miss at the same time both compute the artifact, and the second rename replaces the first
with the same content (training is deterministic given the seed).

Example:
    >>> import tempfile
    >>> cache = ArtifactCache(tempfile.mkdtemp())
    >>> cache.load("k") is None
    True
    >>> cache.save("k", {"acc": [50.0, 61.5]})
    >>> cache.load("k")
    {'acc': [50.0, 61.5]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from wssweep.files import atomic_write


class ArtifactCache:
    """A directory of ``<key>.pt`` files (``torch.save`` payloads)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> Any | None:
        """The artifact stored under ``key``, or ``None`` if no trial has stored it yet."""
        path = self.path(key)
        if not path.is_file():
            return None
        # Our own file, written by a trial of this run (it holds dataclasses, not only tensors).
        return torch.load(path, map_location="cpu", weights_only=False)

    def save(self, key: str, artifact: Any) -> None:
        """Store ``artifact`` under ``key`` atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path(key), "wb") as handle:
            torch.save(artifact, handle)
