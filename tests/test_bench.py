"""Every benchmark runs as a smoke test: bench/overhead.py on tiny data, end to end."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_overhead_benchmark_smoke(tmp_path, ray_env):
    out_json = tmp_path / "bench.json"
    out = subprocess.run([sys.executable, "bench/overhead.py", "--smoke", "--json", str(out_json)],
                         capture_output=True, text=True, cwd=REPO,
                         env={**ray_env, "WANDB_MODE": "disabled"}, timeout=600)
    # the benchmark runs to the end
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # it prints the ratio against its reference and the theoretical minimum
    assert "sweep / plain:" in out.stdout and "theoretical minimum" in out.stdout
    numbers = json.loads(out_json.read_text())
    # the numbers it writes are positive wall times measured in this run
    walls = [v for k, v in numbers.items() if k.endswith("wall_s")]
    assert walls and all(w > 0 for w in walls)
