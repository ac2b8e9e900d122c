"""One rule for a missing value, and every table that writes one follows it."""

import math

import numpy as np
import pytest

from wssweep import cells, gapmap, page, plots, results

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("value, is_missing, is_missing_or_infinite, is_finite", [
    (None, True, True, False),
    (NAN, True, True, False),
    (np.float64("nan"), True, True, False),
    (np.float32("nan"), True, True, False),
    (INF, False, True, False),
    (-INF, False, True, False),
    (np.float32("inf"), False, True, False),
    (0.0, False, False, True),
    (np.float32(2.5), False, False, True),
    (np.float64(-1e-9), False, False, True),
    (0, False, False, True),
    (np.int64(3), False, False, True),
    (10**400, False, False, True),  # too big for a float, and still no overflow
    (True, False, False, True),
    ("", False, False, False),
    ("nan", False, False, False),
    ([NAN], False, False, False),
])
def test_the_missing_rule(value, is_missing, is_missing_or_infinite, is_finite):
    # None and NaN of any float type are missing; inf only when the caller counts it
    assert cells.missing(value) is is_missing
    assert cells.missing(value, infinite=True) is is_missing_or_infinite
    # a finite number is a real number that is not missing, even counting inf
    assert cells.finite(value) is is_finite


def test_finite_or_none_keeps_the_number_itself():
    # the science keeps a finite accuracy as it is and drops NaN and inf to None
    assert cells.finite_or_none(97.5) == 97.5
    assert cells.finite_or_none(NAN) is None and cells.finite_or_none(-INF) is None
    assert cells.finite_or_none(None) is None


def test_every_table_shows_a_missing_value_by_the_rule(tmp_path):
    row = {"trial_id": "t", "status": "completed", "gap": NAN, "saving": None,
           "nqm/final_loss": INF, "x": np.float32("nan")}
    text = results.read_results(results.write_results(tmp_path, [row], []))[0]
    # results.csv: missing values are empty cells, and a column nothing fills is left out
    assert "gap" not in text and "saving" not in text and "x" not in text
    # ...but it keeps an infinite result, which is what the trial reported
    assert text["nqm/final_loss"] == "inf"
    # report.html's cells: NaN, None and inf are empty; numbers keep four digits
    assert [page._fmt_cell(v) for v in (NAN, None, INF, 0.123456, 7, "closed")] == [
        cells.EMPTY, cells.EMPTY, cells.EMPTY, "0.1235", "7", "closed"]
    # a tick label: a missing value is a dash, not an empty label
    assert plots.fmt_value(None) == plots.fmt_value(NAN) == cells.DASH
    # a cell read as text: missing is empty, zero is "0"
    assert [gapmap.cell_text(v) for v in (None, NAN, 0, " a ")] == ["", "", "0", "a"]
    assert math.isnan(gapmap.to_float(gapmap.cell_text(NAN)))
