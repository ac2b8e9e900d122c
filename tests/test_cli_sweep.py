"""``wssweep run`` / ``resume`` / ``validate`` on bad input: exit 2, no traceback, nothing written.

The design's CLI contract: bad input (spec, path, option) exits 2 with the key path, what was
expected and what was given, prints no traceback, and leaves nothing behind in the storage
directory. Every malformed spec of ``tests.test_spec_errors.MALFORMED`` goes through ``run`` and
``validate`` in-process (``main(argv)``); two real ``python -m wssweep`` calls prove the process
exit status. Ray never starts here: ``connect`` is replaced by a function that fails the test.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import wssweep.orchestrate
from tests.test_spec_errors import GIVEN, MALFORMED, side_files, write_case
from wssweep.cli import main
from wssweep.space import describe, trial_resources
from wssweep.spec import load_sweep_spec

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "sweeps" / "quickstart.yaml"
IDS = [case[0] for case in MALFORMED]
BY_ID = {case[0]: case for case in MALFORMED}

# The quickstart's search with a GPU share: 4 trials per GPU, 2 CPUs each.
GPU_SPEC = """\
experiment: configs/online_mnist1d_mlp.yaml
method: grid
parameters:
  warm.intervention: {values: [none, shrink_perturb]}
seeds: [0, 1, 2]
resources: {cpus_per_trial: 2, trials_per_gpu: 4}
"""


@pytest.fixture(autouse=True)
def no_ray(monkeypatch, tmp_path):
    """Fail any test that would start Ray, and run each test in its own empty cwd."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was about to start: bad input must be rejected before that")

    monkeypatch.setattr(wssweep.orchestrate, "connect", refuse)
    monkeypatch.chdir(tmp_path)
    yield
    if "ray" in sys.modules:
        # not even a stray ray.init() elsewhere
        assert not sys.modules["ray"].is_initialized()


def set_args(overrides: list[str]) -> list[str]:
    return [arg for text in overrides for arg in ("--set", text)]


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "spec.yaml"
    path.write_text(text)
    return path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (``None`` for a folder)."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def run_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wssweep", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


# --- 1. every malformed spec, through run and validate ---------------------------------------


def test_every_malformed_case_is_covered():
    # the shared list is the one from test_spec_errors, with at least 30 distinct cases
    assert len(set(IDS)) == len(IDS) >= 30


@pytest.mark.parametrize(("case", "yaml_text", "overrides", "key"), MALFORMED, ids=IDS)
def test_run_rejects_malformed_spec_before_touching_storage(tmp_path, capsys, case, yaml_text,
                                                            overrides, key):
    spec = write_case(tmp_path, yaml_text)
    made = tmp_path / "made"
    made.mkdir()
    absent = tmp_path / "absent"
    for storage in (made, absent):
        code = main(["run", str(spec), "--storage", str(storage), "--name", "x",
                     *set_args(overrides)])
        out, err = capsys.readouterr()
        # bad input is exit status 2
        assert code == 2, err
        # the message starts with the key path at fault and what was expected
        assert f"wssweep: bad input: {key}: expected " in err, err
        # and shows what was given
        assert GIVEN[case] in err, err
        # no traceback on either stream
        assert "Traceback" not in out + err
    # the empty storage directory stays empty
    assert list(made.iterdir()) == []
    # an absent storage directory is not created
    assert not absent.exists()
    # and nothing else appeared (the cwd is tmp_path too: no ./runs either)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["made", "spec.yaml", *side_files(yaml_text)])


@pytest.mark.parametrize(("case", "yaml_text", "overrides", "key"), MALFORMED, ids=IDS)
def test_validate_rejects_malformed_spec(tmp_path, capsys, case, yaml_text, overrides, key):
    spec = write_case(tmp_path, yaml_text)
    code = main(["validate", str(spec), *set_args(overrides)])
    out, err = capsys.readouterr()
    # bad input is exit status 2
    assert code == 2, err
    # the message starts with the key path at fault and what was expected
    assert f"wssweep: bad input: {key}: expected " in err, err
    # and shows what was given
    assert GIVEN[case] in err, err
    # nothing is printed as if the spec were valid
    assert out == ""
    # no traceback
    assert "Traceback" not in err
    # validate writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["spec.yaml",
                                                                 *side_files(yaml_text)])


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("spec", ["missing.yaml", "folder"])
def test_spec_path_that_is_no_file_exits_2(tmp_path, capsys, command, spec):
    (tmp_path / "folder").mkdir()
    code = main([command, str(tmp_path / spec), "--storage", str(tmp_path / "runs")]
                if command == "run" else [command, str(tmp_path / spec)])
    err = capsys.readouterr().err
    # a spec path that is not a file is bad input named SPEC, with the path given
    assert code == 2 and f"SPEC: expected an existing YAML file, got '{tmp_path / spec}'" in err
    # no traceback, and no storage directory made
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_spec_that_is_not_utf8_exits_2(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"experiment: {lr: 0.01}\nname: \xff\xfe\n")
    code = main(["validate", str(spec)])
    # a binary / non-UTF-8 spec is bad input named SPEC
    assert code == 2 and "SPEC: expected" in capsys.readouterr().err


# --- 2. run into an existing run name, or to a bad --name / --storage --------------------------


def test_run_refuses_an_existing_run_name_and_leaves_it_alone(tmp_path, capsys):
    storage = tmp_path / "runs"
    taken = storage / "taken"
    (taken / "tune").mkdir(parents=True)
    (taken / "results.csv").write_text("trial_id,gap\nt0,0.5\n")
    (taken / "sweep.json").write_text('{"name": "taken"}')
    (taken / "tune" / "state.json").write_text("{}")
    before = snapshot(storage)
    code = main(["run", str(QUICKSTART), "--storage", str(storage), "--name", "taken"])
    out, err = capsys.readouterr()
    # a name already used in the storage directory is bad input
    assert code == 2, err
    # named --name, with what was expected
    assert "wssweep: bad input: --name: expected a run name not used yet" in err, err
    # and the existing run directory as what was given
    assert str(taken) in err
    # the message points to resume for an interrupted run
    assert "wssweep resume" in err
    # no traceback
    assert "Traceback" not in out + err
    # the existing run directory (and the storage around it) is byte-for-byte unchanged
    assert snapshot(storage) == before


@pytest.mark.parametrize("name", ["../escape", "{abs}/elsewhere", "a/b", "", ".hidden", "a b"])
def test_run_refuses_a_name_that_is_not_a_plain_directory_name(tmp_path, capsys, name):
    name = name.format(abs=tmp_path)
    storage = tmp_path / "runs"
    code = main(["run", str(QUICKSTART), "--storage", str(storage), "--name", name])
    err = capsys.readouterr().err
    # a --name that is a path (or empty) is bad input named --name, showing the name given
    assert code == 2 and "--name: expected a run name matching" in err and repr(name) in err
    # no traceback
    assert "Traceback" not in err
    # nothing was created, inside the storage directory or outside it
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("storage", ["a_file", "a_file/below"])
def test_run_refuses_a_storage_path_that_cannot_be_a_directory(tmp_path, capsys, storage):
    (tmp_path / "a_file").write_text("not a folder\n")
    code = main(["run", str(QUICKSTART), "--storage", str(tmp_path / storage), "--name", "x"])
    err = capsys.readouterr().err
    # a --storage that is (or lies under) a file is bad input named --storage, before Ray starts
    assert code == 2 and "--storage: expected a writable directory" in err, err
    # no traceback
    assert "Traceback" not in err
    # the file is untouched and nothing else appeared
    assert snapshot(tmp_path) == {"a_file": b"not a folder\n"}


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_run_refuses_a_storage_where_no_directory_can_be_made(tmp_path, capsys):
    # /proc takes no new directories, even from root (whom access() tells it is writable)
    storage = Path("/proc/wssweep-test-storage/runs")
    code = main(["run", str(QUICKSTART), "--storage", str(storage), "--name", "x"])
    err = capsys.readouterr().err
    # bad input named --storage, before Ray starts, with no traceback
    assert code == 2 and "--storage: expected a" in err and str(storage) in err, err
    assert "Traceback" not in err
    # nothing was made there, nor in the cwd
    assert not storage.parent.exists()
    assert list(tmp_path.iterdir()) == []


# --- 3. resume on something that is not a run ---------------------------------------------------


def _no_tune_state(run_dir: Path) -> None:
    from wssweep.orchestrate import sweep_record
    from wssweep.record import RunDir

    run_dir.mkdir()
    RunDir(run_dir).write_record(sweep_record(load_sweep_spec(QUICKSTART), run_dir, "quickstart"))


NOT_A_RUN = {
    "empty_dir": lambda d: d.mkdir(),
    "other_files": lambda d: (d.mkdir(), (d / "notes.txt").write_text("hello\n")),
    "missing": lambda d: None,
    "a_file": lambda d: d.write_text("not a run\n"),
    "sweep_json_garbage": lambda d: (d.mkdir(), (d / "sweep.json").write_text("{not json")),
    "sweep_json_binary": lambda d: (d.mkdir(), (d / "sweep.json").write_bytes(b"\xff\xfe{")),
    "sweep_json_a_list": lambda d: (d.mkdir(), (d / "sweep.json").write_text("[1, 2]")),
    "sweep_json_incomplete": lambda d: (d.mkdir(), (d / "sweep.json").write_text('{"a": 1}')),
    "no_tune_state": _no_tune_state,
}


@pytest.mark.parametrize("kind", list(NOT_A_RUN))
def test_resume_on_something_that_is_not_a_run_exits_2(tmp_path, capsys, kind):
    run_dir = tmp_path / "thing"
    NOT_A_RUN[kind](run_dir)
    before = snapshot(tmp_path)
    code = main(["resume", str(run_dir)])
    out, err = capsys.readouterr()
    # not a run is bad input
    assert code == 2, err
    # named RUN_DIR, with what was expected
    assert "wssweep: bad input: RUN_DIR: expected " in err, err
    # and the path given
    assert str(run_dir) in err
    # no traceback
    assert "Traceback" not in out + err
    # resume changed nothing (and created nothing where nothing was)
    assert snapshot(tmp_path) == before


# --- 4. validate on a valid spec -----------------------------------------------------------------


def test_validate_quickstart_prints_space_count_and_resources(capsys):
    code = main(["validate", str(QUICKSTART)])
    out, err = capsys.readouterr()
    # a valid spec is exit status 0, with nothing on stderr
    assert code == 0 and err == ""
    # the swept keys and their values are shown
    assert "shrink             one of [1, 0.5]" in out and "one of [0, 0.1]" in out
    # the constants are shown as fixed
    assert "warm.intervention  fixed at shrink_perturb" in out
    # the trial count: 2 x 2 settings x 3 seeds
    assert "Trials: 12 (4 settings x 3 seeds)" in out
    # each trial's resources: one CPU, no GPU
    assert "Resources per trial: 1 CPU, no GPU" in out
    # it is exactly what describe() says of the loaded spec
    assert out == describe(load_sweep_spec(QUICKSTART)) + "\n"


def test_validate_accepts_and_shows_a_set_override(capsys):
    code = main(["validate", str(QUICKSTART), "--set", "lr=0.05"])
    out, err = capsys.readouterr()
    # an override of an unswept key is accepted
    assert code == 0, err
    # and shown under the experiment
    assert "  --set lr=0.05\n" in out
    # it reaches the resolved experiment that the output describes
    assert load_sweep_spec(QUICKSTART, ["lr=0.05"]).experiment["lr"] == 0.05
    # the search itself is unchanged
    assert "Trials: 12 (4 settings x 3 seeds)" in out


def test_validate_shows_the_gpu_share(tmp_path, capsys):
    spec = write_spec(tmp_path, GPU_SPEC)
    code = main(["validate", str(spec)])
    out, err = capsys.readouterr()
    # a spec with trials_per_gpu is valid
    assert code == 0, err
    # each trial asks for 2 CPUs and a quarter of a GPU
    assert "Resources per trial: 2 CPU, 0.25 GPU (1/4: 4 trials share a GPU)" in out
    # validate knows no cluster (describe gets num_gpus=None), so it does not claim the GPU
    # request will be dropped
    assert "will be dropped" not in out
    # nor does it say how many trials fit at once
    assert "Trials at once" not in out


def gpu_request(resolved) -> tuple[float, int | None]:
    return resolved.spec.resources.cpus_per_trial, resolved.spec.resources.trials_per_gpu


def test_describe_drops_the_gpu_only_when_the_cluster_has_none(tmp_path):
    resolved = load_sweep_spec(write_spec(tmp_path, GPU_SPEC))
    # unknown GPUs (None, as validate passes): no note that the request will be dropped
    assert "will be dropped" not in describe(resolved, num_gpus=None)
    # and the trial still asks for its GPU share
    assert trial_resources(*gpu_request(resolved), num_gpus=None) == {"cpu": 2.0, "gpu": 0.25}
    # no GPU on the cluster (0): describe notes that the request will be dropped
    assert "the cluster has no GPU, so the GPU request will be dropped" in describe(
        resolved, num_cpus=8, num_gpus=0)
    # and it is: the trial asks for CPUs only
    assert trial_resources(*gpu_request(resolved), num_gpus=0) == {"cpu": 2.0}
    text = describe(resolved, num_cpus=8, num_gpus=1)
    # one GPU: the request is kept, and 4 trials share it (8 CPUs / 2 would allow 4 too)
    assert "will be dropped" not in text and "Trials at once: up to 4" in text


# --- 5. argparse errors --------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    [],
    ["bogus"],
    ["run"],
    ["resume"],
    ["validate"],
    ["trial"],
    ["run", "spec.yaml", "--name"],
    ["validate", "spec.yaml", "--bogus"],
], ids=["no_command", "unknown_command", "run_no_spec", "resume_no_dir", "validate_no_spec",
        "trial_no_spec", "option_without_value", "unknown_option"])
def test_argparse_errors_exit_2(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    # a bad command line is exit status 2 too
    assert info.value.code == 2
    # with argparse's usage line and error, not a traceback
    assert "usage: wssweep" in err and "error:" in err and "Traceback" not in err
    # nothing was written
    assert list(tmp_path.iterdir()) == []


# --- the real process ----------------------------------------------------------------------------


def test_process_exits_2_on_a_malformed_spec_with_no_traceback(tmp_path):
    _, yaml_text, overrides, key = BY_ID["parameter_lr_negative"]
    spec = write_spec(tmp_path, yaml_text)
    storage = tmp_path / "runs"
    storage.mkdir()
    out = run_process("run", str(spec), "--storage", str(storage), "--name", "x",
                  *set_args(overrides), cwd=tmp_path)
    # the process exit status is 2
    assert out.returncode == 2, out.stderr
    # stderr names the key path and the value given
    assert f"wssweep: bad input: {key}: expected " in out.stderr and "-0.125" in out.stderr
    # no traceback anywhere
    assert "Traceback" not in out.stdout + out.stderr
    # the storage directory stays empty
    assert list(storage.iterdir()) == []


def test_process_exits_2_at_once_on_an_address_no_ray_head_answers_at(tmp_path):
    from tests.test_orchestrate import free_port

    address = f"127.0.0.1:{free_port()}"
    out = run_process("run", str(QUICKSTART), "--address", address, "--storage", "runs",
                      cwd=tmp_path)
    # ray.init would wait on a closed port without end: exit status 2, saying why
    assert out.returncode == 2, out.stderr
    assert (f"wssweep: bad input: --address: expected the HOST:PORT of a running Ray head "
            f"(Connection refused), got '{address}'") in out.stderr, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    # and nothing was written
    assert list(tmp_path.iterdir()) == []


def test_process_validate_exits_0(tmp_path):
    out = run_process("validate", str(QUICKSTART), cwd=tmp_path)
    # a valid spec: exit status 0
    assert out.returncode == 0, out.stderr
    # the trial count is on stdout
    assert "Trials: 12 (4 settings x 3 seeds)" in out.stdout
    # validate writes nothing in the cwd
    assert list(tmp_path.iterdir()) == []


def test_validate_says_how_bayes_draws_under_seeds_until_decided_and_warns_of_a_weak_cold_arm(
        tmp_path, capsys):
    spec = write_spec(tmp_path, """
experiment:
  data: {name: digits}
  model: {name: logreg}
method: bayes
metric: {name: gap, goal: minimize}
parameters:
  lr: {distribution: log_uniform_values, min: 0.003, max: 0.03}
seeds: {min: 2, max: 4, until: decided}
run_cap: 8
""")
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    # 8 trials on 2 first seeds: 4 settings, one a round, each draw told the current means
    assert ("Trials: at most 16 (4 settings suggested by Optuna TPE over 4 rounds, 1 a round, "
            "each draw told every setting's mean over the seeds it has run so far") in out
    # the search varies lr, which the cold arm depends on, and selects on the gap: a note
    assert "note: the search selects on each setting's gap to its own cold arm" in out
    assert "varies lr, which the cold arm depends on" in out
    # a search for the best warm accuracy gets no such note
    spec.write_text(spec.read_text().replace("{name: gap, goal: minimize}",
                                             "{name: warm/test_acc, goal: maximize}"))
    assert main(["validate", str(spec)]) == 0
    assert "note: the search selects" not in capsys.readouterr().out
