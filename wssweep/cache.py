"""The baseline store: what one trial computed, another with the same inputs loads.

A sweep over warm-start settings trains the same stage 1 and the same cold baseline for every
setting of a seed, and a second sweep on the same baseline trains it again. ``run_trial`` keys
those artifacts by a hash of exactly what determines them (``wssweep.science.experiment.
baseline_key``: the config without its warm settings, the device type, the science's code) and
stores them here: one store per ``--storage`` directory (``STORAGE/.baselines/``), shared by
every run under it. Writes are atomic (temp file, then rename); each artifact has a sidecar
``<key>.json`` saying what it is, and a load touches it, so pruning drops the least recently
used (``wssweep cache ls`` / ``prune``).

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
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wssweep.files import atomic_write

ABOUT_SUFFIX = ".json"  # beside <key>.pt: what the artifact is (data, model, seed, ...)


@dataclass(frozen=True)
class Entry:
    """One stored artifact."""

    key: str
    size: int  # bytes
    last_used: float  # seconds since the epoch: stored, or last loaded
    about: dict[str, Any]


class ArtifactCache:
    """A directory of ``<key>.pt`` files (``torch.save`` payloads)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._claims: dict[str, int] = {}  # key -> the open lock file holding its claim

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> Any | None:
        """The artifact stored under ``key``, or ``None`` if no trial has stored it yet (or it
        was pruned)."""
        path = self.path(key)
        try:
            # Our own file, written by a trial (it holds dataclasses, not only tensors).
            artifact = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            return None
        os.utime(path)  # last used now: what pruning by age or size goes by
        return artifact

    def save(self, key: str, artifact: Any, about: dict[str, Any] | None = None) -> None:
        """Store ``artifact`` under ``key`` atomically; ``about`` says what it is."""
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.root / f"{key}{ABOUT_SUFFIX}") as handle:
            handle.write(json.dumps({"key": key, "stored_at": time.time(), **(about or {})}))
        with atomic_write(self.path(key), "wb") as handle:
            torch.save(artifact, handle)

    def entries(self) -> list[Entry]:
        """Every stored artifact, least recently used first."""
        out = []
        for path in self.root.glob("*.pt"):
            if not path.is_file():
                continue  # not one this store wrote (a folder named like one)
            try:
                stat = path.stat()
                about = json.loads((self.root / f"{path.stem}{ABOUT_SUFFIX}").read_text())
            except (OSError, ValueError):
                about = {}
                if not path.exists():
                    continue  # pruned meanwhile
            if not isinstance(about, dict):
                about = {}  # a sidecar it did not write: the artifact stays listed
            out.append(Entry(path.stem, stat.st_size, stat.st_mtime, about))
        return sorted(out, key=lambda e: (e.last_used, e.key))

    def prune(self, *, max_bytes: int | None = None, older_than_s: float | None = None,
              now: float | None = None) -> list[Entry]:
        """Delete artifacts unused for ``older_than_s`` seconds, then the least recently used
        until at most ``max_bytes`` remain; returns those deleted. An artifact being computed
        (its claim held) is kept; a trial that finds its artifact gone trains it again."""
        now = time.time() if now is None else now
        entries = self.entries()
        total = sum(e.size for e in entries)
        gone = []
        for entry in entries:
            stale = older_than_s is not None and now - entry.last_used > older_than_s
            over = max_bytes is not None and total > max_bytes
            if not (stale or over):
                continue
            try:
                if not self.claim(entry.key):
                    continue
            except OSError:
                continue  # its lock is not a file this store can open: leave it be
            try:
                for suffix in (".pt", ABOUT_SUFFIX):
                    path = self.root / f"{entry.key}{suffix}"
                    if path.is_file() or path.is_symlink():
                        path.unlink(missing_ok=True)
            finally:
                self.release(entry.key)
            total -= entry.size
            gone.append(entry)
        return gone

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
