"""The metrics declaration is the one source: results.csv, the spec, W&B, the map, the README."""

from pathlib import Path

from wssweep import gapmap, results, spec, tracking
from wssweep.metrics import METRICS, metric_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_reader_takes_its_metrics_from_the_declaration():
    names = [m.name for m in METRICS]
    # results.csv's metric columns are the declared ones, in order
    assert names == results.METRIC_COLUMNS
    # a sweep may optimize exactly the declared optimizable ones
    assert set(spec.REPORTED_METRICS) == {m.name for m in METRICS if m.optimizable}
    # W&B keeps the last value of the declared summary metrics
    assert set(tracking.MAP_METRICS) == {m.name for m in METRICS if m.in_wandb_summary}
    # and the map pools each declared pooled metric the declared way: an interval, or a mean
    columns = gapmap.summary_columns([])
    for m in METRICS:
        if m.pooled == "ci":
            assert {f"{m.name}_mean", f"{m.name}_lo", f"{m.name}_hi"} <= set(columns), m.name
        elif m.pooled:
            assert m.name in columns, m.name
        else:
            assert not {m.name, f"{m.name}_mean"} & set(columns), m.name


def test_the_readme_table_is_the_declaration():
    text = README.read_text()
    table = text.split("<!-- metrics:start -->\n")[1].split("\n<!-- metrics:end -->")[0]
    assert table == metric_table()


def test_each_metric_says_what_it_is():
    for m in METRICS:
        # a unit and a description for every metric, and one name each
        assert m.unit and m.description, m.name
    assert len({m.name for m in METRICS}) == len(METRICS)
