"""The README's main job: the quickstart trial, run for real (about half a minute on 2 cores)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_trial_shows_the_warm_start_gap():
    out = subprocess.run([sys.executable, "-m", "wssweep", "trial", "sweeps/quickstart.yaml"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    # the main job finishes cleanly
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    # neither arm diverged, and every stage of the 10-chunk online protocol ran
    assert m["diverged"] is False and len(m["warm/stage_test_acc"]) == 10
    # Ash & Adams' finding on this seed: the warm start ends below the cold start
    assert m["warm/test_acc"] < m["cold/test_acc"]
    # and it got there with fewer optimizer steps once new data arrived
    assert m["saving"] > 1
