"""The metrics declaration is the one source: results.csv, the spec, W&B, the map, the README."""

from pathlib import Path

from wssweep import gapmap, results, spec, tracking
from wssweep.metrics import METRIC, METRICS, metric_table

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


def test_the_science_reports_what_the_declaration_declares():
    from wssweep.config import ExperimentConfig
    from wssweep.science.experiment import COLD_CHOSEN, PROGRESS_LABELS, run_trial
    from wssweep.space import TIME_ATTR

    # A small real trial with every arm, the meta-horizon and DASH on, so every network metric
    # exists.
    cfg = ExperimentConfig.model_validate({
        "data": {"name": "digits", "train_size": 200}, "model": {"name": "logreg"},
        "protocol": {"kind": "batch", "stop": {"max_epochs": 2}}, "lr": 0.1,
        "meta_horizon": 2, "cold_at_chosen_lr": True, "warm": {"intervention": "dash"}})
    records: list[dict] = []
    metrics = run_trial(cfg, progress=records.append)
    network = {m.name for m in METRICS if m.kind == "network"}
    # every declared network metric is reported, with a value
    assert {k for k in network if metrics.get(k) is not None} == network
    # every scalar it reports is declared, but for an arm's own flags and the third arm's
    # bookkeeping (results.csv keeps them after the metrics) and where the trial resumed
    bookkeeping = {f"{COLD_CHOSEN}/{k}" for k in ("diverged", "stop", "train_acc",
                                                  "test_acc_mean", "val_acc_mean", "steps",
                                                  "seconds")}
    undeclared = {k for k, v in metrics.items() if not isinstance(v, list)} - set(METRIC)
    assert undeclared == bookkeeping | {"resumed_stage"}
    assert "resumed_stage" in results.TAIL_COLUMNS
    # a progress record is its labels, the stage count ASHA schedules on, and the same metrics
    keys = {k for r in records for k in r}
    assert records and keys - PROGRESS_LABELS - {TIME_ATTR} <= set(METRIC) | bookkeeping


def test_the_nqm_reports_every_declared_nqm_metric():
    from wssweep.config import ExperimentConfig
    from wssweep.science.experiment import run_trial

    metrics = run_trial(ExperimentConfig.model_validate({"kind": "nqm", "meta_horizon": 1}))
    nqm = {m.name for m in METRICS if m.kind == "nqm"}
    assert {k for k in nqm if metrics.get(k) is not None} == nqm
