"""Nothing lost, nothing run twice: ``kill -9``, SIGINT and SIGTERM of the driver, then resume.

The kill points are forced, not timed: the tests wait on files in the run directory (a trial's
final record, its stage checkpoint), and ``HOLD_AFTER_FINAL_ENV`` holds a trial between writing
its final record and reporting it to Tune, the window in which Tune's experiment snapshot still
has it running.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.cli import finish, kill_group, show, start, wait_for, wssweep
from wssweep.checkpoint import FINAL_FILE, STAGE_FILE, TRIALS_DIR
from wssweep.results import read_results
from wssweep.trial import HOLD_AFTER_FINAL_ENV, read_starts

# 4 settings x 2 seeds; each trial ~3 s of wall time (tests.plugins:slow_net sleeps in forward)
# over 3 stages, so a kill can land between trials and inside a stage on any machine.
SPEC = """
experiment:
  data: {name: digits, train_size: 300, test_size: 100}
  model: {name: custom, factory: "tests.plugins:slow_net", kwargs: {delay: 0.06}}
  protocol: {kind: online, chunks: 3, stop: {train_acc: 1.0, max_epochs: 2, plateau_window: 20}}
  optim: {name: sgd, batch_size: 100}
  lr: 0.1
method: grid
metric: {name: gap, goal: minimize}
parameters:
  lr: {values: [0.03, 0.1, 0.3, 1.0]}
seeds: [0, 1]
"""
TRIALS = 8


def finals(run_dir: Path) -> list[Path]:
    return sorted((run_dir / TRIALS_DIR).glob(f"*/{FINAL_FILE}"))


def mid_stage(run_dir: Path) -> list[Path]:
    """Units with a stage checkpoint and no final record: trials inside a later stage."""
    return [p.parent for p in (run_dir / TRIALS_DIR).glob(f"*/{STAGE_FILE}")
            if not (p.parent / FINAL_FILE).exists()]


def check_finished_sweep(run_dir: Path) -> list[dict]:
    """Every trial once and completed, none trained again after it finished, the map built."""
    rows = read_results(run_dir / "results.csv")
    # every trial of the 4 x 2 grid appears exactly once, and all finished (a linear model
    # trained 2 epochs at a small rate may stay near chance: diverged is a finished result)
    assert len(rows) == TRIALS, rows
    assert len({(r["setting_key"], r["seed"]) for r in rows}) == TRIALS
    assert {r["status"] for r in rows} <= {"completed", "diverged"}, rows
    assert sorted((r["lr"], r["seed"]) for r in rows) == sorted(
        (lr, s) for lr in ("0.03", "0.1", "0.3", "1.0") for s in ("0", "1"))
    # no trial started training again once its final metrics were recorded (the start records)
    finished_at = {f"{r['setting_key']}-seed{r['seed']}": float(r["finished_at"]) for r in rows}
    starts = read_starts(run_dir)
    late = [s for s in starts if s["event"] == "start" and s["at"] > finished_at[s["unit"]]]
    assert late == []
    # each unit's restarts column counts its extra starts
    counts = Counter(s["unit"] for s in starts if s["event"] == "start")
    assert {u: int(r["restarts"]) for u, r in zip(finished_at, rows, strict=True)} == {
        u: counts[u] - 1 for u in finished_at}
    # the map was built, and no stage checkpoint is left behind
    assert (run_dir / "map" / "report.html").is_file()
    assert list((run_dir / TRIALS_DIR).glob(f"*/{STAGE_FILE}")) == []
    return rows


def test_kill_9_at_five_points_then_resume_loses_and_repeats_nothing(tmp_path, ray_env):
    spec = tmp_path / "resume.yaml"
    spec.write_text(SPEC)
    run_dir = tmp_path / "r"
    hold = tmp_path / "hold"
    hold.touch()
    env = {**ray_env, HOLD_AFTER_FINAL_ENV: str(hold)}
    resumed_units = set()
    # Right after the 1st, 2nd, 4th and 6th trial finishes (held before its report), then mid-stage.
    for session, point in enumerate([1, 2, 4, 6, "mid-stage"]):
        args = (("run", str(spec), "--name", "r", "--storage", str(tmp_path)) if session == 0
                else ("resume", str(run_dir)))
        if point == "mid-stage":
            hold.unlink()
        driver = start(env, *args)
        try:
            if point == "mid-stage":
                units = wait_for(lambda: mid_stage(run_dir), "a trial inside a later stage",
                                 driver)
                resumed_units |= {u.name for u in units}
            else:
                wait_for(lambda n=point: len(finals(run_dir)) >= n, f"{point} final records",
                         driver)
        finally:
            kill_group(driver.pid)  # kill -9 of the driver and the local Ray it started
            driver.communicate()
        # the sweep was killed mid-way: not every trial had finished
        assert len(finals(run_dir)) < TRIALS
    out = wssweep(ray_env, "resume", str(run_dir), timeout=300)
    # the last resume finishes the sweep cleanly
    assert out.returncode == 0, show(out)
    rows = check_finished_sweep(run_dir)
    starts = read_starts(run_dir)
    # the held trials were restored by Tune as unfinished, found their final records and replayed
    assert sum(s["event"] == "replay" for s in starts) >= 4
    # the trial killed inside a stage continued after its last finished stage
    by_unit = {f"{r['setting_key']}-seed{r['seed']}": r for r in rows}
    assert all(int(by_unit[u]["resumed_stage"]) >= 1 for u in resumed_units), resumed_units
    assert all(int(by_unit[u]["restarts"]) >= 1 for u in resumed_units)


def test_sigterm_and_ctrl_c_stop_cleanly_and_resume(tmp_path, ray_env):
    spec = tmp_path / "stop.yaml"
    spec.write_text(SPEC)
    run_dir = tmp_path / "s"
    stopped_mid_stage = set()
    # SIGTERM to the driver (what kill or a scheduler sends), then Ctrl-C (SIGINT to the whole
    # foreground process group, Ray's processes included).
    for session, (sig, to_group, status) in enumerate([(signal.SIGTERM, False, 143),
                                                      (signal.SIGINT, True, 130)]):
        args = (("run", str(spec), "--name", "s", "--storage", str(tmp_path)) if session == 0
                else ("resume", str(run_dir)))
        driver = start(ray_env, *args)
        try:
            wait_for(lambda n=session: len(finals(run_dir)) > 2 * n and mid_stage(run_dir),
                     "a finished trial and one inside a later stage", driver)
            stopped_mid_stage |= {u.name for u in mid_stage(run_dir)}
            if to_group:
                kill_group(driver.pid, sig)
            else:
                driver.send_signal(sig)
            out = finish(driver, timeout=120)
        finally:
            kill_group(driver.pid)
        # the driver stopped with the signal's status and one line saying how to continue
        assert out.returncode == status, show(out)
        assert f"wssweep resume {run_dir}" in out.stderr, show(out)
        assert "Traceback" not in out.stderr, show(out)
        rows = read_results(run_dir / "results.csv")
        # results.csv and the map were written for what had finished
        assert sum(r["status"] in ("completed", "diverged") for r in rows) >= 1
        assert (run_dir / "map" / "report.html").is_file()
        # the trials that were running keep their stage checkpoints
        assert {u.name for u in mid_stage(run_dir)} & stopped_mid_stage
    out = wssweep(ray_env, "resume", str(run_dir), timeout=300)
    assert out.returncode == 0, show(out)
    rows = check_finished_sweep(run_dir)
    by_unit = {f"{r['setting_key']}-seed{r['seed']}": r for r in rows}
    # a trial stopped inside a stage went on from its last finished stage
    assert any(int(by_unit[u]["resumed_stage"]) >= 1 for u in stopped_mid_stage)


def test_science_error_is_a_result_and_not_retried(tmp_path, ray_env):
    spec = tmp_path / "err.yaml"
    spec.write_text("""
experiment:
  data: {name: digits, train_size: 200, test_size: 100}
  model: {name: custom, factory: "tests.plugins:broken_net"}
  protocol: {kind: online, chunks: 2, stop: {max_epochs: 1}}
method: grid
metric: {name: gap, goal: minimize}
seeds: [0]
resources: {max_failures: 3}
""")
    out = wssweep(ray_env, "run", str(spec), "--name", "e", "--storage", str(tmp_path))
    # the sweep finished; the trial's exception is its result
    assert out.returncode == 0, show(out)
    (row,) = read_results(tmp_path / "e" / "results.csv")
    assert row["status"] == "error" and "broken_net refuses to build" in row["error"]
    # it started once: an exception of the science is not retried, even with max_failures 3
    assert [s["event"] for s in read_starts(tmp_path / "e")] == ["start"]
    assert row["restarts"] == "0"
