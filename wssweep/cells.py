"""What a missing value is, and how a table shows one: one rule for every table wssweep writes.

A value is *missing* when it is ``None`` or NaN (a diverged trial's gap, a setting without a
result, a metric no trial reported), whatever float type carries it. Infinity is a value where
raw results are kept (results.csv, W&B: an NQM loss that blew up is a result) and missing where
only finite numbers mean anything (the map's statistics, the science's accuracies); callers say
which with ``infinite``. A missing value is an empty cell (``EMPTY``) in a data table (results.csv,
map/summary.csv, report.html) and an em dash (``DASH``) in text a person reads (a tick label,
docs/results.md). Pure Python, so the science may import it.

Example:
    >>> missing(None), missing(float("nan")), missing(float("inf")), missing(0), missing("")
    (True, True, False, False, False)
    >>> missing(float("inf"), infinite=True), finite(2), finite(float("inf")), finite("2")
    (True, True, False, False)
    >>> finite_or_none(float("nan")), finite_or_none(1.5)
    (None, 1.5)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

#: A missing value in a data table: an empty cell.
EMPTY = ""
#: A missing value in text a person reads, where an empty string would read as a gap in the text.
DASH = "—"


def _inexact(value: Any) -> bool:
    # Only non-integral reals can be NaN or inf; an int is never missing, and a huge int must not
    # reach math.isnan (it cannot be converted to a float).
    return isinstance(value, Real) and not isinstance(value, Integral)


def missing(value: Any, *, infinite: bool = False) -> bool:
    """``None`` or NaN (a Python or NumPy float); with ``infinite``, ±inf too."""
    if value is None:
        return True
    if not _inexact(value):
        return False
    return math.isnan(value) or (infinite and math.isinf(value))


def finite(value: Any) -> bool:
    """A number that is neither NaN nor infinite: an int (a bool counts) or a float of any type."""
    return isinstance(value, Real) and not missing(value, infinite=True)


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None``: how a result without a number is kept."""
    return value if finite(value) else None


def to_float(cell: Any) -> float:
    """A results.csv cell as a float; empty, unparsable or boolean text is NaN."""
    if cell is None or isinstance(cell, bool):
        return math.nan
    if isinstance(cell, int | float):
        return float(cell)
    try:
        return float(str(cell).strip())
    except ValueError:
        return math.nan


def cell_text(cell: Any) -> str:
    """A cell as stripped text; a missing one is empty (``0`` is ``"0"``), as results.csv has it
    (a list or mapping as JSON, so a swept mapping's value and its cell have one text)."""
    if isinstance(cell, list | dict):
        return json.dumps(cell)
    return EMPTY if missing(cell) else str(cell).strip()


def truthy(cell: Any) -> bool:
    """A boolean cell as results.csv writes one (``True``), or as other writers do (1, yes)."""
    return str(cell).strip().lower() in ("true", "1", "1.0", "yes")


def mapping_cell(cell: Any) -> dict[str, Any] | None:
    """A cell holding a swept mapping (results.csv writes one as JSON, e.g. a ``warm`` value of
    ``{"intervention": "none", "keep_optimizer": false}``) as that mapping, else ``None``.

    Example:
        >>> mapping_cell('{"intervention": "dash"}'), mapping_cell("0.1"), mapping_cell({"a": 1})
        ({'intervention': 'dash'}, None, {'a': 1})
    """
    if isinstance(cell, dict):
        return cell
    text = cell_text(cell)
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def mapping_text(mapping: dict[str, Any], fmt: Callable[[Any], str] = str) -> str:
    """A swept mapping named by its own keys, each value through ``fmt``.

    Example:
        >>> mapping_text({"intervention": "l2_init", "l2_coef": 0.001})
        'intervention l2_init, l2_coef 0.001'
    """
    return ", ".join(f"{k} {fmt(v)}" for k, v in mapping.items())
