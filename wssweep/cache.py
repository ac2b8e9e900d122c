"""Artifact reuse within one run: what one trial computed, another with the same inputs loads.

A sweep over warm-start settings trains the same stage 1 and the same cold baseline for every
setting of a seed. ``run_trial`` keys those artifacts by a hash of exactly the settings that
determine them (``wssweep.science.experiment.baseline_key``) and stores them here, under the run
directory. Writes are atomic (temp file, then rename).

Concurrent trials of one seed never both train its baseline: a trial that finds it missing
*claims* it (an exclusive ``flock`` on ``<key>.lock``, released when it has stored the artifact
or when its process ends, however it ends); another trial that finds the claim taken *waits*
for it (a shared ``flock``, granted once the claim is released) and then loads what was stored,
or, if the claimant died first, claims it itself. The locks need a filesystem with ``flock``:
local disks, and the shared storage of a cluster where it supports them (NFSv4 does).

Example:
    >>> import tempfile
    >>> cache = ArtifactCache(tempfile.mkdtemp())
    >>> cache.load("k") is None
    True
    >>> cache.claim("k"), ArtifactCache(cache.root).claim("k")  # a second claimant is refused
    (True, False)
    >>> cache.save("k", {"acc": [50.0, 61.5]})
    >>> cache.release("k")
    >>> ArtifactCache(cache.root).wait("k")
    {'acc': [50.0, 61.5]}
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import torch

from wssweep.files import atomic_write


class ArtifactCache:
    """A directory of ``<key>.pt`` files (``torch.save`` payloads)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._claims: dict[str, int] = {}  # key -> the open lock file holding its claim

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

    def _lock_file(self, key: str) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def claim(self, key: str) -> bool:
        """Take the claim on ``key`` (this process computes it) unless another holds it."""
        if key in self._claims:
            return True
        fd = self._lock_file(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._claims[key] = fd
        return True

    def release(self, key: str) -> None:
        """Give up the claim on ``key`` (after saving it, or on the way out)."""
        fd = self._claims.pop(key, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def release_all(self) -> None:
        for key in list(self._claims):
            self.release(key)

    def wait(self, key: str) -> Any | None:
        """Block until nobody holds the claim on ``key``; then what is stored under it, or
        ``None`` when its claimant ended without storing it."""
        fd = self._lock_file(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return self.load(key)
