"""kill -9 of the driver mid-sweep, then `wssweep resume`: nothing lost, nothing run twice."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from wssweep.results import read_results

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_MARGIN_S = 4  # > TUNE_GLOBAL_CHECKPOINT_S (2 s): finished trials are in Tune's state

SPEC = """
experiment:
  data: {name: digits, train_size: 900, test_size: 120}
  model: {name: mlp, width: 32}
  # A fixed 20 epochs per stage (about 5 s a trial): long enough to be killed mid-sweep.
  protocol: {kind: online, chunks: 3, stop: {train_acc: 1.0, max_epochs: 20, plateau_window: 20}}
  optim: {name: adam, batch_size: 16}
  lr: 0.003
method: grid
metric: {name: gap, goal: minimize}
parameters:
  lr: {values: [0.001, 0.003, 0.01, 0.03]}
seeds: [0, 1]
"""


def completed(run_dir: Path) -> set[str]:
    path = run_dir / "results.csv"
    if not path.exists():
        return set()
    return {r["trial_id"] for r in read_results(path) if r["status"] == "completed"}


def test_kill_9_then_resume_finishes_without_rerunning(tmp_path, ray_env):
    spec = tmp_path / "resume.yaml"
    spec.write_text(SPEC)
    run_dir = tmp_path / "r"
    driver = subprocess.Popen(
        [sys.executable, "-m", "wssweep", "run", str(spec), "--name", "r", "--storage",
         str(tmp_path)], cwd=REPO, env=ray_env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(completed(run_dir)) < 2 and time.time() < deadline:
            time.sleep(0.5)
        finished_before = completed(run_dir)
        time.sleep(SNAPSHOT_MARGIN_S)
        # the sweep was killed mid-way: some trials done, not all
        assert 2 <= len(completed(run_dir)) < 8
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        # Ray processes the dead driver leaves behind (platform.md) go with its session.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    out = subprocess.run([sys.executable, "-m", "wssweep", "resume", str(run_dir)],
                         capture_output=True, text=True, cwd=REPO, env=ray_env, timeout=600)
    # resume finishes the sweep cleanly
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = read_results(run_dir / "results.csv")
    # every trial of the 4 x 2 grid appears exactly once, and all completed
    assert len(rows) == 8 and len({r["trial_id"] for r in rows}) == 8
    assert {r["status"] for r in rows} == {"completed"}
    assert sorted((r["lr"], r["seed"]) for r in rows) == sorted(
        (lr, s) for lr in ("0.001", "0.003", "0.01", "0.03") for s in ("0", "1"))
    starts = Counter(json.loads(line)["trial_id"]
                     for line in (run_dir / "trial_starts.jsonl").read_text().splitlines())
    # no trial that had finished before the kill was started again
    assert all(starts[t] == 1 for t in finished_before)
    # and their rows keep their original start times
    first_start = {r["trial_id"]: float(r["started_at"]) for r in rows}
    assert all(first_start[t] < min(float(r["finished_at"]) for r in rows
                                    if r["trial_id"] not in finished_before)
               for t in finished_before)
