"""Atomic file writes: readers (a concurrent trial, a half-finished run's map) never see half."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success rename it over ``path``, else remove it.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_write(target) as handle:
        ...     _ = handle.write("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shown(path: str | Path, limit: int = 120) -> str:
    """``path`` for an error message: long ones are cut, with their length."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def path_kind(path: str | Path, key: str) -> str | None:
    """``"file"``, ``"dir"``, ``"other"`` or ``None`` (absent) for a user-given path.

    A path the operating system refuses to look up (too long, a NUL byte) is bad input, an
    ``InputError`` naming ``key``, not a traceback.

    Example:
        >>> path_kind("/", "RUN_DIR"), path_kind("/no/such/place", "RUN_DIR")
        ('dir', None)
        >>> path_kind("x" * 5000, "RUN_DIR")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        wssweep.errors.InputError: RUN_DIR: expected a path the file system accepts (...
    """
    from wssweep.errors import InputError

    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(key, f"a path the file system accepts ({reason})", shown(path)) from None
    if stat.S_ISDIR(status.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(status.st_mode) else "other"


def check_can_create(path: str | Path, key: str, expected: str, given: str | None = None) -> None:
    """Raise an ``InputError`` naming ``key`` unless ``path`` is a directory or one can be made
    there, creating nothing: its nearest existing ancestor must be a directory that takes new
    entries, probed with a temporary directory removed at once (``access()`` says yes to root
    even where nothing can be made, as in /proc). ``given`` is what the message shows (``path``
    by default).

    Example:
        >>> check_can_create(tempfile.gettempdir() + "/not/yet", "--storage", "a directory")
        >>> check_can_create("/proc/runs", "--storage", "a directory")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        wssweep.errors.InputError: --storage: expected a directory (...), got '/proc/runs'
    """
    from wssweep.errors import InputError

    path = Path(path).absolute()
    shown_as = shown(path) if given is None else given
    existing = next(p for p in (path, *path.parents) if path_kind(p, key))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(key, expected, shown_as)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".wssweep-probe-", dir=existing))
    except OSError as exc:
        raise InputError(key, f"{expected} ({exc.strerror})", shown_as) from None
