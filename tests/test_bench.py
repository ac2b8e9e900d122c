"""Every benchmark runs as a smoke test: on tiny data, end to end, printing its ratios."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# Two trials: what the sweep benchmarks measure is the same at any size.
TINY_GRID = """
experiment:
  data: {name: digits, train_size: 200, test_size: 100}
  model: {name: logreg}
  protocol: {kind: online, chunks: 2, stop: {max_epochs: 2}}
method: grid
metric: {name: gap, goal: minimize}
parameters:
  warm.intervention: {values: [none, shrink_perturb]}
seeds: [0]
"""


def run_bench(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, f"bench/{script}", *args], capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=600)
    # the benchmark runs to the end
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_overhead_benchmark_smoke(tmp_path, ray_env):
    out_json = tmp_path / "bench.json"
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_GRID)
    out = run_bench("overhead.py", str(spec), "--json", str(out_json),
                    env={**ray_env, "WANDB_MODE": "disabled"})
    # it prints the ratio against its reference and the theoretical minimum
    assert "sweep / plain:" in out.stdout and "theoretical minimum" in out.stdout
    numbers = json.loads(out_json.read_text())
    # the numbers it writes are positive wall times measured in this run
    walls = [v for k, v in numbers.items() if k.endswith("wall_s")]
    assert walls and all(w > 0 for w in walls)


def test_trial_loop_benchmark_smoke():
    out = run_bench("trial_loop.py", "--smoke", "--repeat", "1")
    # it prints the trial's wall as a multiple of the bare loop's, against its target
    bare = re.search(r"bare PyTorch loop .*?([\d.]+) s\s+1\.00x", out.stdout)
    trial = re.search(r"run_trial .*?([\d.]+) s\s+([\d.]+)x\s+\(target <= 1\.10x", out.stdout)
    assert bare and trial, out.stdout
    # both walls were measured, and the ratio is theirs
    assert float(bare[1]) > 0 and float(trial[1]) > 0
    assert float(trial[2]) == pytest.approx(float(trial[1]) / float(bare[1]), rel=0.1)


def test_fusion_benchmark_smoke():
    out = subprocess.run([sys.executable, "bench/fusion.py", "--in-process", "--smoke",
                          "--seeds", "2", "--threads", "1"], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # the three walls, the two ratios with their references, and the agreement line
    a = re.search(r"\(a\) run_trial one by one, shared cache: ([\d.]+) s", out.stdout)
    b = re.search(r"\(b\) run_group per setting \(K=2\), shared cache: ([\d.]+) s  "
                  r"\(a\)/\(b\) = ([\d.]+)x  \(reference: 2x would be perfect\)", out.stdout)
    c = re.search(r"\(c\) run_group of everything \(K=8\): ([\d.]+) s  "
                  r"\(a\)/\(c\) = ([\d.]+)x  \(reference: 8x would be perfect\)", out.stdout)
    assert a and b and c, out.stdout
    assert float(b[2]) == pytest.approx(float(a[1]) / float(b[1]), rel=0.05, abs=0.01)
    assert float(c[2]) == pytest.approx(float(a[1]) / float(c[1]), rel=0.05, abs=0.01)
    # the fused runs train the same science: every setting's gap within the seeds' CI
    assert "(b) yes, (c) yes" in out.stdout, out.stdout


def test_fusion_benchmark_runs_the_sweep_fused_and_unfused_side_by_side(tmp_path, ray_env):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_GRID)
    out = run_bench("fusion.py", str(spec), "--smoke", "--seeds", "2", "--cores", "2", "--json",
                    str(tmp_path / "f.json"), env={**ray_env, "WANDB_MODE": "disabled"})
    runs = json.loads((tmp_path / "f.json").read_text())["runs"]
    # three sweeps of the same 2 settings x 2 seeds: one row per (setting, seed) in each
    assert {name: run["trials"] for name, run in runs.items()} == {
        "false": 4, "seeds": 4, "settings": 4}
    for name, ceiling in (("false", 1), ("seeds", 2), ("settings", 4)):
        run = runs[name]
        # each ratio is the reference's wall over its own, printed beside its ceiling
        assert run["speedup"] == pytest.approx(runs["false"]["wall_s"] / run["wall_s"])
        assert re.search(rf"fuse: {name} +4 rows +[\d.]+ s +[\d.]+x +ceiling {ceiling}x",
                         out.stdout), out.stdout
        # and the fused sweeps trained the same science: gaps within the reference's CI
        assert run["gaps_agree"], out.stdout
    assert "model-steps/s" in out.stdout and re.search(r"K=\s*4 ", out.stdout)


def test_baselines_benchmark_smoke(tmp_path, ray_env):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_GRID)
    out = run_bench("baselines.py", str(spec), "--json", str(tmp_path / "b.json"),
                    env={**ray_env, "WANDB_MODE": "disabled"})
    numbers = json.loads((tmp_path / "b.json").read_text())
    # the first run trained its seed's baseline once (a lock, not a race, between its two
    # trials); the second, under the same storage, trained none
    assert numbers["baselines_trained_first"] == 1 and numbers["baselines_trained_second"] == 0
    # and the ratio against the first run and the minimum are printed
    assert "second run (the same sweep, same --storage)" in out.stdout
    assert "theoretical minimum of the second" in out.stdout


def test_fusion_steps_benchmark_runs():
    out = run_bench("fusion_steps.py", "--quick")
    # model-steps/s fused against sequential, per group size, against the K x reference
    assert re.search(r"K=\s*4\b", out.stdout), out.stdout
