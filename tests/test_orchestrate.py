"""The driver's pure parts, in-process and without Ray: signals, result rows, the exit line."""

import os
import signal

import pytest

from tests.cli import wait_for
from wssweep import cli
from wssweep.errors import InputError
from wssweep.orchestrate import Interrupted, check_address, row_from, stop_on_signal
from wssweep.record import SweepRecord

SWEEP = SweepRecord(name="s", run_dir="/r", spec_path="s.yaml", spec={}, experiment={},
                    seeds=[0, 1], swept=["lr"], metric="gap", mode="min")


@pytest.fixture
def tune_stop():
    """Stands in for Tune's graceful-stop handler, which listens on SIGUSR1 during fit()."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    yield seen
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_becomes_tunes_graceful_stop(sig, tune_stop, capsys):
    before = signal.getsignal(sig)
    with stop_on_signal() as received:
        os.kill(os.getpid(), sig)
        wait_for(lambda: tune_stop, "Tune's stop signal")
    # the signal was recorded and passed on to Tune's stop (SIGUSR1), the driver not killed
    assert received == [sig] and tune_stop == [signal.SIGUSR1]
    # the user is told what happens, and the handlers are put back afterwards
    assert "stopping the sweep" in capsys.readouterr().err
    assert signal.getsignal(sig) == before


def test_wssweep_stop_from_another_shell_becomes_tunes_graceful_stop(tune_stop, tmp_path, capsys):
    from wssweep.orchestrate import STOP_REQUEST

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "sweep.json").write_text(
        SWEEP.model_copy(update={"run_dir": str(run_dir)}).model_dump_json())
    with stop_on_signal(run_dir) as received:
        assert cli.main(["stop", str(run_dir)]) == 0
        wait_for(lambda: tune_stop, "Tune's stop signal")
    # the stop file was seen and passed on to Tune's stop, as a signal is
    assert received == [STOP_REQUEST] and tune_stop == [signal.SIGUSR1]
    assert "stop requested" in capsys.readouterr().err
    # the driver then ends with status 0 and the line saying how to go on
    stopped = Interrupted(STOP_REQUEST, run_dir)
    assert stopped.exit_status == 0 and f"wssweep resume {run_dir}" in str(stopped)


@pytest.mark.parametrize("sweep_json", [None, '{"version": 3}', "[]", '{"name":'])
def test_wssweep_stop_of_a_directory_that_is_no_run_is_refused(tmp_path, capsys, sweep_json):
    if sweep_json is not None:  # a sweep.json, but not one wssweep wrote
        (tmp_path / "sweep.json").write_text(sweep_json)
    before = sorted(tmp_path.iterdir())
    assert cli.main(["stop", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "RUN_DIR" in err and "sweep.json" in err and "Traceback" not in err
    # and it created nothing
    assert sorted(tmp_path.iterdir()) == before


def test_a_second_signal_aborts_at_once(tune_stop):
    with pytest.raises(KeyboardInterrupt), stop_on_signal():
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: tune_stop, "Tune's stop signal")
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: False, "the abort", timeout=30)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_exits_with_the_shells_status_and_says_how_to_go_on(
        sig, status, monkeypatch, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("experiment: {lr: 0.01}\nmethod: grid\nparameters: {lr: {value: 0.01}}\n")

    def interrupted(resolved, *, name, storage, address):
        raise Interrupted(sig, tmp_path / "runs" / name)

    monkeypatch.setattr("wssweep.orchestrate.run_sweep", interrupted)
    args = ["run", str(spec), "--name", "x", "--storage", str(tmp_path / "runs")]
    assert cli.main(args) == status
    err = capsys.readouterr().err.strip().splitlines()
    # one line, naming the signal and the command that continues the sweep
    assert len(err) == 1 and signal.Signals(sig).name in err[0]
    assert f"wssweep resume {tmp_path / 'runs' / 'x'}" in err[0]


def test_rows_say_what_became_of_each_trial():
    config = {"trial": {"setting": {"lr": 0.1}, "seed": 1}}
    final = {"final": True, "status": "completed", "gap": 1.5, "restarts": 2}
    science_error = {"final": True, "status": "error", "error": "ValueError: bad"}
    cases = {
        "completed": row_from("t1", config, final, None, SWEEP, done=True),
        "science error": row_from("t2", config, science_error, None, SWEEP, done=True),
        "lost for good": row_from("t3", config, {"stages_done": 1}, "RayActorError", SWEEP,
                                  done=True),
        "stopped by ASHA": row_from("t4", config, {"stages_done": 1}, None, SWEEP, done=True),
        "interrupted": row_from("t5", config, {"stages_done": 1}, None, SWEEP, done=False),
        "never started": row_from("t6", config, None, None, SWEEP, done=False),
    }
    assert {k: r["status"] for k, r in cases.items()} == {
        "completed": "completed", "science error": "error", "lost for good": "error",
        "stopped by ASHA": "stopped", "interrupted": "running", "never started": "pending"}
    # the error text comes from the trial's own report, or from Tune when the worker was lost
    assert cases["science error"]["error"] == "ValueError: bad"
    assert cases["lost for good"]["error"] == "RayActorError"
    # identity comes from Tune's config even without a result
    assert (cases["never started"]["lr"], cases["never started"]["seed"]) == (0.1, 1)
    assert cases["completed"]["restarts"] == 2


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_the_sweep_runs_exits_quietly(sig, status, monkeypatch, tmp_path, capsys):
    # Python's own Ctrl-C handler, as in a terminal: a shell starting the tests in the
    # background hands them SIGINT ignored, and Python then installs none.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    spec = tmp_path / "s.yaml"
    spec.write_text("experiment: {lr: 0.01}\nmethod: grid\nparameters: {lr: {value: 0.01}}\n")

    def starting_ray(resolved, *, name, storage, address):
        os.kill(os.getpid(), sig)  # arrives while Ray starts, before Tune's fit()
        wait_for(lambda: False, "the signal", timeout=30)

    monkeypatch.setattr("wssweep.orchestrate.run_sweep", starting_ray)
    try:
        assert cli.main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == status
    finally:
        signal.signal(signal.SIGINT, previous)
    # one line, no traceback
    assert capsys.readouterr().err.strip() == f"wssweep: interrupted by {signal.Signals(sig).name}"


def test_results_count_every_final_record_whatever_tune_saw(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from wssweep import orchestrate
    from wssweep.checkpoint import member_stores, trial_members
    from wssweep.results import read_results

    sweep = SWEEP.model_copy(update={"run_dir": str(tmp_path),
                                     "experiment": {"model": {"name": "logreg"}}})
    config = {lr: {"trial": {"setting": {"lr": lr}, "seed": 0}} for lr in (0.1, 0.2, 0.3, 0.4)}

    def record(lr, trial_id):
        store = member_stores(config[lr], sweep)[0]
        _, _, key = trial_members(config[lr], sweep)[0]
        store.write_final({"gap": lr, "status": "completed", "final": True, "setting_key": key,
                           "seed": 0, "lr": lr, "trial_id": trial_id, "started_at": lr})

    for lr, trial_id in ((0.1, "t1"), (0.2, "t2"), (0.3, "t3")):
        record(lr, trial_id)
    grid = [
        # reported its final metrics to Tune
        SimpleNamespace(metrics={**member_stores(config[0.1], sweep)[0].final(), "trial_id": "t1"},
                        path="t1", error=None, config=config[0.1]),
        # wrote its record, then the driver died before the report reached Tune
        SimpleNamespace(metrics={"stages_done": 2, "trial_id": "t2"}, path="t2", error=None,
                        config=config[0.2]),
        # (0.3 finished after Tune's last snapshot: no result at all)
        # never started
        SimpleNamespace(metrics={}, path="t4", error=None, config=config[0.4]),
    ]
    monkeypatch.setattr(orchestrate, "publish_map", lambda run_dir, sweep: None)
    orchestrate.finish(grid, sweep, interrupted=True)
    rows = {float(r["lr"]): r for r in read_results(tmp_path / "results.csv")}
    # every trial with a final record is a finished row, however much of it Tune had seen
    assert {lr: r["status"] for lr, r in rows.items()} == {
        0.1: "completed", 0.2: "completed", 0.3: "completed", 0.4: "pending"}
    assert rows[0.3]["trial_id"] == "t3" and rows[0.2]["gap"] == "0.2"


# --- --address: refused at once where no Ray head answers ---------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:", ":6379", "127.0.0.1:http",
                                     "127.0.0.1:0", "127.0.0.1:65536"])
def test_an_address_that_is_not_host_and_port_is_bad_input(address):
    with pytest.raises(InputError) as info:
        check_address(address)
    # named --address, with the form expected and what was given
    assert str(info.value) == (
        "--address: expected a Ray head's HOST:PORT (e.g. 127.0.0.1:6379, as `ray start --head` "
        f"prints it), got {address!r}")


def test_an_address_nothing_listens_at_is_bad_input_at_once():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(InputError) as info:
        check_address(address)
    # ray.init would retry it without end; the check says why it cannot connect
    assert str(info.value) == (
        f"--address: expected the HOST:PORT of a running Ray head (Connection refused), "
        f"got {address!r}")


def test_an_address_something_listens_at_passes_and_ray_resolves_the_rest():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        host, port = server.getsockname()
        check_address(f"{host}:{port}")
    # Ray's own forms are left to Ray
    check_address("auto")
    check_address("ray://127.0.0.1:1")


def test_rays_connection_error_is_bad_input_naming_the_address(monkeypatch):
    import ray

    from wssweep import orchestrate

    monkeypatch.setattr(os, "environ", dict(os.environ))  # connect sets Ray's and W&B's env
    monkeypatch.setattr(orchestrate, "warm_map_imports", lambda: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def no_cluster(**_):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one "
                              "to connect to by setting `--address` flag.")

    monkeypatch.setattr(ray, "init", no_cluster)
    with pytest.raises(InputError) as info:
        orchestrate.connect("auto", "offline")
    assert str(info.value) == ("--address: expected a running Ray cluster (Could not find any "
                               "running Ray instance), got 'auto'")


def test_a_trial_needing_more_cpus_than_this_machines_ray_has_is_bad_input(monkeypatch):
    import ray

    from wssweep.orchestrate import check_trials_fit

    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}},
             {"Alive": False, "Resources": {"CPU": 64.0}}]  # a dead node counts for nothing
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    sweep = SWEEP.model_copy(update={"cpus_per_trial": 4.0})
    # Tune would leave every trial pending for good: refused, naming the key
    with pytest.raises(InputError) as info:
        check_trials_fit(sweep)
    assert str(info.value) == ("resources.cpus_per_trial: expected at most the 2 CPUs Ray has "
                               "on this machine (a trial that needs more never starts), got 4.0")
    # what fits passes
    check_trials_fit(sweep.model_copy(update={"cpus_per_trial": 2.0}))
