"""Every study in sweeps/ runs with --smoke on a real local Ray, and docs/results.md is written
from runs by `wssweep results` (here from the smoke runs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wssweep.results import read_results
from wssweep.space import trial_count
from wssweep.spec import load_sweep_spec
from wssweep.studies import MAX_FIGURE_BYTES, STUDIES, find_study_runs

REPO = Path(__file__).resolve().parent.parent
STUDY_FILES = sorted(p for p in (REPO / "sweeps").glob("*.yaml") if p.stem != "quickstart")


def wssweep(*args: str, env: dict[str, str], timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "wssweep", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=timeout)


def test_every_shipped_study_is_known_to_the_results_page():
    # A study file without a comparison (or a comparison without a file) would be left off.
    assert {p.stem for p in STUDY_FILES} == set(STUDIES)


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.stem)
def test_study_header_says_how_to_run_it(path):
    head = path.read_text().split("\nexperiment:")[0]
    # The header names the question, the paper's finding, and the run and smoke commands.
    for needle in ("Question:", "Paper", f"wssweep run sweeps/{path.name}", "--smoke"):
        assert needle in head, needle


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.stem)
def test_study_validates_unchanged(path):
    resolved = load_sweep_spec(path)
    # The full study is a real sweep: more trials than its smoke version, several seeds.
    assert trial_count(resolved.spec, resolved.experiment) > 4
    assert len(resolved.spec.seeds) >= 2


@pytest.fixture(scope="module")
def smoke_runs(ray_env, tmp_path_factory) -> Path:
    storage = tmp_path_factory.mktemp("study-runs")
    for path in STUDY_FILES:
        out = wssweep("run", str(path.relative_to(REPO)), "--smoke", "--storage", str(storage),
                      env=ray_env)
        assert out.returncode == 0, f"{path.name}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return storage


def test_every_study_runs_with_smoke(smoke_runs):
    runs = find_study_runs([smoke_runs], include_smoke=True)
    # One smoke run per study, each with its (capped) trials all finished.
    assert set(runs) == set(STUDIES)
    for stem, run_dir in runs.items():
        rows = read_results(run_dir / "results.csv")
        assert 2 <= len(rows) <= 4, stem
        assert all(r["status"] in ("completed", "diverged") for r in rows), stem
    # Smoke runs are not results: without --include-smoke none is picked.
    assert find_study_runs([smoke_runs]) == {}


def test_results_page_is_written_from_the_runs(smoke_runs, tmp_path, ray_env):
    out = wssweep("results", str(smoke_runs), "--out", str(tmp_path / "results.md"),
                  "--include-smoke", env=ray_env)
    assert out.returncode == 0, out.stderr[-3000:]
    page = (tmp_path / "results.md").read_text()
    for stem in STUDIES:
        section = page.split(f"(`sweeps/{stem}.yaml`)")[1].split("\n## ")[0]
        # Each study has its question, setup, table, figure and a verdict against the paper.
        for needle in ("**Question.**", "**Setup.**", "**Paper.**", "| ", "![",
                       "**Compared with the paper:"):
            assert needle in section, (stem, needle)
        figure = tmp_path / "figures" / f"{stem}.png"
        # The figure exists and is small enough for the repo.
        assert 0 < figure.stat().st_size < MAX_FIGURE_BYTES, stem


def test_results_rejects_a_path_that_is_not_a_directory(tmp_path, ray_env):
    out = wssweep("results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.md"),
                  env=ray_env)
    # Bad input: exit 2, the argument named, no traceback.
    assert out.returncode == 2 and "RUN_DIR" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(tmp_path / "r.md")
