"""The command line: exit codes, JSON output, and errors without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--set", "data.name=digits", "--set", "data.train_size=300", "--set", "model.width=16",
         "--set", "protocol.chunks=3", "--set", "protocol.stop.max_epochs=3", "--set", "lr=0.01"]


def wssweep(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wssweep", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_trial_prints_the_metrics_as_json():
    out = wssweep("trial", "sweeps/quickstart.yaml", *SMOKE)
    # a finished trial exits 0
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    # the design's metric names are all there
    for key in ("warm/test_acc", "cold/test_acc", "gap", "warm/steps", "cold/steps", "saving",
                "warm/seconds", "cold/seconds", "lr_chosen", "diverged"):
        assert key in metrics, key
    # per-stage lists have one entry per stage (3 chunks)
    assert len(metrics["warm/stage_test_acc"]) == 3


def test_trial_is_bit_identical_for_the_same_seed():
    runs = [json.loads(wssweep("trial", "sweeps/quickstart.yaml", *SMOKE).stdout) for _ in "ab"]
    for run in runs:
        for key in [k for k in run if "seconds" in k]:
            run.pop(key)
    # same seed, same numbers, to the last bit (CPU, one thread)
    assert runs[0] == runs[1]


def test_diverging_trial_exits_0_with_diverged_true():
    out = wssweep("trial", "sweeps/quickstart.yaml", *SMOKE, "--set", "lr=1e4",
                  "--set", "optim.name=sgd")
    # divergence is a result, not a crash
    assert out.returncode == 0, out.stderr
    # and it is reported as such
    assert json.loads(out.stdout)["diverged"] is True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "shrink=2"], "shrink: expected"),
        (["--set", "lr=-1"], "lr: expected"),
        (["--set", "optim.nme=adam"], "optim.nme: expected"),
        (["--set", "data.root=/no/such/dir", "--set", "data.name=cifar10"], "/no/such/dir"),
        (["--set", "model.name=custom", "--set", "model.factory=no.such:thing"], "model.factory"),
        (["--set", "lr"], "--set: expected key=value"),
    ],
)
def test_bad_input_exits_2_with_the_key_and_no_traceback(args, needle):
    out = wssweep("trial", "sweeps/quickstart.yaml", *args)
    # bad input is exit status 2
    assert out.returncode == 2, out.stderr
    # the message names the key (or path) at fault
    assert needle in out.stderr
    # and no Python traceback is printed
    assert "Traceback" not in out.stderr


def test_missing_spec_file_exits_2(tmp_path):
    out = wssweep("trial", str(tmp_path / "missing.yaml"))
    # a spec path that does not exist is bad input, named in the message
    assert out.returncode == 2 and "missing.yaml" in out.stderr and "Traceback" not in out.stderr


def test_cache_ls_and_prune_the_baselines_of_a_storage(tmp_path, capsys):
    import torch

    from wssweep.cache import ArtifactCache
    from wssweep.cli import main
    from wssweep.record import BASELINES_DIR

    # a storage whose runs stored nothing yet: ls says so and creates nothing
    assert main(["cache", "ls", "--storage", str(tmp_path)]) == 0
    assert "0 baseline artifacts" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    store = ArtifactCache(tmp_path / BASELINES_DIR)
    store.save("abc123", {"w": torch.zeros(1000)}, about={"data": "digits", "model": "mlp",
                                                          "seed": 2})
    assert main(["cache", "ls", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # one line per artifact, saying what it is, and the total
    assert "abc123" in out and "data=digits model=mlp seed=2" in out
    assert "1 baseline artifacts" in out
    # what was used within the hour is kept by an age of a day
    assert main(["cache", "prune", "--storage", str(tmp_path), "--older-than", "1d"]) == 0
    assert "pruned 0" in capsys.readouterr().out and store.load("abc123") is not None
    # and a size of nothing prunes it
    assert main(["cache", "prune", "--storage", str(tmp_path), "--max-size", "0"]) == 0
    assert "pruned 1" in capsys.readouterr().out and store.load("abc123") is None


@pytest.mark.parametrize(("args", "needle"), [
    (["prune"], "cache prune: expected --max-size SIZE and/or --older-than AGE"),
    (["prune", "--max-size", "5X"], "--max-size: expected a non-negative number with a unit"),
    (["prune", "--max-size=-1G"], "--max-size: expected a non-negative number"),
    (["prune", "--older-than", "7"], "--older-than: expected a non-negative number with a unit"),
    (["ls", "--storage", "NOWHERE"], "--storage: expected the directory runs are stored in"),
])
def test_cache_bad_input_exits_2_and_creates_nothing(tmp_path, capsys, args, needle):
    from wssweep.cli import main

    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    if "--storage" not in args:
        args += ["--storage", str(tmp_path)]
    assert main(["cache", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
