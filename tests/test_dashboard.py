"""The sweep's dashboards, from a real small bayes sweep (digits, logreg, 2 settings x 2 seeds,
W&B offline): its W&B workspace (``wssweep.dashboard``), ``wssweep sync``, and the Optuna study
that ``optuna-dashboard`` opens. No test reaches the network: W&B's server address is a closed
port on 127.0.0.1, and ``wandb sync`` runs with ``--dry-run``.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import optuna
import pytest

from tests.cli import run_many, show, wssweep
from tests.wandb_files import find_runs, read_run
from wssweep import dashboard
from wssweep.dashboard import LINE, MEDIA, PARALLEL, WEAVE, panels
from wssweep.gapmap import Mapped
from wssweep.record import WORKSPACE_FILE, RunDir, WandbRecord
from wssweep.results import read_results
from wssweep.tracking import SETTING_JOB, SUMMARY_TABLE

STUDY = "tiny-bayes"
SPEC = f"""
experiment:
  data: {{name: digits, train_size: 200, test_size: 100}}
  model: {{name: logreg}}
  protocol: {{kind: online, chunks: 2, stop: {{max_epochs: 3}}}}
  optim: {{name: adam, batch_size: 32}}
  warm: {{intervention: shrink_perturb}}
name: {STUDY}
method: bayes
metric: {{name: gap, goal: minimize}}
parameters:
  lr: {{distribution: log_uniform_values, min: 0.003, max: 0.1}}
  shrink: {{distribution: uniform, min: 0.3, max: 1.0}}
seeds: [0, 1]
run_cap: 4
wandb: {{project: dash-test, mode: auto}}
"""
SWEPT = ["lr", "shrink"]
# Any W&B call would go here and fail at once: nothing listens on port 9 (discard).
NO_SERVER = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def env(ray_env) -> dict[str, str]:
    return {**ray_env, "WANDB_BASE_URL": NO_SERVER}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, env) -> Path:
    """2 settings drawn by Optuna, each on 2 seeds (one fused Tune trial each), W&B offline."""
    tmp = tmp_path_factory.mktemp("dash")
    spec = tmp / "bayes.yaml"
    spec.write_text(SPEC)
    out = run_many(env, [["run", str(spec), "--name", "b1", "--storage", str(tmp / "runs")]])
    assert out.returncode == 0, show(out)
    return tmp / "runs" / "b1"


@pytest.fixture(scope="module")
def view(run_dir) -> dict:
    path = run_dir / WORKSPACE_FILE
    # written when the map was published, beside the map
    assert path.is_file() and RunDir(run_dir).workspace == path
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def wandb_runs(run_dir) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for path in find_runs(run_dir / "wandb"):
        info = read_run(path)
        runs.setdefault(info["job_type"], []).append(info)
    return runs


def summary_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "map" / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_workspace_is_the_sweeps_project_and_group(view, run_dir, wandb_runs):
    # W&B's view of the spec's project; the entity is the API key's, filled in by sync
    assert view["project"] == "dash-test" and view["entity"] == ""
    assert view["displayName"] == "wssweep b1"
    runset = view["spec"]["section"]["runSets"][0]
    # runs grouped by setting: the flat config key every trial run carries
    assert runset["grouping"] == [{"section": "config", "name": "setting_key.value"}]
    # only the runs of this sweep: its group, the run's name
    assert runset["filters"]["filters"] == [
        {"key": {"section": "run", "name": "group"}, "op": "=", "value": "b1",
         "disabled": False}]
    trials = wandb_runs["trial"]
    assert len(trials) == 4 and {r["group"] for r in trials} == {"b1"}
    keys = {r["setting_key"] for r in read_results(run_dir / "results.csv")}
    assert len(keys) == 2 and {r["config"]["setting_key"] for r in trials} == keys


def test_parallel_coordinates_over_the_swept_axes_coloured_by_the_reference_gap(
        view, run_dir, wandb_runs):
    (plot,) = panels(view, PARALLEL)
    columns = [c["accessor"] for c in plot["config"]["columns"]]
    # exactly the swept axes, as flat config keys, then the colour axis (W&B colours by the
    # last): the map's reference gap
    reference_gap = Mapped("gap", True).mean_col
    assert reference_gap == "ref_gap_mean"
    assert columns == [f"config:{k}.value" for k in SWEPT] + [f"summary:{reference_gap}"]
    assert len(plot["config"]["customGradient"]) == 3
    # the setting runs carry what the plot reads: per setting, its swept values in the config
    # and its summary.csv row's reference gap in the summary
    rows = {r["setting_key"]: r for r in summary_rows(run_dir)}
    settings = wandb_runs[SETTING_JOB]
    assert len(settings) == len(rows) == 2 and {r["group"] for r in settings} == {"b1"}
    for run in settings:
        row = rows[run["config"]["setting_key"]]
        assert [run["config"][k] for k in SWEPT] == [float(row[k]) for k in SWEPT]
        assert run["summary"][reference_gap] == pytest.approx(float(row[reference_gap]))
        assert run["summary"]["verdict"] == row["verdict"]
    # and the trial runs name their axes by the same flat keys
    for run in wandb_runs["trial"]:
        assert all(isinstance(run["config"][k], float) for k in SWEPT)


def test_the_summary_table_and_heatmap_panels_show_what_the_map_run_logged(
        view, run_dir, wandb_runs):
    (table,) = panels(view, WEAVE)
    # W&B's summary-table panel picks the map run's table by its key
    assert f'"val": "{SUMMARY_TABLE}"' in json.dumps(table)
    (map_run,) = wandb_runs["map"]
    assert map_run["summary"][SUMMARY_TABLE]["_type"] == "table-file"
    (media,) = panels(view, MEDIA)
    heatmaps = sorted(p.stem for p in (run_dir / "map").glob("heatmap_*.png"))
    # every heatmap on disk, under the key the map run logged it
    assert heatmaps and media["config"]["mediaKeys"] == heatmaps
    assert all(map_run["summary"][k]["_type"] == "image-file" for k in heatmaps)


def test_per_stage_warm_and_cold_test_accuracy(view, wandb_runs):
    plots = panels(view, LINE)
    assert [(p["config"]["xAxis"], p["config"]["metrics"]) for p in plots] == [
        ("stages_done", ["warm/test_acc"]), ("stages_done", ["cold/test_acc"]),
        ("stages_done", ["gap"])]
    # seeds pool into their setting's line: the mean, with its standard error
    assert {(p["config"]["groupAgg"], p["config"]["groupArea"]) for p in plots} == {
        ("mean", "stderr")}
    # each trial logged both arms' test accuracy at each of its 2 stages
    for run in wandb_runs["trial"]:
        staged = [h for h in run["history"] if "warm/test_acc" in h and "cold/test_acc" in h]
        assert sorted(h["stages_done"] for h in staged) == [1, 2]


def test_the_workspace_is_a_function_of_the_run_built_without_network(
        run_dir, view, monkeypatch):
    def refuse(self, address, *args):
        raise AssertionError(f"network call to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    built = dashboard.definition(dashboard.workspace_of(run_dir))

    def without_ids(value):  # the library draws each panel's id at random
        if isinstance(value, dict):
            return {k: without_ids(v) for k, v in value.items() if k != "__id__"}
        return [without_ids(v) for v in value] if isinstance(value, list) else value

    assert without_ids(built) == without_ids(view)
    # an entity given (as sync gives the key's) is the view's
    assert dashboard.definition(dashboard.workspace_of(run_dir, "team"))["entity"] == "team"


def test_a_sweep_without_a_gap_is_coloured_by_its_metric_and_has_no_stage_panels(run_dir):
    # an NQM sweep maps its metric: summary.csv's metric_mean colours the plot, and there is no
    # warm/cold accuracy to show per stage
    sweep = RunDir(run_dir).record().model_copy(update={"metric": "nqm/final_loss",
                                                       "swept": ["lr", "nqm.d", "warm.lr"]})
    view = dashboard.definition(dashboard.build_workspace(
        sweep, Mapped("nqm/final_loss", True), ["heatmap_b_vs_a", "heatmap_a_vs_b"]))
    (plot,) = panels(view, PARALLEL)
    assert [c["accessor"] for c in plot["config"]["columns"]] == [
        "config:lr.value", "config:nqm.d.value", "config:warm.lr.value", "summary:metric_mean"]
    assert panels(view, LINE) == []
    # the heatmaps in one order, however they were given
    assert panels(view, MEDIA)[0]["config"]["mediaKeys"] == ["heatmap_a_vs_b", "heatmap_b_vs_a"]


def test_sync_dry_run_lists_the_offline_runs_and_the_workspace(run_dir, env):
    out = wssweep(env, "sync", str(run_dir), "--dry-run", timeout=120)
    assert out.returncode == 0, show(out)
    offline = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    # the 4 trial members, the map run and the 2 setting runs
    assert len(offline) == 7
    assert "listing (dry run) 7 offline W&B runs of b1: wandb sync --dry-run" in out.stdout
    # W&B's own sync, in its dry run, names every one of them
    said = out.stdout + out.stderr
    assert "Would sync 7 run(s)" in said and all(name in said for name in offline)
    assert ("the W&B workspace (Gap map: 3 panels; Per stage: warm vs cold: 3 panels) would be "
            "saved to project dash-test once WANDB_API_KEY is set (it is not)") in out.stdout


def test_sync_without_a_key_says_it_skipped_the_workspace(run_dir, tmp_path, monkeypatch,
                                                          capsys):
    # the run without its offline runs (already uploaded): nothing for wandb sync to do
    copy = tmp_path / "b1"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("wandb", "tune", "trials"))
    monkeypatch.setenv("WANDB_API_KEY", "")
    assert dashboard.sync(copy) == 0
    said = capsys.readouterr().out
    assert "no offline W&B runs" in said
    assert (f"skipped saving the W&B workspace: WANDB_API_KEY is not set (saving needs the W&B "
            f"API); its definition is in {copy / WORKSPACE_FILE}") in said


def test_sync_of_a_sweep_without_wandb_does_nothing_and_says_so(run_dir, tmp_path, capsys):
    copy = RunDir(tmp_path / "b1")
    shutil.copytree(run_dir, copy.path, ignore=shutil.ignore_patterns("tune", "trials"))
    record = copy.record()
    copy.write_record(record.model_copy(update={"wandb": WandbRecord(mode="disabled")}))
    assert dashboard.sync(copy.path) == 0
    assert capsys.readouterr().out == ("wssweep: W&B was disabled for b1 (wandb.mode): no runs "
                                       "to upload and no workspace to save\n")


class FakeWandb(BaseHTTPRequestHandler):
    """W&B's GraphQL endpoint, as much of it as saving a workspace asks: who the key is (its
    default entity ``me``) and ``upsertView``; anything else gets empty data."""

    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            query = json.loads(body)
        except ValueError:  # wandb-core's metrics (protobuf): not ours to answer
            query = {}
        self.received.append(query)
        text = json.dumps(query)
        data = ({"upsertView": {"view": {"id": "VmlldzoxMjM=", "name": "nw-abc-v"},
                                "inserted": True}} if "upsertView" in text else
                {"viewer": {"id": "1", "entity": "me", "username": "me", "flags": "{}",
                            "teams": {"edges": []}}} if "viewer" in text else {})
        out = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def test_sync_with_a_key_saves_the_workspace_through_wandbs_api(run_dir, tmp_path,
                                                                monkeypatch, capsys):
    from wssweep.tracking import teardown

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWandb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    copy = tmp_path / "b1"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("wandb", "tune", "trials"))
    key = "k3y" * 13 + "x"  # 40 characters, as W&B's keys
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    try:
        assert dashboard.sync(copy) == 0
    finally:
        server.shutdown()
        teardown()
    said = capsys.readouterr()
    (upsert,) = [q for q in FakeWandb.received if "upsertView" in q.get("query", "")]
    sent = upsert["variables"]
    # saved to the key's default entity (the record names none), in the spec's project...
    assert (sent["entityName"], sent["projectName"]) == ("me", "dash-test")
    # ...the view its definition file now holds, with that entity
    view = json.loads((copy / WORKSPACE_FILE).read_text())
    assert view["entity"] == "me" and json.loads(sent["spec"]) == view["spec"]
    assert "saved the W&B workspace (Gap map: 3 panels; Per stage: warm vs cold: 3 panels): " \
        f"http://127.0.0.1:{server.server_port}/me/dash-test?nw=abc" in said.out
    # the key went to W&B, never to the output
    assert key not in said.out + said.err


def test_sync_of_a_directory_that_is_not_a_run_exits_2(tmp_path, env):
    out = wssweep(env, "sync", str(tmp_path), timeout=60)
    assert out.returncode == 2
    assert "bad input: RUN_DIR: expected a wssweep run directory" in out.stderr


# --------------------------------------------------------------------------- Optuna's study


def study_of(run_dir: Path) -> optuna.Study:
    # what `optuna-dashboard sqlite:///RUN_DIR/optuna.db` opens: the study under the spec's name
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{run_dir / 'optuna.db'}")


def test_the_optuna_study_holds_each_settings_parameters_and_value(run_dir):
    from wssweep.spec import load_sweep_spec

    parameters = load_sweep_spec(run_dir / "spec.yaml", preflight=False).spec.parameters
    rows = read_results(run_dir / "results.csv")
    trials = study_of(run_dir).get_trials(deepcopy=False)
    # one study trial per setting Optuna drew
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    found = set()
    for trial in trials:
        # TPE's variables: the uniform variable u of each swept parameter's transform
        setting = {k: parameters[k].ppf(trial.params[f"setting/{k}"]) for k in SWEPT}
        ran = [r for r in rows if all(float(r[k]) == setting[k] for k in SWEPT)]
        # the setting ran on every seed...
        assert sorted(int(r["seed"]) for r in ran) == [0, 1]
        # ...and Optuna was told their mean of the objective (gap is selected on val_gap)
        assert trial.value == pytest.approx(statistics.mean(float(r["val_gap"]) for r in ran))
        found.add(ran[0]["setting_key"])
    assert len(found) == 2


def test_the_optuna_study_names_each_trials_setting_and_seeds(run_dir):
    rows = read_results(run_dir / "results.csv")
    for trial in study_of(run_dir).get_trials(deepcopy=False):
        setting = trial.user_attrs["setting"]
        assert trial.user_attrs["seeds"] == [0, 1]
        assert {int(r["seed"]) for r in rows
                if all(float(r[k]) == setting[k] for k in SWEPT)} == {0, 1}
