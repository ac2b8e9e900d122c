"""End-to-end sweeps on a real local Ray, through the CLI users run, with W&B offline."""

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.cli import run_many, wssweep
from tests.wandb_files import find_runs, read_run
from wssweep.checkpoint import final_records
from wssweep.results import read_results
from wssweep.trial import read_starts
from wssweep.verdicts import TEST_NAME, VERDICTS

REPO = Path(__file__).resolve().parents[1]

SMALL_EXPERIMENT = """
experiment:
  data: {name: digits, train_size: 300, test_size: 120}
  model: {name: mlp, width: 16}
  protocol: {kind: online, chunks: 3, stop: {max_epochs: 4}}
  optim: {name: adam, batch_size: 32}
  lr: 0.01
"""


# Seconds per trial: the rounds of seeds until decided run several sessions of them.
TINY_EXPERIMENT = """
experiment:
  data: {name: digits, train_size: 200, test_size: 100}
  model: {name: logreg}
  protocol: {kind: online, chunks: 2, stop: {max_epochs: 3}}
  optim: {name: adam, batch_size: 32}
"""


def rows(run_dir: Path) -> list[dict]:
    return read_results(run_dir / "results.csv")


# The shipped quickstart, unchanged but for smaller data and stages.
QUICKSTART_SMOKE = ["--set", "data.train_size=600", "--set", "protocol.chunks=3",
                    "--set", "protocol.stop.max_epochs=10", "--set", "model.width=32",
                    "--set", "lr=0.01", "--set", "optim.batch_size=32"]


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory, ray_env) -> dict[str, Path]:
    """A small grid and the quickstart, with W&B offline, one after another in one process
    (``tests.cli.run_many``); each in its own storage."""
    tmp = tmp_path_factory.mktemp("grid")
    spec = tmp / "grid.yaml"
    spec.write_text(SMALL_EXPERIMENT + """
method: grid
metric: {name: gap, goal: minimize}
parameters:
  warm.intervention: {values: [none, shrink_perturb]}
seeds: [0, 1]
wandb: {project: e2e, mode: auto}
""")
    out = run_many(ray_env, [
        ["run", str(spec), "--name", "grid", "--storage", str(tmp / "runs")],
        ["run", "sweeps/quickstart.yaml", "--name", "qs", "--storage", str(tmp / "qs-runs"),
         *QUICKSTART_SMOKE]])
    # the main job's sweep (and the grid) run to the end
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {"grid": tmp / "runs" / "grid", "qs": tmp / "qs-runs" / "qs"}


@pytest.fixture(scope="module")
def grid_run(offline_runs) -> Path:
    return offline_runs["grid"]


def test_grid_sweep_writes_one_row_per_trial(grid_run):
    table = rows(grid_run)
    # 2 settings x 2 seeds = 4 trials, each once
    assert len(table) == 4 and len({r["trial_id"] for r in table}) == 4
    # all of them finished
    assert {r["status"] for r in table} == {"completed"}
    # each setting ran on both seeds, and the setting key ignores the seed
    assert sorted((r["warm.intervention"], r["seed"]) for r in table) == [
        ("none", "0"), ("none", "1"), ("shrink_perturb", "0"), ("shrink_perturb", "1")]
    assert len({r["setting_key"] for r in table}) == 2
    # the metrics are numbers computed by the trials: gap = cold - warm
    for r in table:
        assert abs(float(r["gap"]) - (float(r["cold/test_acc"]) - float(r["warm/test_acc"]))) < 1e-9


def test_grid_sweep_writes_readable_wandb_runs(grid_run):
    runs = [read_run(path) for path in find_runs(grid_run / "wandb")]
    trial_runs = [run for run in runs if run["job_type"] == "trial"]
    # one W&B run per trial
    assert len(trial_runs) == 4
    by_id = {r["trial_id"]: r for r in rows(grid_run)}
    for run in trial_runs:
        row = by_id[run["run_id"]]
        # the config carries the setting key, the swept axis and the seed
        assert run["config"]["setting_key"] == row["setting_key"]
        assert run["config"]["warm.intervention"] == row["warm.intervention"]
        assert run["config"]["seed"] == int(row["seed"])
        # per-epoch history with explicit, increasing steps
        steps = [h["_step"] for h in run["history"]]
        assert len(steps) > 3 and steps == sorted(steps)
        # the summary holds the trial's final metrics
        assert abs(run["summary"]["gap"] - float(row["gap"])) < 1e-9
        # grouped by the run's name, as a trial job
        assert run["group"] == "grid" and run["job_type"] == "trial"


def test_failing_and_diverging_trials_are_recorded_and_the_sweep_goes_on(tmp_path, ray_env):
    spec = tmp_path / "fail.yaml"
    spec.write_text("""
experiment:
  data: {name: digits, train_size: 300, test_size: 120}
  model: {name: custom, factory: tests.plugins:tiny_net}
  protocol: {kind: online, chunks: 3, stop: {max_epochs: 4}}
  optim: {name: sgd, batch_size: 32}
method: grid
metric: {name: gap, goal: minimize}
parameters:
  model.factory: {values: ["tests.plugins:tiny_net", "tests.plugins:broken_net"]}
  lr: {values: [0.1, 1.0e+6]}
seeds: [0]
""")
    # what is tested is how failures are recorded, not W&B (the grid test checks its files)
    out = wssweep({**ray_env, "WANDB_MODE": "disabled"}, "run", str(spec), "--name", "f",
                  "--storage", str(tmp_path))
    # failed and diverged trials do not fail the sweep
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = {(r["model.factory"].split(":")[1], float(r["lr"])): r for r in rows(tmp_path / "f")}
    # the healthy setting completed
    assert table[("tiny_net", 0.1)]["status"] == "completed"
    # the exploding rate is recorded as diverged, with no gap
    diverged = table[("tiny_net", 1e6)]
    assert diverged["status"] == "diverged" and diverged["gap"] == ""
    # the raising trials are errors that carry their message
    for lr in (0.1, 1e6):
        assert table[("broken_net", lr)]["status"] == "error"
        assert "broken_net refuses" in table[("broken_net", lr)]["error"]
    # an exception of the science is a result, not a lost worker: it is not retried, although
    # resources.max_failures defaults to 3
    starts = Counter(s["unit"] for s in read_starts(tmp_path / "f") if s["event"] == "start")
    assert sorted(starts.values()) == [1, 1, 1, 1]
    assert {r["restarts"] for r in table.values()} == {"0"}


def test_grid_sweep_ends_with_its_gap_map_on_disk_and_in_wandb(grid_run):
    map_dir = grid_run / "map"
    with open(map_dir / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    # one summary row per setting, pooling both seeds
    assert len(summary) == 2 and {r["n_seeds"] for r in summary} == {"2"}
    # the report page carries the verdict table
    assert "verdict" in (map_dir / "report.html").read_text().lower()
    maps = [read_run(path) for path in find_runs(grid_run / "wandb")]
    maps = [run for run in maps if run["job_type"] == "map"]
    # one map run per sweep, in the sweep's group
    assert len(maps) == 1 and maps[0]["group"] == "grid"
    logged = maps[0]["summary"]
    # the summary table went in, with one row per setting
    assert logged["summary"]["_type"] == "table-file" and logged["summary"]["nrows"] == 2
    # and the map's images, one per PNG on disk
    images = [k for k, v in logged.items()
              if isinstance(v, dict) and v.get("_type") == "image-file"]
    assert len(images) == len(list(map_dir.glob("*.png"))) >= 1
    # the verdict counts add up to the settings
    assert sum(v for k, v in logged.items() if k.startswith("verdict/")) == 2
    # its config names the reference cold start, the test and the correction the verdicts used
    config = maps[0]["config"]
    assert config["test"] == TEST_NAME and config["correction"].startswith("Holm")
    reference = json.loads((map_dir / "reference.json").read_text())
    assert config["reference.how"] == reference["how"] == "only", config


def test_quickstart_sweep_map_smoke(offline_runs):
    """The shipped quickstart, unchanged but for smaller data and stages, end to end."""
    from matplotlib.image import imread

    from wssweep.plots import heatmap_size_px

    qs = offline_runs["qs"]
    map_dir = qs / "map"
    with open(map_dir / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    # 2 x 2 settings, each pooled over its 3 seeds
    assert len(summary) == 4 and {r["n_seeds"] for r in summary} == {"3"}
    heatmaps = list(map_dir.glob("heatmap_*.png"))
    # one heatmap for the one pair of swept axes with 2 values each (shrink x perturb)
    assert len(heatmaps) == 1
    # it opens as an image of the size the 2 x 2 layout asks for
    assert imread(heatmaps[0]).shape[:2] == tuple(reversed(heatmap_size_px(2, 2)))
    html = (map_dir / "report.html").read_text()
    # the report carries the verdict table: one verdict cell per setting
    verdicts = sum(html.count(f">{v}<") for v in VERDICTS)
    assert verdicts >= 4
    # ... and says what the verdicts judge against, by which test and correction
    assert "Reference cold start" in html and "Holm" in html and "one-sided" in html
    table = read_results(qs / "results.csv")
    # each trial carries its validation accuracies and each arm's stop reason and failure
    for column in ("warm/val_acc", "cold/val_acc", "val_gap", "warm/stop", "cold/stop",
                   "warm/diverged", "cold/diverged"):
        assert all(r[column] != "" for r in table), column
    assert {r["cold/stop"] for r in table} <= {"threshold", "plateau", "max_epochs", "diverged"}
    # the quickstart varies only warm-only keys: its one cold recipe is the reference, and the
    # reference gap is the same-recipe gap
    reference = json.loads((map_dir / "reference.json").read_text())
    assert reference["how"] == "only" and reference["n_seeds"] == 3
    for r in summary:
        assert float(r["ref_gap_mean"]) == pytest.approx(float(r["gap_mean"]))
        assert r["val_verdict"] in VERDICTS


def test_seeds_until_decided_adds_seeds_only_where_undecided_and_resumes(tmp_path, ray_env):
    from wssweep.record import SweepRecord
    from wssweep.sequential import Plan, plan_round

    spec = tmp_path / "until.yaml"
    spec.write_text(TINY_EXPERIMENT + """  lr: 0.01
method: grid
metric: {name: gap, goal: minimize}
parameters:
  warm.intervention: {values: [none, shrink_perturb]}
seeds: {min: 2, max: 4, until: decided}
gap_tolerance: 1.0
""")
    ray_env = {**ray_env, "WANDB_MODE": "disabled"}  # the rounds are tested here, not W&B
    out = wssweep(ray_env, "run", str(spec), "--name", "u", "--storage", str(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = tmp_path / "u"
    sweep = SweepRecord.model_validate_json((run_dir / "sweep.json").read_text())
    # the run record keeps the plan; how many trials it takes is not known in advance
    assert sweep.seed_plan is not None and sweep.expected_trials is None
    table = rows(run_dir)
    seeds = {s: sorted(int(r["seed"]) for r in table if r["warm.intervention"] == s)
             for s in ("none", "shrink_perturb")}
    # every setting ran the minimum, then only to a planned look: 2 or 4 seeds, each once
    assert all(v in ([0, 1], [0, 1, 2, 3]) for v in seeds.values()), seeds
    # the settings that got more seeds are exactly those undecided on the first 2
    first = [r for r in table if int(r["seed"]) < 2]
    grid = [{"warm.intervention": s} for s in ("none", "shrink_perturb")]
    step = plan_round(first, grid, ["warm.intervention"], Plan(2, 4), 1.0, 0.05)
    assert {s["warm.intervention"] for s, _ in step.trials} == {
        s for s, v in seeds.items() if len(v) == 4}
    with open(run_dir / "map" / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    # the map judges every setting, seeds as run
    assert {r["verdict"] for r in summary} <= set(VERDICTS)
    assert sorted(int(r["n_seeds"]) for r in summary) == sorted(len(v) for v in seeds.values())
    starts = len(read_starts(run_dir))
    again = wssweep(ray_env, "resume", str(run_dir))
    # resuming a finished sweep plans the same rounds from the final records: nothing runs
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert len(read_starts(run_dir)) == starts and len(rows(run_dir)) == len(table)


def test_seeds_until_decided_with_bayes_tells_optuna_the_current_estimates_and_resumes_mid_round(
        tmp_path, ray_env):
    import optuna

    from tests.cli import kill_group, start, wait_for
    from wssweep.optuna_rounds import SEEDS_ATTR
    from wssweep.trial import HOLD_AFTER_FINAL_ENV

    spec = tmp_path / "bayes_until.yaml"
    spec.write_text(TINY_EXPERIMENT + """name: bu
method: bayes
metric: {name: gap, goal: minimize}
parameters:
  lr: {distribution: log_uniform_values, min: 0.003, max: 0.03}
seeds: {min: 2, max: 4, until: decided}
run_cap: 4
""")
    run_dir = tmp_path / "bu"
    hold = tmp_path / "hold"
    hold.touch()
    # the rounds are tested here, not W&B; each trial holds between its final record and its
    # report to Tune, so the driver can be killed with the first round finished on disk only
    env = {**ray_env, "WANDB_MODE": "disabled", HOLD_AFTER_FINAL_ENV: str(hold)}
    driver = start(env, "run", str(spec), "--storage", str(tmp_path))
    try:
        wait_for(lambda: len(final_records(run_dir)) >= 2, "the first round's 2 trials", driver)
        kill_group(driver.pid)
        driver.communicate()
    finally:
        kill_group(driver.pid)
    hold.unlink()
    # run_cap 4 on 2 first seeds: 2 settings, drawn over rounds; the first round drew one
    assert len(json.loads((run_dir / "rounds" / "settings.json").read_text())) == 1
    out = wssweep(env, "resume", str(run_dir))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = rows(run_dir)
    by_lr = Counter(r["lr"] for r in table)
    # 2 settings, each on the first 2 seeds, then at a look (2 or 4 seeds); each trial once
    assert len(by_lr) == 2 and set(by_lr.values()) <= {2, 4}, by_lr
    assert len({(r["lr"], r["seed"]) for r in table}) == len(table)
    finished_at = {f"{r['setting_key']}-seed{r['seed']}": float(r["finished_at"]) for r in table}
    assert [s for s in read_starts(run_dir)
            if s["event"] == "start" and s["at"] > finished_at[s["unit"]]] == []
    drawn = json.loads((run_dir / "rounds" / "settings.json").read_text())
    assert sorted(str(s["lr"]) for s in drawn) == sorted(by_lr)
    # Optuna's study holds one trial per setting, told its mean over every seed it ran
    study = optuna.load_study(study_name="bu", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    told = {t.params["lr"]: t for t in study.get_trials(deepcopy=False)}
    assert len(told) == 2
    for lr, trial in told.items():
        mine = [float(r["val_gap"]) for r in table if float(r["lr"]) == lr and r["val_gap"]]
        assert trial.user_attrs[SEEDS_ATTR] == len(mine) == by_lr[
            next(k for k in by_lr if float(k) == lr)]
        assert trial.value == pytest.approx(sum(mine) / len(mine))
