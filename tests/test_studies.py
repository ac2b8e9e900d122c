"""Every study in sweeps/ runs with --smoke on a real local Ray, and docs/results.md is written
from runs by `wssweep results` (here from the smoke runs)."""

import os
from pathlib import Path

import pytest

from tests.cli import run_many, show, wssweep
from wssweep.results import read_results
from wssweep.space import trial_count
from wssweep.spec import load_sweep_spec
from wssweep.studies import MAX_FIGURE_BYTES, STUDIES, find_study_runs

REPO = Path(__file__).resolve().parent.parent
STUDY_FILES = sorted(p for p in (REPO / "sweeps").glob("*.yaml") if p.stem != "quickstart")
RAY_BOOKKEEPING = {"hostname", "pid", "config", "date", "done", "experiment_tag", "node_ip",
                   "time_this_iter_s", "time_total_s", "training_iteration", "timestamp",
                   "iterations_since_restore", "time_since_restore", "checkpoint_dir_name"}


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
    assert len(resolved.spec.first_seeds) >= 2
    # A study that asks a gap question adds seeds until its settings are decided.
    if resolved.spec.metric.name == "gap":
        assert resolved.spec.seed_plan is not None, "a gap study with a fixed list of seeds"


@pytest.fixture(scope="module")
def smoke_runs(ray_env, tmp_path_factory) -> Path:
    storage = tmp_path_factory.mktemp("study-runs")
    # W&B has its own end-to-end tests; here it would only cost CPU (a W&B process per worker),
    # and `wandb.mode: auto` follows W&B's WANDB_MODE.
    ray_env = {**ray_env, "WANDB_MODE": "disabled"}
    # One after another in one process, each as `wssweep run --smoke`: the runs are what is
    # tested here, and one local Ray and one set of imports serve them all.
    out = run_many(ray_env, [["run", str(p.relative_to(REPO)), "--smoke", "--storage",
                              str(storage)] for p in STUDY_FILES])
    assert out.returncode == 0, show(out)
    return storage


def test_every_study_runs_with_smoke(smoke_runs):
    runs = find_study_runs([smoke_runs], include_smoke=True)
    # One smoke run per study, each with its (capped) trials all finished.
    assert set(runs) == set(STUDIES)
    for stem, run_dir in runs.items():
        rows = read_results(run_dir / "results.csv")
        assert 2 <= len(rows) <= 4, stem
        assert all(r["status"] in ("completed", "diverged") for r in rows), stem
        # results.csv holds results: no Ray bookkeeping, and no column empty in every row
        # (network studies have no NQM columns, the NQM study no gap)
        columns = set(rows[0])
        assert not columns & RAY_BOOKKEEPING, (stem, columns & RAY_BOOKKEEPING)
        assert [c for c in columns if not any(r[c] for r in rows)] == [], stem
    # Smoke runs are not results: without --include-smoke none is picked.
    assert find_study_runs([smoke_runs]) == {}


def test_results_page_is_written_from_the_runs(smoke_runs, tmp_path, ray_env):
    out = wssweep(ray_env, "results", str(smoke_runs), "--out", str(tmp_path / "results.md"),
                  "--include-smoke")
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
    out = wssweep(ray_env, "results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.md"))
    # Bad input: exit 2, the argument named, no traceback.
    assert out.returncode == 2 and "RUN_DIR" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(tmp_path / "r.md")


@pytest.mark.parametrize(("out", "needle"), [
    ("a_dir", "--out: expected a markdown file to write, not a directory"),
    ("a_file/r.md", "--out: expected a file in a directory that exists or can be created"),
    ("/proc/wssweep-test/r.md", "--out: expected a file in a directory that exists or can be"),
], ids=["a_directory", "under_a_file", "where_nothing_can_be_made"])
def test_results_rejects_an_out_path_it_cannot_write(tmp_path, capsys, out, needle):
    from wssweep.cli import main

    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("not a folder\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["results", str(runs), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    # Bad input: exit 2, --out named with what it was, no traceback, nothing written.
    assert code == 2 and needle in err and out in err and "Traceback" not in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/proc/wssweep-test").exists()


# The comparisons on made-up runs: each verdict follows from the numbers.

from wssweep.gapmap import RunData, summarize_run  # noqa: E402
from wssweep.record import SweepRecord  # noqa: E402
from wssweep.studies import (  # noqa: E402
    StudyRun,
    compare_nqm,
    compare_online,
    compare_two_regime,
    compare_warmup,
    verdict_table,
)


def fake_run(swept: list[str], trials: list[dict], metric: str = "gap") -> StudyRun:
    rows = [{"trial_id": str(i), "status": t.pop("status", "completed"), "setting_key": "",
             **{k: str(v) for k, v in t.items()}} for i, t in enumerate(trials)]
    record = SweepRecord(name="made-up", run_dir=".", spec_path="made-up.yaml", spec={},
                         experiment={}, seeds=[0], swept=swept, metric=metric, mode="min")
    data = RunData(Path("."), rows, record)
    return StudyRun(data, summarize_run(data), 60.0)


def online_trials(plain_gaps, sp_gaps, saving=2.0):
    out = []
    for shrink, perturb, gaps in ((1.0, 0.0, plain_gaps), (0.5, 0.1, sp_gaps)):
        for seed, gap in enumerate(gaps):
            out.append({"shrink": shrink, "warm.perturb": perturb, "seed": seed, "gap": gap,
                        "saving": saving, "warm/test_acc": 60 - gap, "cold/test_acc": 60})
    return out


def test_online_agrees_when_the_gap_exists_and_shrinking_narrows_it():
    run = fake_run(["shrink", "warm.perturb"], online_trials([3, 4, 5], [0.1, -0.2, 0.0]))
    verdict, text = compare_online(run)
    # a gap with a CI above 0, narrowed by shrink-and-perturb at a saving: agree
    assert verdict == "agree" and "+4.0 [" in text
    # the verdict table lists both settings with their seed counts
    assert verdict_table(run).count("3 / 3") == 2


def test_online_disagrees_without_a_gap():
    run = fake_run(["shrink", "warm.perturb"], online_trials([-1, 0.5, -0.5], [1, 2, 3]))
    # no warm-start gap, and shrinking only widens it: disagree
    assert compare_online(run)[0] == "disagree"


def two_regime_trials(small, phased, constant):
    """Per-seed gaps of the small rate alone, 100 large steps first, and the large rate held
    constant (its switch and ratio inert)."""
    out = []
    for schedule, switch, gaps in (("two_regime", 0, small), ("two_regime", 100, phased),
                                   ("constant", 0, constant)):
        for seed, gap in enumerate(gaps):
            out.append({"optim.schedule": schedule, "optim.switch_step": switch,
                        "optim.ratio": 0.2, "seed": seed, "gap": gap, "saving": 2.0,
                        "warm/test_acc": 60 - gap, "cold/test_acc": 60})
    return out


TWO_REGIME = ["optim.schedule", "optim.switch_step", "optim.ratio"]


@pytest.mark.parametrize("phased, constant, verdict, says", [
    # the phase narrows the gap and beats the large rate throughout: Leclerc & Madry's reading
    ([0.1, 0.3, 0.2, 0.0], [2.9, 3.1, 3.0, 3.2], "agree", "support the large-step phase"),
    # the large rate throughout does better than the phase: a larger rate is all it takes
    ([1.1, 1.3, 1.2, 1.0], [0.1, 0.2, 0.0, 0.1], "disagree", "large rate throughout does better"),
    # the phase and the constant large rate do as well: the readings cannot be told apart
    ([0.1, 0.3, 0.2, 0.0], [0.3, 0.0, 0.1, 0.2], "unclear", "cannot tell the two readings"),
    # the phase beats the constant large rate, but not (on these seeds) the small rate alone
    ([2.0, -1.0, 3.5, 0.5], [5.1, 2.0, 6.4, 3.6], "unclear",
     "beats the large rate held constant, but its change against the small rate alone is not"),
    # neither change is shown
    ([2.0, -1.0, 3.5, 0.5], [4.1, 4.4, 4.0, 4.3], "unclear", "Neither change is shown"),
])
def test_two_regime_says_which_reading_the_data_support(phased, constant, verdict, says):
    run = fake_run(TWO_REGIME, two_regime_trials([3.0, 3.5, 2.5, 3.2], phased, constant))
    got, text = compare_two_regime(run)
    assert got == verdict and says in text, text


def test_two_regime_without_the_constant_control_cannot_agree():
    trials = [t for t in two_regime_trials([3.0, 3.5, 2.5, 3.2], [0.1, 0.3, 0.2, 0.0],
                                           [0, 0, 0, 0]) if t["optim.schedule"] != "constant"]
    got, text = compare_two_regime(fake_run(TWO_REGIME, trials))
    assert got == "unclear" and "no constant large-rate control" in text


def test_nqm_needs_a_ten_fold_rate_and_a_higher_loss():
    trials = []
    for h, lr, loss in ((1, 0.006, 1.3), (100, 0.007, 1.2), (10000, 0.08, 0.88)):
        trials += [{"meta_horizon": h, "seed": s, "nqm/lr_mid": lr,
                    "nqm/final_loss": loss + s / 100}
                   for s in range(3)]
    run = fake_run(["meta_horizon"], trials, metric="nqm/final_loss")
    # 0.08 / 0.006 > 10 and the short horizon ends higher: agree
    assert compare_nqm(run)[0] == "agree"
    trials = [dict(t, **{"nqm/lr_mid": 0.05}) for t in trials]
    # the same rate at every horizon: disagree
    assert compare_nqm(fake_run(["meta_horizon"], trials, metric="nqm/final_loss"))[0] == "disagree"


def test_warmup_boundary_is_the_largest_rate_that_trains():
    trials = []
    for opt, steps, ok in (("sgd", 0, [0.1, 1.0]), ("sgd", 256, [0.1, 1.0, 3.0]),
                           ("adam", 0, [0.1]), ("adam", 256, [0.1, 1.0]),
                           ("gi_adam", 0, [0.1, 1.0])):
        for lr in (0.1, 1.0, 3.0):
            for seed in (0, 1):
                trained = lr in ok
                trials.append({"model.init_scale": 4.0, "optim.name": opt, "warmup_steps": steps,
                               "lr": lr, "seed": seed, "cold/test_acc": 70 if trained else "",
                               "gap": 0.0 if trained else "", "diverged": str(not trained),
                               "status": "completed" if trained else "diverged"})
    run = fake_run(["model.init_scale", "optim.name", "warmup_steps", "lr"], trials,
                   metric="cold/test_acc")
    verdict, text = compare_warmup(run)
    # warmup moves SGD's boundary 1 -> 3 and Adam's 0.1 -> 1; GI-Adam reaches Adam+warmup's 1
    assert "sgd at init x4: 1 without warmup, 3 with it" in text
    assert "adam at init x4: 0.1 without warmup, 1 with it" in text
    assert verdict == "agree"


def test_trial_smoke_runs_one_study_setting_in_process(ray_env):
    import json

    out = wssweep(ray_env, "trial", "sweeps/meta_horizon_warm.yaml", "--smoke")
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(out.stdout)
    # 3 smoke stages, and the third arm's gap is reported next to the gap
    assert len(metrics["warm/stage_test_acc"]) == 3 and "gap_chosen" in metrics


def test_committed_results_page_is_what_the_committed_runs_give(tmp_path):
    import shutil

    from wssweep.studies import write_results

    runs = tmp_path / "runs"
    shutil.copytree(REPO / "docs" / "runs", runs, ignore=shutil.ignore_patterns("map"))
    # the page's text (its figures are rebuilt and checked by the smoke runs' page test)
    out = write_results([runs], tmp_path / "results.md", figures=False)
    # docs/results.md is exactly what `wssweep results docs/runs` writes: not edited by hand
    assert out.read_text() == (REPO / "docs" / "results.md").read_text()
    # and every study has its full run there
    assert set(find_study_runs([runs])) == set(STUDIES)


def test_meta_horizon_page_flags_rates_at_the_grid_edge_and_shows_steps():
    import csv
    import json
    import math

    from wssweep.studies import load_study_run, table_horizon

    run_dir = next((REPO / "docs" / "runs").glob("meta_horizon_warm-*"))
    run = load_study_run(run_dir)
    table = table_horizon(run)
    with open(run_dir / "results.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    from wssweep.config import WarmConfig

    # counted here from results.csv: per H, the chosen per-stage rates at the grid's ends (the
    # run's meta_lr_min where it sets one, and the experiment's default maximum), against the
    # page's column
    defaults = WarmConfig()
    for h in ("5", "20", "100", "500"):
        mine = [t for t in trials if t["meta_horizon"] == h]
        low = float(mine[0].get("warm.meta_lr_min") or defaults.meta_lr_min)
        rates = [r for t in mine for r in json.loads(t["warm/stage_lr"])[1:]]
        edge = sum(math.isclose(r, low) or math.isclose(r, defaults.meta_lr_max) for r in rates)
        line = next(row for row in table.splitlines() if row.startswith(f"| {h} |"))
        assert f"| {edge} / {len(rates)} |" in line, (h, line)
        # and each setting's warm steps against the cold arm's, averaged over its seeds
        warm = sum(float(t["warm/steps"]) for t in mine) / len(mine)
        assert f"| {warm:.0f} / " in line, (h, line)


def test_online_page_states_the_scale_of_each_noise_convention():
    import re

    import torch

    from wssweep.science.models import build_model
    from wssweep.studies import compare_online, load_study_run

    run = load_study_run(next((REPO / "docs" / "runs").glob("ash_adams_online-*")))
    _, text = compare_online(run)
    # the fresh-init noise is the model's own init scale, layer by layer; Gaussian noise is N(0, 1)
    from wssweep.config import ExperimentConfig

    cfg = ExperimentConfig.model_validate(run.data.sweep.experiment)
    model = build_model(cfg.model, input_shape=(40,), num_classes=10, seed=0)
    stds = [p.std().item() for p in model.parameters() if p.ndim == 2]
    assert isinstance(model, torch.nn.Module) and len(stds) == 3
    found = re.search(r"std of ([\d.]+)–([\d.]+) per weight matrix.*?Gaussian noise is "
                      r"(\d+)–(\d+)× larger", text)
    assert found, text
    assert float(found[1]) == pytest.approx(min(stds), abs=6e-4)
    assert float(found[2]) == pytest.approx(max(stds), abs=6e-4)
    assert int(found[3]) == round(1 / max(stds)) and int(found[4]) == round(1 / min(stds))


@pytest.mark.parametrize("wall", ["garbage", "[1]", '[{"seconds": "abc"}]', "[]", "{}"])
def test_a_wall_json_wssweep_did_not_write_means_no_wall_time(tmp_path, wall):
    from wssweep.studies import _wall

    (tmp_path / "wall.json").write_text(wall)
    # the results page shows the run without a time rather than failing on it
    assert _wall(tmp_path) == (None, tmp_path.stat().st_mtime)
