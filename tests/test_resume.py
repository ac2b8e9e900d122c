"""Nothing lost, nothing run twice: ``kill -9`` and Ctrl-C of the driver, then resume.

The kill points are forced, not timed: the test waits on files in the run directory (a trial's
final record, its stage checkpoint), and holds trials where it needs them: ``HOLD_AFTER_FINAL_ENV``
between writing the final record and reporting it to Tune (the window in which Tune's experiment
snapshot still has the trial running), ``HOLD_AFTER_STAGE_ENV`` right after a stage checkpoint
(a trial inside a later stage).
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.cli import (
    finish,
    kill_group,
    kill_tree,
    process_tree,
    show,
    start,
    wait_for,
    wssweep,
)
from wssweep.checkpoint import FINAL_FILE, STAGE_FILE
from wssweep.record import TRIALS_DIR
from wssweep.results import read_results
from wssweep.trial import HOLD_AFTER_FINAL_ENV, HOLD_AFTER_STAGE_ENV, read_starts

# 4 settings x 2 seeds of 3 stages, each setting's seeds one group (resources.fuse: seeds, the
# default: what is killed, held and resumed is groups); each trial ~1.5 s of wall time
# (tests.plugins:slow_net sleeps in forward), so trials overlap on any machine; where a stop
# lands is forced by holds.
SPEC = """
experiment:
  data: {name: digits, train_size: 300, test_size: 100}
  model: {name: custom, factory: "tests.plugins:slow_net", kwargs: {delay: 0.03}}
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
    assert {r["group_size"] for r in rows} == {"2"}
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


# The sweep's life, one session per line: how the session ends, when (``final``: n final records
# exist; ``mid-stage``: a trial holds a stage checkpoint and no final record), and where trials are
# held meanwhile. SIGINT goes to the driver's whole process group, Ray's processes included, as
# Ctrl-C in a terminal does (SIGTERM takes the same path: tests/test_orchestrate.py).
SESSIONS = [
    ("kill -9", {"final": 1}, HOLD_AFTER_FINAL_ENV),
    ("kill -9", {"final": 4}, HOLD_AFTER_FINAL_ENV),
    ("SIGINT", {"final": 4, "mid-stage": True}, HOLD_AFTER_STAGE_ENV),
    ("wssweep stop", {"mid-stage": True}, HOLD_AFTER_STAGE_ENV),
    ("kill -9", {"mid-stage": True}, HOLD_AFTER_STAGE_ENV),
]


def test_every_way_a_driver_dies_then_resume_loses_and_repeats_nothing(tmp_path, ray_env):
    spec = tmp_path / "resume.yaml"
    spec.write_text(SPEC)
    run_dir = tmp_path / "r"
    holds = {env: tmp_path / env.lower() for env in (HOLD_AFTER_FINAL_ENV, HOLD_AFTER_STAGE_ENV)}
    env = {**ray_env, **{name: str(path) for name, path in holds.items()}}
    interrupted_mid_stage, held_after_final = set(), set()
    for session, (how, when, hold) in enumerate(SESSIONS):
        args = (("run", str(spec), "--name", "r", "--storage", str(tmp_path)) if session == 0
                else ("resume", str(run_dir)))
        for name, path in holds.items():
            if name == hold:
                path.touch()
            else:
                path.unlink(missing_ok=True)

        seen = len(read_starts(run_dir))
        finished_before = {p.parent.name for p in finals(run_dir)}

        def ready(when=when, seen=seen):
            # a start or replay of this session: fit() is running, its stop handler in place
            return (len(read_starts(run_dir)) > seen
                    and len(finals(run_dir)) >= when.get("final", 0)
                    and (not when.get("mid-stage") or mid_stage(run_dir)))

        driver = start(env, *args)
        try:
            wait_for(ready, f"{when} before {how}", driver)
            held = {u.name for u in mid_stage(run_dir)}
            tree = process_tree(driver.pid)
            if how == "kill -9":
                kill_group(driver.pid)  # the driver and the local Ray it started
                driver.communicate()
            elif how == "wssweep stop":  # from another shell
                asked = wssweep(env, "stop", str(run_dir), timeout=60)
                assert asked.returncode == 0, show(asked)
                out = finish(driver, timeout=120)
            else:
                kill_group(driver.pid, signal.SIGINT)
                out = finish(driver, timeout=120)
        finally:
            kill_group(driver.pid)
        # the trials left inside a stage once the driver is gone
        interrupted_mid_stage |= {u.name for u in mid_stage(run_dir)}
        if hold == HOLD_AFTER_FINAL_ENV:
            # every trial that finished in this session was held before its report: Tune's
            # snapshot still has it unfinished
            held_after_final |= {p.parent.name for p in finals(run_dir)} - finished_before
        # the sweep was stopped mid-way: not every trial had finished
        assert len(finals(run_dir)) < TRIALS
        if how == "wssweep stop":
            # a stop asked from another shell ends the sweep as Ctrl-C does, with status 0
            assert out.returncode == 0, show(out)
            assert "stopped by `wssweep stop`" in out.stderr, show(out)
        if how in ("SIGINT", "wssweep stop"):
            # Ctrl-C stops it cleanly: status 130, one line saying how to go on, no traceback
            assert out.returncode == (130 if how == "SIGINT" else 0), show(out)
            assert f"wssweep resume {run_dir}" in out.stderr, show(out)
            assert "Traceback" not in out.stderr, show(out)
            # results.csv and the map are written for what finished
            rows = read_results(run_dir / "results.csv")
            assert sum(r["status"] in ("completed", "diverged") for r in rows) >= when.get(
                "final", 0)
            assert (run_dir / "map" / "report.html").is_file()
            # and the trials held inside a stage keep their stage checkpoints
            assert held and held <= {u.name for u in mid_stage(run_dir)}, held
    for path in holds.values():
        path.unlink(missing_ok=True)
    # the run directory moves before its last session (another disk, storage mounted elsewhere):
    # the resume works where it now is, and writes nothing at the old path (once the killed
    # session's Ray workers, which outlive their driver for a moment, are gone)
    kill_tree(tree)
    moved = tmp_path / "moved" / run_dir.name
    moved.parent.mkdir()
    run_dir = run_dir.rename(moved)
    out = wssweep(ray_env, "resume", str(run_dir), timeout=300)
    # the last resume finishes the sweep cleanly
    assert out.returncode == 0, show(out)
    assert not (tmp_path / "r").exists()
    rows = check_finished_sweep(run_dir)
    starts = read_starts(run_dir)
    # trials held between their final record and its report were restored by Tune as
    # unfinished, found their final records and reported them without training
    assert held_after_final
    assert held_after_final <= {s["unit"] for s in starts if s["event"] == "replay"}
    # every trial stopped inside a stage continued after its last finished stage
    by_unit = {f"{r['setting_key']}-seed{r['seed']}": r for r in rows}
    assert interrupted_mid_stage
    assert all(int(by_unit[u]["resumed_stage"]) >= 1 for u in interrupted_mid_stage)
    assert all(int(by_unit[u]["restarts"]) >= 1 for u in interrupted_mid_stage)
