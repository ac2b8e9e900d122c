"""results.csv: which columns, in which order, and what an empty cell means."""

import json

from wssweep.orchestrate import row_from
from wssweep.record import SweepRecord
from wssweep.results import ID_COLUMNS, read_results, write_results

SWEEP = SweepRecord(name="s", run_dir="/r", spec_path="s.yaml", spec={}, experiment={},
                    seeds=[0, 1], swept=["lr"], metric="gap", mode="min")


def test_columns_are_identity_swept_metrics_then_where_and_when(tmp_path):
    rows = [{"trial_id": "a", "status": "completed", "seed": 0, "setting_key": "k", "lr": 0.1,
             "gap": 1.5, "warm/stage_test_acc": [50.0, 60.0], "node_id": "n1", "restarts": 0,
             "started_at": 1.0, "finished_at": 2.0, "error": ""},
            {"trial_id": "b", "status": "diverged", "seed": 1, "setting_key": "k", "lr": 0.1,
             "gap": float("nan"), "restarts": 1, "started_at": 1.5, "finished_at": 3.0}]
    path = write_results(tmp_path, rows, ["lr"])
    header = path.read_text().splitlines()[0].split(",")
    # identity and swept values lead; where and when it ran close the row
    assert header[:5] == [*ID_COLUMNS, "lr"]
    assert header[-3:] == ["restarts", "started_at", "finished_at"]
    # a column no row fills is left out (no error happened, no NQM metric exists here)
    assert "error" not in header and "nqm/final_loss" not in header
    table = read_results(path)
    # NaN is an empty cell; lists are JSON in their cell
    assert table[1]["gap"] == "" and json.loads(table[0]["warm/stage_test_acc"]) == [50, 60]


def test_rows_carry_no_tune_bookkeeping():
    result = {"gap": 1.0, "final": True, "status": "completed", "done": True, "pid": 12,
              "hostname": "h", "node_ip": "127.0.0.1", "date": "2026", "timestamp": 5,
              "time_this_iter_s": 0.1, "time_total_s": 3.0, "training_iteration": 4,
              "experiment_tag": "1_lr=0.1", "config": {"lr": 0.1}, "config/lr": 0.1,
              "iterations_since_restore": 4, "time_since_restore": 3.0,
              "checkpoint_dir_name": None, "should_checkpoint": False, "step": 9, "stage": 3,
              "node_id": "n1", "stages_done": 3}
    row = row_from("t1", {"trial": {"setting": {"lr": 0.1}, "seed": 0}}, result, None, SWEEP,
                   done=True)
    # only what the trial measured and where it ran remain
    assert set(row) == {"trial_id", "status", "seed", "lr", "error", "gap", "node_id",
                        "stages_done"}
