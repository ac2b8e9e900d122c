"""The run record: sweep.json as one typed object, and the run directory's paths."""

import json

import pytest

from tests.records import grid_record
from wssweep.errors import InputError
from wssweep.orchestrate import sweep_record
from wssweep.record import RunDir, SweepRecord
from wssweep.space import grid_trials, trial_count
from wssweep.spec import load_sweep_spec

SPEC = """
experiment: {model: {name: logreg}, data: {name: digits}}
method: grid
parameters:
  lr: {values: [0.01, 0.1]}
  warm.intervention: {values: [none, shrink_perturb]}
seeds: [0, 1, 2]
gap_tolerance: 1.0
resources: {cpus_per_trial: 2}
"""


def test_the_driver_records_what_readers_need_once(tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC)
    resolved = load_sweep_spec(tmp_path / "s.yaml")
    record = sweep_record(resolved, tmp_path / "run", "run")
    # the trials it expects and, for a grid, which: computed once, by the planner
    assert record.expected_trials == trial_count(resolved.spec, resolved.experiment) == 12
    assert [t.model_dump() for t in record.grid] == grid_trials(resolved.spec,
                                                                 resolved.experiment)
    # what trials and the map read, typed
    assert (record.swept, record.seeds, record.metric, record.mode) == (
        ["lr", "warm.intervention"], [0, 1, 2], "gap", "min")
    assert (record.gap_tolerance, record.threads, record.max_failures) == (1.0, 2, 3)
    assert record.wandb.mode in ("online", "offline")
    # no early termination: trials do not wait for cold arms before reporting a stage
    assert record.early_terminate is False
    (tmp_path / "asha.yaml").write_text(SPEC + "metric: {name: gap, goal: minimize}\n"
                                        "early_terminate: {type: hyperband, min_iter: 1}\n")
    asha = sweep_record(load_sweep_spec(tmp_path / "asha.yaml"), tmp_path / "run", "run")
    assert asha.early_terminate is True


def test_a_record_survives_the_round_trip_through_sweep_json(tmp_path):
    record = grid_record(tmp_path / "r", {"lr": [0.1, 1.0]}, [0, 1])
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_record(record)
    # what is read back is what was written
    assert run.record() == record
    # and every path of the run hangs off the one object
    assert run.sweep_json.parent == run.results_csv.parent == run.path
    assert (run.tune.name, run.trials.name, run.map.name) == ("tune", "trials", "map")


def test_a_moved_run_reads_as_where_it_now_is(tmp_path):
    record = grid_record(tmp_path / "r", {"lr": [0.1, 1.0]}, [0, 1])
    RunDir(tmp_path / "r").path.mkdir()
    RunDir(tmp_path / "r").write_record(record)
    (tmp_path / "elsewhere").mkdir()
    moved = (tmp_path / "r").rename(tmp_path / "elsewhere" / "r")
    # the record names the directory it is read from (a resume or a rebuilt map writes there),
    # and says the same as before otherwise
    got = RunDir(moved).record()
    assert got.run_dir == str(moved)
    assert got.model_dump(exclude={"run_dir"}) == record.model_dump(exclude={"run_dir"})
    # the file itself is left as it was
    assert json.loads((moved / "sweep.json").read_text())["run_dir"] == str(tmp_path / "r")


def test_a_record_from_an_earlier_version_still_reads(tmp_path):
    # sweep.json as wssweep wrote it before the record kept the planner's results
    old = {"name": "o", "run_dir": str(tmp_path), "spec_path": "o.yaml", "overrides": [],
           "smoke": False, "spec": {}, "experiment": {}, "seeds": [0], "swept": [],
           "metric": "gap", "mode": "min", "cpus_per_trial": 1.0, "threads": 1,
           "trials_per_gpu": None, "max_failures": 0,
           "wandb": {"project": "p", "entity": None, "mode": "offline", "tags": []}}
    (tmp_path / "sweep.json").write_text(json.dumps(old))
    record = RunDir(tmp_path).record()
    # it loads, and what it does not know is unknown rather than guessed
    assert record.expected_trials is None and record.grid is None


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"name": "x"}', ""])
def test_a_broken_sweep_json_is_bad_input(tmp_path, text):
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(InputError, match="^RUN_DIR: expected a wssweep run directory"):
        RunDir(tmp_path).record()


def test_no_sweep_json_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="with sweep.json"):
        RunDir(tmp_path).record()
    # the model itself refuses a record missing what every reader needs
    with pytest.raises(ValueError):
        SweepRecord.model_validate({"name": "x"})


def test_the_map_needs_no_search_planner():
    import subprocess
    import sys

    code = ("import sys, wssweep.gapmap, wssweep.report\n"
            "print(sorted(m for m in sys.modules if m in ('wssweep.spec', 'wssweep.space')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the map and its report read the run record and results.csv, not the spec's planner
    assert out.stdout.strip() == "[]"
