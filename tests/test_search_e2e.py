"""bayes (Optuna), ASHA early termination and random search on a real local Ray."""

from pathlib import Path

import optuna
import pytest

from tests.cli import run_many, show
from wssweep.results import read_results

EXPERIMENT = """
experiment:
  data: {name: digits, train_size: 300, test_size: 120}
  model: {name: mlp, width: 16}
  protocol: {kind: online, chunks: CHUNKS, stop: {max_epochs: 3}}
  optim: {name: adam, batch_size: 32}
  lr: 0.01
metric: {name: gap, goal: minimize}
"""


# The three searches, each a spec: (its body, its stages).
SEARCHES = {
    "bayes": ("""
name: bayes
method: bayes
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.3}
  shrink: {distribution: uniform, min: 0.2, max: 1.0}
  warm.intervention: {values: [shrink_perturb]}
seeds: [0]
run_cap: 5
""", 3),
    "asha": ("""
method: grid
parameters:
  lr: {values: [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]}
seeds: [0]
early_terminate: {type: hyperband, min_iter: 2, eta: 2}
""", 5),
    "random": ("""
method: random
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.1}
seeds: [0, 1]
run_cap: 5
""", 3),
    # W&B's semantics: no run_cap, so it samples until stopped; metric.target ends it once a
    # finished trial reaches it (any validation gap is below 100 points)
    "target": ("""
method: random
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.1}
seeds: [0]
""", 2),
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory, ray_env) -> Path:
    """The searches, run one after another in one process (``tests.cli.run_many``)."""
    storage = tmp_path_factory.mktemp("searches")
    commands = []
    for name, (body, chunks) in SEARCHES.items():
        spec = storage / f"{name}.yaml"
        experiment = EXPERIMENT.replace("CHUNKS", str(chunks))
        if name == "target":
            experiment = experiment.replace("goal: minimize}", "goal: minimize, target: 100}")
        spec.write_text(experiment + body)
        commands.append(["run", str(spec), "--name", name, "--storage", str(storage)])
    # The searches are what is tested here; W&B has its own end-to-end tests (test_sweep_e2e)
    # and would only cost CPU: `wandb.mode: auto` follows W&B's WANDB_MODE.
    out = run_many({**ray_env, "WANDB_MODE": "disabled"}, commands)
    assert out.returncode == 0, show(out)
    return storage


def rows_of(storage: Path, name: str) -> tuple[Path, list[dict]]:
    return storage / name, read_results(storage / name / "results.csv")


def test_bayes_search_keeps_every_trial_in_the_sqlite_study(searched):
    run_dir, rows = rows_of(searched, "bayes")
    study = optuna.load_study(study_name="bayes", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    # the study holds every trial the sweep ran, no more, no fewer
    assert len(trials) == len(rows) == 5
    # each finished trial's value is the gap the trial reported in results.csv, on the
    # validation split (the metric gap is selected on val_gap; test accuracy is only reported)
    gaps = sorted(round(float(r["val_gap"]), 9) for r in rows if r["val_gap"])
    values = sorted(round(t.value, 9) for t in trials if t.state.name == "COMPLETE")
    assert values == gaps and len(values) >= 4
    # Optuna proposed different rates, inside the declared range
    lrs = [float(r["lr"]) for r in rows]
    assert len(set(lrs)) == 5 and all(0.001 <= lr <= 0.3 for lr in lrs)


def test_asha_stops_some_trials_early(searched):
    _, rows = rows_of(searched, "asha")
    statuses = [r["status"] for r in rows]
    # every trial is accounted for
    assert len(rows) == 8
    # ASHA ended some trials at a rung, before their last stage
    assert statuses.count("stopped") >= 1
    # and let others run to the end
    assert statuses.count("completed") + statuses.count("diverged") >= 1


def test_random_search_honours_run_cap(searched):
    _, rows = rows_of(searched, "random")
    # run_cap 5 with 2 seeds: 2 settings x 2 seeds = 4 trials, never more than the cap
    assert len(rows) == 4
    # each sampled setting ran on both seeds
    by_lr = {}
    for r in rows:
        by_lr.setdefault(r["lr"], set()).add(r["seed"])
    assert list(by_lr.values()) == [{"0", "1"}, {"0", "1"}]


def test_a_random_search_without_run_cap_runs_until_its_metric_target_is_reached(searched,
                                                                               ray_env):
    run_dir, rows = rows_of(searched, "target")
    # it ended on its own: a trial finished and reached the target; no more trials were created
    # than the cluster runs at once (no queue of pending trials left behind)
    assert any(r["status"] == "completed" for r in rows), rows
    assert 1 <= len(rows) <= 4 and not any(r["status"] == "pending" for r in rows), rows
    # resuming it runs nothing more: the target was reached
    again = run_many({**ray_env, "WANDB_MODE": "disabled"}, [["resume", str(run_dir)]])
    assert again.returncode == 0 and "was reached" in again.stdout, show(again)
    assert len(read_results(run_dir / "results.csv")) == len(rows)


def test_a_random_search_without_run_cap_runs_until_stopped_and_resume_continues_it(tmp_path,
                                                                                   ray_env):
    from tests.cli import finish, kill_group, start, wait_for, wssweep
    from wssweep.checkpoint import final_records
    from wssweep.trial import read_starts

    spec = tmp_path / "forever.yaml"
    spec.write_text(EXPERIMENT.replace("CHUNKS", "2") + """
method: random
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.1}
seeds: [0]
""")
    run_dir = tmp_path / "forever"
    env = {**ray_env, "WANDB_MODE": "disabled"}
    seen = []
    for session in range(2):
        args = (("run", str(spec), "--name", "forever", "--storage", str(tmp_path))
                if session == 0 else ("resume", str(run_dir)))
        before = len(final_records(run_dir)) if run_dir.exists() else 0
        driver = start(env, *args)
        try:
            # it samples on with no cap; each session finishes at least two more trials
            wait_for(lambda before=before: len(final_records(run_dir)) >= before + 2,
                     "two more finished trials", driver)
            asked = wssweep(env, "stop", str(run_dir), timeout=60)
            assert asked.returncode == 0, show(asked)
            out = finish(driver, timeout=120)
        finally:
            kill_group(driver.pid)
        # `wssweep stop` ended it cleanly, saying how to go on
        assert out.returncode == 0 and "stopped by `wssweep stop`" in out.stderr, show(out)
        seen.append(len(final_records(run_dir)))
    # the resumed session went on drawing settings: more trials finished than in the first
    assert seen[1] > seen[0] >= 2
    # and none of them trained twice: no start of a unit after its final record was written
    finished_at = {f"{r['setting_key']}-seed{r['seed']}": r["finished_at"]
                   for r in final_records(run_dir)}
    late = [s for s in read_starts(run_dir) if s["event"] == "start"
            and s["unit"] in finished_at and s["at"] > finished_at[s["unit"]]]
    assert late == []
    # no queue of pending trials was left in results.csv (Tune keeps ~200 queued without a
    # cap on trials at once): at most the two slots' trials of each session
    rows = read_results(run_dir / "results.csv")
    assert sum(r["status"] in ("pending", "running") for r in rows) <= 2 * len(seen), rows
