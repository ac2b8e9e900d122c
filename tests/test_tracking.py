"""wssweep.tracking: mode choice, offline W&B runs per trial, and reading the .wandb log back.

All runs are offline (no network here); each test gets its own HOME and W&B dirs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.wandb_files import find_runs, read_run, written
from wssweep import tracking
from wssweep.tracking import flatten, redact, resolve_mode, start

SECRET_ENV_VALUE = "env-secret-3c1f9a"


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(home / name.lower()))
    # A secret in the environment, which must never reach a run log.
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET_ENV_VALUE)


def _start(run_dir: Path, run_id: str = "sweep1-t0", **overrides):
    kwargs = dict(
        project="wssweep-test",
        entity=None,
        group="sweep1",
        name="t0",
        run_id=run_id,
        config={"setting_key": "ab12cd", "warm.lr": 0.1},
        mode="offline",
    )
    kwargs.update(overrides)
    return start(run_dir, **kwargs)


def test_resolve_mode_with_and_without_key(monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # Without a key, auto means offline.
    assert resolve_mode("auto") == "offline"
    # Explicit offline/disabled pass through.
    assert resolve_mode("offline") == "offline"
    assert resolve_mode("disabled") == "disabled"
    # online without a key falls back to offline instead of crashing...
    assert resolve_mode("online") == "offline"
    # ...and says so in one line on stderr.
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "WANDB_API_KEY" in err
    # An empty key counts as no key.
    monkeypatch.setenv("WANDB_API_KEY", "  ")
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    # With a key, auto means online, and online stays online.
    assert resolve_mode("auto") == "online"
    assert resolve_mode("online") == "online"
    # auto follows W&B's own WANDB_MODE, as a W&B user expects; an explicit mode wins over it
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled" and resolve_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # not a mode wssweep knows: the key decides
    assert resolve_mode("auto") == "online"
    # Anything else is rejected with the accepted values named.
    with pytest.raises(ValueError, match="auto, online, offline, disabled"):
        resolve_mode("sometimes")


def test_flatten_and_redact():
    nested = {"data": {"name": "digits", "sizes": [1, 2]}, "empty": {}, "lr": 0.1}
    # Nested dicts become dotted keys; lists and empty dicts stay values.
    assert flatten(nested) == {"data.name": "digits", "data.sizes": [1, 2], "empty": {}, "lr": 0.1}
    cfg = {
        "setting_key": "ab12",
        "wandb": {"api_key": "k", "API_TOKEN": "t"},
        "db_password": "p",
        "Secret_Sauce": 1,
        "warm.lr": 0.1,
    }
    # Secret-looking names go (any case, nested too); setting_key and ordinary keys stay.
    assert redact(cfg) == {"setting_key": "ab12", "warm.lr": 0.1}


def test_offline_run_round_trip(tmp_path):
    run_dir = tmp_path / "trial_0"
    config = {
        "setting_key": "ab12cd",
        "warm": {"lr": 0.1, "warmup_steps": 100},
        "shrink": 0.5,
        "meta_horizon": 0,
        "seeds": [0, 1],
        "api_key": "sk-should-never-leak-1",
        "wandb.token": "tok-should-never-leak-2",
    }
    run = _start(run_dir, config=config, tags=["grid"])
    for epoch in range(3):
        run.log({"warm/train_loss": 1.0 / (epoch + 1), "skipped": None, "curve": [1, 2]}, epoch)
    final = {"gap": 0.25, "warm/test_acc": 91.0, "cold/test_acc": 91.25, "saving": 2.5}
    run.finish({**final, "lr_chosen": None, "diverged": False, "stage_gaps": [0.1, 0.4]})

    logs = written(run_dir)
    # One log, at wandb/offline-run-<stamp>-<id>/run-<id>.wandb under run_dir.
    assert len(logs) == 1
    rel = logs[0].relative_to(run_dir).as_posix()
    assert re.fullmatch(r"wandb/offline-run-\d{8}_\d{6}-sweep1-t0/run-sweep1-t0\.wandb", rel)

    info = read_run(run_dir)
    # Run fields come back as given.
    assert (info["run_id"], info["project"], info["group"], info["job_type"], info["name"]) == (
        "sweep1-t0",
        "wssweep-test",
        "sweep1",
        "trial",
        "t0",
    )
    assert info["tags"] == ["grid"]
    # Config: flattened keys, setting_key and swept axes present, secrets gone.
    assert info["config"] == {
        "setting_key": "ab12cd",
        "warm.lr": 0.1,
        "warm.warmup_steps": 100,
        "shrink": 0.5,
        "meta_horizon": 0,
        "seeds": [0, 1],
    }
    # History: one row per epoch at the explicit step, in order, step metric included.
    assert [row["_step"] for row in info["history"]] == [0, 1, 2]
    assert [row["step"] for row in info["history"]] == [0, 1, 2]
    assert [row["warm/train_loss"] for row in info["history"]] == [1.0, 0.5, 1.0 / 3]
    # None values and lists are left out of history rows.
    assert not any("skipped" in row or "curve" in row for row in info["history"])
    # Summary holds the final metrics as plain values; lists allowed, None skipped.
    assert {k: info["summary"][k] for k in final} == final
    assert info["summary"]["diverged"] is False
    assert info["summary"]["stage_gaps"] == [0.1, 0.4]
    assert "lr_chosen" not in info["summary"]
    # The map metrics are defined on the step axis with a "last" summary.
    assert info["metrics"]["gap"] == {"step_metric": "step", "summary": ["last"]}
    assert info["metrics"]["*"]["step_metric"] == "step"
    # The run finished cleanly.
    assert info["complete"] and info["exit_code"] == 0

    blob = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    # Neither secret config values nor environment secrets appear in anything written.
    secrets = [b"sk-should-never-leak-1", b"tok-should-never-leak-2", SECRET_ENV_VALUE.encode()]
    for secret in secrets:
        assert secret not in blob


def test_resume_same_step_offline(tmp_path):
    """Offline resume: each start() with the same id writes a new offline-run-* directory.

    wandb cannot look up the earlier run offline, so the resumed segment starts from scratch
    (run.resumed is False) and holds only what was logged after the resume; `wandb sync`
    uploads both segments to the same run id. read_run() reads the newest segment;
    read_run(merge=True) merges them, the later segment's row winning at a repeated step.
    Within one segment, a step at or below the last committed one is dropped by wandb.
    """
    run_dir = tmp_path / "trial_0"
    first = _start(run_dir)
    for step in range(3):
        first.log({"loss": float(step)}, step)
    first.log({"loss": 99.0}, 1)  # a step already committed in this segment
    first.finish(exit_code=1)

    second = _start(run_dir)
    second.log({"loss": 20.0}, 2)  # the resumed trial re-runs its last epoch
    second.log({"loss": 30.0}, 3)
    second.finish({"gap": 0.1})

    logs = written(run_dir, logs=2)
    # Two segments, oldest first, both for the same run id.
    assert len(logs) == 2 and {p.name for p in logs} == {"run-sweep1-t0.wandb"}
    older = read_run(logs[0])
    # In the first segment the repeated step 1 was dropped, not duplicated or overwritten.
    assert [(r["_step"], r["loss"]) for r in older["history"]] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert older["exit_code"] == 1
    newest = read_run(run_dir)
    # Given the directory, read_run reads the newest segment only.
    assert newest["path"] == str(logs[1])
    assert [(r["_step"], r["loss"]) for r in newest["history"]] == [(2, 20.0), (3, 30.0)]
    merged = read_run(run_dir, merge=True)
    # Merged: every step once, step 2 from the resumed segment.
    assert [(r["_step"], r["loss"]) for r in merged["history"]] == [
        (0, 0.0),
        (1, 1.0),
        (2, 20.0),
        (3, 30.0),
    ]
    # Merged summary and exit come from the newest segment.
    assert merged["summary"]["gap"] == 0.1 and merged["exit_code"] == 0


def test_sequential_and_overlapping_runs_are_complete(tmp_path):
    root = tmp_path / "sweep"
    ids = ["s-t0", "s-t1", "s-t2"]
    # Two runs one after the other (as a Ray worker runs trials)...
    for run_id in ids[:2]:
        with _start(root / run_id, run_id=run_id, name=run_id) as run:
            for step in range(4):
                run.log({"acc": step / 4}, step)
            run.finish({"gap": 1.0})
    # ...and one started while another is open (reinit="create_new" keeps them apart).
    outer = _start(root / ids[2], run_id=ids[2], name=ids[2])
    inner = _start(root / "inner", run_id="s-inner", name="inner")
    outer.log({"acc": 0.5}, 0)
    inner.log({"acc": 0.7}, 0)
    inner.finish({"gap": 2.0})
    outer.finish({"gap": 3.0})
    written(root, logs=4)

    for run_id, gap in [("s-t0", 1.0), ("s-t1", 1.0), ("s-t2", 3.0), ("s-inner", 2.0)]:
        info = read_run(root, run_id=run_id)
        # Each log is whole: it has its exit record, its own id and its final summary.
        assert info["complete"] and info["run_id"] == run_id and info["summary"]["gap"] == gap
    # The sequential runs kept every row.
    assert [r["_step"] for r in read_run(root, run_id="s-t1")["history"]] == [0, 1, 2, 3]
    # A file cut mid-record reads back its intact prefix, marked incomplete.
    path = find_runs(root / "s-t0")[0]
    torn = tmp_path / "torn.wandb"
    torn.write_bytes(path.read_bytes()[: path.stat().st_size - 40])
    assert read_run(torn)["run_id"] == "s-t0" and not read_run(torn)["complete"]
    # A file that is not a W&B log is refused.
    torn.write_bytes(b"not a log")
    with pytest.raises(ValueError, match="not a W&B run log"):
        read_run(torn)


def test_map_run_table(tmp_path):
    run_dir = tmp_path / "map"
    run = _start(run_dir, run_id="sweep1-map", name="map", job_type="map")
    run.log_table("summary", ["setting_key", "gap"], [["ab", 0.1], ["cd", 0.7]])
    run.finish()
    written(run_dir)
    info = read_run(run_dir)
    # The map run has its job type, and the table is saved with the run.
    assert info["job_type"] == "map"
    table_files = [f for f in info["files"] if f.startswith("media/table/summary")]
    assert table_files
    saved = json.loads(next((run_dir / "wandb").glob(f"*/files/{table_files[0]}")).read_text())
    # The saved table holds our columns and rows.
    assert saved["columns"] == ["setting_key", "gap"]
    assert saved["data"] == [["ab", 0.1], ["cd", 0.7]]


def test_map_run_table_with_a_column_of_text_and_numbers(tmp_path):
    run_dir = tmp_path / "map"
    run = _start(run_dir, run_id="sweep2-map", name="map", job_type="map")
    # A swept key whose values are a number or a word (warmup_init: 0.0 or catapult).
    run.log_table("summary", ["optim.warmup_init", "gap"], [[0.0, 0.1], ["catapult", 0.7]])
    run.finish()
    written(run_dir)
    table = next(f for f in read_run(run_dir)["files"] if f.startswith("media/table/summary"))
    saved = json.loads(next((run_dir / "wandb").glob(f"*/files/{table}")).read_text())
    # The column is saved as text; the numbers column stays numbers.
    assert saved["data"] == [["0.0", 0.1], ["catapult", 0.7]]


def test_disabled_mode_writes_nothing(tmp_path):
    run_dir = tmp_path / "trial_0"
    run = _start(run_dir, mode="disabled")
    run.log({"acc": 1.0}, 0)
    run.log_table("t", ["a"], [[1]])
    run.finish({"gap": 0.0})
    # Same methods, no run: nothing is created, not even run_dir.
    assert not run.enabled and run.finished and run.id == "sweep1-t0"
    assert not run_dir.exists()
    # No logs to find either.
    assert find_runs(tmp_path) == []


def test_teardown_is_safe():
    # Tearing down twice (or with no run started) does not raise.
    tracking.teardown()
    tracking.teardown()
