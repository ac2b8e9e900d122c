"""tracking.TrialRun.log: rows logged at one step are one W&B history row (a stage's record comes
at the step of its last epoch), and the final summary is the one finish() writes. Offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wandb_files import read_run, written
from wssweep.tracking import start


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name.lower()))


def test_a_stage_record_at_its_last_epochs_step_reaches_the_history(tmp_path: Path):
    run_dir = tmp_path / "trial"
    run = start(run_dir, project="p", entity=None, group="g", name="t", run_id="g-t",
                config={}, mode="offline")
    run.log({"event": "epoch", "stages_done": 0, "warm/train_acc": 40.0}, step=1)
    run.log({"event": "epoch", "stages_done": 0, "warm/train_acc": 50.0}, step=2)
    # the stage's record, at the step of its last epoch
    run.log({"event": "stage", "stages_done": 1, "warm/test_acc": 60.0, "gap": 1.5}, step=2)
    run.log({"event": "epoch", "stages_done": 1, "warm/train_acc": 70.0}, step=3)
    run.log({"event": "epoch", "stages_done": 1, "warm/train_acc": 0.0}, step=2)  # went back
    run.log({"event": "stage", "stages_done": 2, "warm/test_acc": 65.0, "gap": 0.5}, step=3)
    run.finish({"gap": 0.25, "warm/test_acc": 64.0})
    written(run_dir)
    info = read_run(run_dir)
    rows = [(h["_step"], h["stages_done"], h.get("warm/train_acc"), h.get("warm/test_acc"))
            for h in info["history"]]
    # one row per step, the stage's numbers merged into its last epoch's row; a step below the
    # last one is dropped, as wandb drops it
    assert rows == [(1, 0, 40.0, None), (2, 1, 50.0, 60.0), (3, 2, 70.0, 65.0)]
    # the summary is finish()'s, not the last row's
    assert info["summary"]["gap"] == 0.25 and info["summary"]["warm/test_acc"] == 64.0
