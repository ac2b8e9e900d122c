"""bench/gpu.py: without a GPU it says so and measures nothing; on one, it runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def run_gpu_bench(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/gpu.py", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_without_a_gpu_it_says_so_and_exits_1_or_0_when_allowed():
    out = run_gpu_bench()
    # no GPU: status 1, one line on stderr saying why, and no numbers on stdout
    assert out.returncode == 1, out.stderr
    assert "no CUDA GPU is visible" in out.stderr and "nothing was measured" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
    # --allow-no-gpu: the same message, status 0 (for scripts that run every benchmark)
    allowed = run_gpu_bench("--allow-no-gpu")
    assert allowed.returncode == 0 and allowed.stderr == out.stderr and allowed.stdout == ""


def test_bad_sizes_are_bad_input():
    out = run_gpu_bench("--groups", "0,8")
    # argparse's status for bad input, GPU or not
    assert out.returncode == 2 and "--groups" in out.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_it_prints_each_row_against_one_trial_per_gpu():
    out = run_gpu_bench("--quick", "--groups", "1,2", "--per-gpu", "1,2", timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # the GPU's name, then per model a row per size with trials/s, the ratio and its ceiling
    assert torch.cuda.get_device_name() in out.stdout
    for label in ("fused K=1", "fused K=2", "packed N=1", "packed N=2"):
        assert re.search(rf"{label}\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+\d+x\s+[\d.]+", out.stdout), (
            out.stdout)
    assert out.stdout.count("fused K=1 ") == 2  # mlp and conv1d
