"""Resolve ``package.module:function`` import paths that configs use for user code."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from wssweep.errors import InputError


def import_object(path: str, key: str) -> Callable[..., Any]:
    """Import the object named by ``path`` (``package.module:attribute``).

    ``key`` is the config key that held the path; a bad path raises ``InputError`` naming it.

    Example:
        >>> import_object("math:sqrt", "model.factory")(4.0)
        2.0
    """
    expected = "an import path 'package.module:function' that can be imported"
    if not isinstance(path, str) or path.count(":") != 1:
        # The schema's ImportPath refuses this form first; only a library caller gets here.
        raise ValueError(f"{key}: {expected}, got {path!r}")
    module_name, attr = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(key, f"{expected} (import failed: {exc})", path) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(key, f"{expected} (module {module_name!r} has no {attr!r})", path)
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(key, f"{expected} (it is not callable)", path)
    return obj
