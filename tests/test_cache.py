"""The run's artifact cache: what one trial stored, another with the same key loads."""

import os
import threading
import time
from pathlib import Path

import torch

from wssweep.cache import ArtifactCache


def test_an_artifact_comes_back_as_it_was_stored(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    # nothing is there before a trial stores it
    assert cache.load("k") is None
    cache.save("k", {"model": {"w": torch.arange(3.0)}, "cold": [1, 2]})
    loaded = cache.load("k")
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["cold"] == [1, 2]


def test_a_second_save_replaces_the_first_whole(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.save("k", {"v": 1})
    cache.save("k", {"v": 2})
    # two trials that missed at once: the later rename wins, and no temp file is left behind
    assert cache.load("k") == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json", "k.pt"]


# --- one cold arm per seed: concurrent trials of a seed --------------------------------------

TIMEOUT_S = 120  # a hung wait fails the test instead of hanging the suite


def small_config(**warm):
    from wssweep.config import ExperimentConfig

    return ExperimentConfig.model_validate({
        "data": {"name": "digits", "train_size": 240, "test_size": 120},
        "model": {"name": "mlp", "width": 16},
        "protocol": {"kind": "online", "chunks": 3, "stop": {"max_epochs": 3}},
        "optim": {"name": "adam", "batch_size": 32}, "lr": 0.01, "warm": warm})


def in_thread(target) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        try:
            out["value"] = target()
        except BaseException as exc:  # the test thread re-raises it
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def joined(thread: threading.Thread, out: dict):
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "the trial did not finish"
    if "error" in out:
        raise out["error"]
    return out["value"]


def wait_until_blocked(path: Path, thread: threading.Thread, what: str) -> None:
    """Wait (a condition, not a fixed time) until ``thread`` waits for the lock on ``path``;
    fail if it ends first or after ``TIMEOUT_S``."""
    deadline = time.monotonic() + TIMEOUT_S
    while not blocked_on(path):
        assert time.monotonic() < deadline and thread.is_alive(), f"{what} did not wait"
        time.sleep(0.01)


def blocked_on(path: Path) -> bool:
    """Whether some process waits for a lock on ``path`` (Linux's /proc/locks marks it ->)."""
    if not path.exists():
        return False
    inode = f":{path.stat().st_ino} "
    return any("->" in line and inode in line for line in Path("/proc/locks").read_text()
               .splitlines())


# Not the science: wall times, and whether the baseline was trained here.
SECONDS = {"warm/seconds", "cold/seconds", "warm/stage_seconds", "cold/stage_seconds",
           "baseline_reused"}


def test_concurrent_trials_of_a_seed_train_its_cold_arm_once(tmp_path):
    from wssweep.science.experiment import run_trial

    cache = tmp_path / "cache"
    first, second = small_config(), small_config(intervention="shrink_perturb")
    alone = run_trial(second)  # the reference: no cache, trains everything itself
    second_started, second_warm = threading.Event(), threading.Event()
    events: dict[str, list] = {"first": [], "second": []}

    def second_progress(record):
        events["second"].append(record)
        if record.get("arm") == "warm" and record.get("stage") == 2:
            second_warm.set()

    def first_progress(record):
        events["first"].append(record)
        # The first trial trains the cold arm of stage 2: stage 1 is stored, the cold arm
        # claimed. Now the second trial of the seed starts, and must train its warm arm meanwhile.
        if record.get("arm") == "cold" and record.get("stage") == 2 and not second_started.is_set():
            second_started.set()
            threads["second"] = in_thread(lambda: run_trial(
                second, progress=second_progress, cache=ArtifactCache(cache)))
            assert second_warm.wait(TIMEOUT_S), "the second trial did not start its warm arm"

    threads = {"first": in_thread(lambda: run_trial(first, progress=first_progress,
                                                    cache=ArtifactCache(cache)))}
    a = joined(*threads["first"])
    assert second_started.is_set()
    b = joined(*threads["second"])
    # the first trial trained the cold arm; the second trained none of it, not even stage 1
    assert any(r.get("arm") == "cold" for r in events["first"])
    assert not any(r.get("arm") == "cold" or r.get("stage") == 1 for r in events["second"]
                   if r.get("event") == "epoch")
    # it waited for the cold arm and reports it as the first trained it
    assert b["cold/stage_seconds"] == a["cold/stage_seconds"]
    # and its metrics are what training everything alone gives
    assert {k: v for k, v in b.items() if k not in SECONDS} == {
        k: v for k, v in alone.items() if k not in SECONDS}


def test_a_trial_waiting_on_a_claimant_that_dies_trains_the_baseline_itself(tmp_path):
    from wssweep.science.experiment import STAGE1_SUFFIX, baseline_key, run_trial

    cfg = small_config()
    key = baseline_key(cfg)
    claimant = ArtifactCache(tmp_path)
    # a claimant of stage 1 and the cold arm that will store neither
    assert claimant.claim(key + STAGE1_SUFFIX) and claimant.claim(key)
    waiter = in_thread(lambda: run_trial(cfg, cache=ArtifactCache(tmp_path)))
    deadline = time.monotonic() + TIMEOUT_S
    while not blocked_on(tmp_path / f"{key}{STAGE1_SUFFIX}.lock"):
        assert time.monotonic() < deadline and waiter[0].is_alive(), "the trial did not wait"
        time.sleep(0.01)
    claimant.release_all()  # as when its process ends
    m = joined(*waiter)
    # it trained stage 1 and the cold arm itself, and stored them for the next trial
    assert {k: v for k, v in m.items() if k not in SECONDS} == {
        k: v for k, v in run_trial(cfg).items() if k not in SECONDS}
    assert ArtifactCache(tmp_path).load(key)["cold"][-1].test_acc == m["cold/test_acc"]
    # and it holds no claim any more: the next claimant gets both
    assert claimant.claim(key) and claimant.claim(key + STAGE1_SUFFIX)


# --- the store shared by the runs under one --storage ---------------------------------------


def stored(cache: ArtifactCache, key: str, size: int, last_used: float) -> None:
    cache.save(key, {"blob": torch.zeros(size // 4)}, about={"data": "digits", "seed": 0})
    os.utime(cache.path(key), (last_used, last_used))


def test_prune_drops_the_stale_then_the_least_recently_used_and_keeps_what_is_claimed(tmp_path):
    cache = ArtifactCache(tmp_path)
    now = 1_000_000.0
    for key, age_s in (("old", 9 * 86400), ("mid", 3600), ("new", 60)):
        stored(cache, key, 40_000, now - age_s)
    # least recently used first, with what each is
    assert [e.key for e in cache.entries()] == ["old", "mid", "new"]
    assert cache.entries()[0].about["data"] == "digits"
    # by age: only what was not used for a week
    assert [e.key for e in cache.prune(older_than_s=7 * 86400, now=now)] == ["old"]
    # a load is a use: "mid" becomes the most recently used
    assert cache.load("mid") is not None
    assert [e.key for e in cache.entries()] == ["new", "mid"]
    size = cache.entries()[0].size
    # by size: the least recently used go until the rest fits, but a claimed one is kept
    other = ArtifactCache(tmp_path)
    assert other.claim("new")
    assert [e.key for e in cache.prune(max_bytes=size, now=now)] == ["mid"]
    other.release("new")
    assert [e.key for e in cache.entries()] == ["new"]
    assert [e.key for e in cache.prune(max_bytes=0, now=now)] == ["new"]
    # a pruned artifact is simply missing: the next trial trains it again
    assert cache.load("new") is None and cache.load("mid") is None
    # and nothing of it is left, its sidecar included; only the (empty) lock files stay, since
    # a lock file deleted while another trial opens it would let two trials claim one baseline
    assert {p.suffix for p in tmp_path.iterdir()} == {".lock"}


def test_the_baseline_key_changes_with_the_code_of_a_custom_model(tmp_path, monkeypatch):
    import importlib
    import sys

    from wssweep.config import ExperimentConfig
    from wssweep.science.experiment import baseline_key, code_version

    module = tmp_path / "my_nets.py"
    module.write_text("def net(input_shape, num_classes):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    cfg = ExperimentConfig.model_validate({"model": {"name": "custom",
                                                     "factory": "my_nets:net"}})
    before = baseline_key(cfg)
    module.write_text("def net(input_shape, num_classes):\n    return 1\n")
    code_version.cache_clear()
    sys.modules.pop("my_nets", None)
    # the user's code is part of what determines the baseline
    assert baseline_key(cfg) != before
    # and so are the device type and the science's code (hashed with it)
    assert baseline_key(cfg, "cuda") != baseline_key(cfg)


def test_files_the_store_did_not_write_are_listed_or_left_but_never_crash_it(tmp_path):
    store = ArtifactCache(tmp_path)
    store.save("good", {"x": 1}, about={"seed": 0})
    (tmp_path / "folder.pt").mkdir()  # a folder named like an artifact
    (tmp_path / "odd.pt").write_bytes(b"?")
    (tmp_path / "odd.json").write_text('["not", "an", "object"]')  # a sidecar not ours
    (tmp_path / "locked.pt").write_bytes(b"?")
    (tmp_path / "locked.lock").mkdir()  # a lock that cannot be opened
    # ls lists every artifact file, an odd sidecar read as no description
    assert {e.key: e.about.get("seed") for e in store.entries()} == {
        "good": 0, "odd": None, "locked": None}
    # prune removes what it can claim and leaves the rest, with no half-done crash
    gone = store.prune(older_than_s=0, now=time.time() + 1)
    assert sorted(e.key for e in gone) == ["good", "odd"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "folder.pt", "locked.pt"]


def test_a_prune_size_beyond_any_float_is_bad_input():
    import pytest

    from wssweep.cli import SIZE_UNITS, parse_amount
    from wssweep.errors import InputError

    with pytest.raises(InputError, match="--max-size: expected a non-negative number"):
        parse_amount("1e300G", SIZE_UNITS, "--max-size", "500M")
