"""A group of trials trained as one fused model gives each trial what run_trial gives it alone.

Tolerances: in float64 (the ``float64`` fixture) every metric and progress record agrees with
run_trial's to 1e-8 relative (accuracies, being counts, exactly) and every step, epoch and stop
reason exactly. In float32 the batched kernels round differently, so an example near a decision
boundary can flip: accuracies agree within 2 points (one or two of the 120 test examples) and
the float32 cases below also agree exactly in steps, epochs and stop reasons (none sits on a
threshold); those are checked too, so a case that starts to differ says so. (On the CPU these
float32 cases agree to 1e-6 as well; the 2 points leave room for other kernels.)
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from tests.science.test_experiment import claimed_elsewhere, config
from tests.science.test_fused import float64  # noqa: F401  (the fixture)
from wssweep.cache import ArtifactCache
from wssweep.science import group as group_module
from wssweep.science.experiment import run_trial
from wssweep.science.group import fusable_configs, run_group

torch.set_num_threads(1)


def same(got: Any, want: Any, tol: float, where: str = "") -> None:
    """``got`` equals ``want``: floats within ``tol`` (relative in float64 runs, absolute
    points in float32 ones), everything else exactly."""
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for k in want:
            if "seconds" not in k:
                same(got[k], want[k], tol, f"{where}/{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, tol, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        if math.isnan(want):
            assert math.isnan(got), where
        else:
            assert got == pytest.approx(want, rel=tol, abs=tol), where
    else:
        assert got == want, where


def check(cfgs, tol: float, cache_dirs=None, records=None) -> list[dict]:
    """run_group(cfgs) against run_trial of each: metrics and every progress record (of the
    trials ``records`` lists, default all)."""
    group_logs: list[list[dict]] = [[] for _ in cfgs]
    trial_logs: list[list[dict]] = [[] for _ in cfgs]
    caches = [None, None] if cache_dirs is None else [ArtifactCache(d) for d in cache_dirs]
    got = run_group(cfgs, [log.append for log in group_logs], cache=caches[0])
    want = [run_trial(c, log.append, cache=caches[1])
            for c, log in zip(cfgs, trial_logs, strict=True)]
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        same(g, w, tol, f"trial {k}")
        if records is not None and k not in records:
            continue
        # the same records in the same order: events, arms, stages, step counters
        assert [(r["event"], r.get("arm"), r["stage"], r["step"], r["stages_done"])
                for r in group_logs[k]] == [
            (r["event"], r.get("arm"), r["stage"], r["step"], r["stages_done"])
            for r in trial_logs[k]], f"trial {k}"
        same(group_logs[k], trial_logs[k], tol, f"records of trial {k}")
    return got


def count_stacks(monkeypatch) -> list[int]:
    """From now on, the size of every stack ``run_group`` trains as one (in order)."""
    sizes: list[int] = []
    train_stage_group = group_module.train_stage_group

    def counting(members, **kw):
        sizes.append(len(members))
        return train_stage_group(members, **kw)

    monkeypatch.setattr(group_module, "train_stage_group", counting)
    return sizes


SETTINGS = {
    "seeds": [config(seed=s) for s in range(4)],
    "interventions": [
        config(), config(warm={"intervention": "shrink_perturb", "perturb": 0.1}, shrink=0.5),
        config(warm={"intervention": "dash"}), config(warm={"intervention": "reset_last_layer"}),
        config(warm={"intervention": "l2_init", "l2_coef": 0.01}),
        config(warm={"keep_optimizer": True}), config(warm={"keep_optimizer": False}, seed=1)],
    "rates_warmups": [
        config(lr=0.01), config(lr=0.03, warmup_steps=5),
        config(lr=0.02, warmup_steps=8, optim__schedule="cosine", optim__decay_steps=20, seed=1),
        config(optim__schedule="two_regime", optim__switch_step=6, optim__ratio=0.2, seed=2)],
    "batch": [config(protocol__kind="batch", seed=s) for s in range(2)]
    + [config(protocol__kind="batch", warm={"intervention": "dash"})],
    "active": [config(protocol__kind="active", seed=s) for s in range(2)]
    + [config(protocol__kind="active", warm={"intervention": "shrink_perturb"}, shrink=0.3)],
    "sgd": [config(optim__name="sgd", optim__momentum=0.9, lr=0.05, seed=s) for s in range(2)]
    + [config(optim__name="sgd", lr=0.1, optim__weight_decay=1e-3)],
    "gi_adam": [config(optim__name="gi_adam", lr=0.03, seed=s) for s in range(2)]
    + [config(optim__name="gi_adam", lr=0.03, warm={"keep_optimizer": True})],
    "meta_chosen": [config(meta_horizon=2, cold_at_chosen_lr=True, seed=s,
                           warm={"meta_candidates": 3}) for s in range(2)] + [config(seed=0)],
    # Two settings of one seed share stage 1 and each keeps its optimizer from it: neither
    # may train on the other's momentum buffers.
    "kept_optimizers": [config(optim__name="sgd", optim__momentum=0.9, lr=0.05, seed=0,
                               warm={"keep_optimizer": True}),
                        config(optim__name="sgd", optim__momentum=0.9, lr=0.05, seed=0,
                               warm={"keep_optimizer": True, "intervention": "dash"})],
    "catapult": [config(warmup_steps=5, optim__warmup_init="catapult", seed=s)
                 for s in range(2)] + [config(warmup_steps=5, seed=0)],
}


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_group_matches_run_trial_in_float64(name):
    got = check(SETTINGS[name], tol=1e-8)
    assert all(not m["diverged"] for m in got)


@pytest.mark.parametrize("name", ["seeds", "interventions", "active", "meta_chosen"])
def test_group_matches_run_trial_in_float32(name):
    check(SETTINGS[name], tol=2.0)


@pytest.mark.usefixtures("float64")
def test_a_group_with_a_cache_reuses_baselines_as_trials_in_a_row_do(tmp_path):
    cfgs = [config(seed=0), config(seed=0, warm={"intervention": "dash"}), config(seed=1)]
    # Trial 1 reuses the baseline trial 0 trains: run_trial finds it stored, and its records
    # show every cold stage from the start; in the group they come as the cold arm trains.
    got = check(cfgs, tol=1e-8, cache_dirs=[tmp_path / "group", tmp_path / "trials"],
                records=[0, 2])
    assert [m["baseline_reused"] for m in got] == [False, True, False]
    # a second group finds every baseline stored: it trains only the warm arms
    again = run_group(cfgs, cache=ArtifactCache(tmp_path / "group"))
    assert [m["baseline_reused"] for m in again] == [True, True, True]
    same([{k: v for k, v in m.items() if k != "baseline_reused"} for m in again],
         [{k: v for k, v in m.items() if k != "baseline_reused"} for m in got], 1e-8)


@pytest.mark.usefixtures("float64")
def test_a_stored_baseline_keeps_stage_1s_optimizer_state_as_stage_1_left_it(tmp_path):
    from wssweep.science.experiment import STAGE1_SUFFIX, baseline_key

    sgdm = {"optim__name": "sgd", "optim__momentum": 0.9, "lr": 0.05}
    cache = ArtifactCache(tmp_path)
    run_group([config(seed=0, warm={"keep_optimizer": True}, **sgdm)], cache=cache)
    key = baseline_key(config(seed=0, **sgdm), "cpu")
    first, full = cache.load(key + STAGE1_SUFFIX), cache.load(key)
    # the warm arm that trained on from stage 1 did not move the stored momentum
    stored = full["stage1"]["optimizer"]["state"]
    for a, b in zip(first["optimizer"]["state"].values(), stored.values(), strict=True):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    # so a later group that keeps its optimizer from the stored stage 1 trains what a trial
    # that trains its own stage 1 trains
    later = config(seed=0, warm={"keep_optimizer": True, "intervention": "dash"}, **sgdm)
    same(without(run_group([later], cache=cache), "baseline_reused"),
         without([run_trial(later)], "baseline_reused"), 1e-8)


def test_trials_of_a_seed_share_stage_1_and_the_cold_arm(monkeypatch):
    sizes = count_stacks(monkeypatch)
    cfgs = SETTINGS["interventions"]  # six of seed 0 and one of seed 1
    logs: list[list[dict]] = [[] for _ in cfgs]
    run_group(cfgs, [log.append for log in logs])
    # stage 1 once per seed; then the later stages of one cold arm per seed, one call a stage;
    # then every warm arm, in one call a stage
    assert sizes == [2, 2, 2, 7, 7]
    # each trial still sees the cold arm's epochs, as run_trial would (it trains its own)
    cold = [sum(r.get("arm") == "cold" for r in log) for log in logs]
    assert cold == [6] * 7  # two later stages of 3 epochs


@pytest.mark.usefixtures("float64")
def test_a_diverging_member_is_recorded_as_run_trial_records_it():
    cfgs = [config(optim__name="sgd", lr=0.5), config(optim__name="sgd", lr=0.5, seed=1),
            config(optim__name="sgd", lr=1e9, seed=2)]
    got = check(cfgs, tol=1e-8)
    assert [m["diverged"] for m in got] == [False, False, True]
    assert got[2]["warm/stop"] == "diverged"


def test_configs_that_cannot_share_a_model_shape_are_refused():
    cfgs = [config(), config(model={"name": "mlp", "width": 8})]
    assert not fusable_configs(cfgs)
    assert not fusable_configs([config(), config(optim__name="sgd")])
    with pytest.raises(ValueError, match="cannot run as one group"):
        run_group(cfgs)
    with pytest.raises(ValueError, match="progress callbacks"):
        run_group([config()], [None, None])


# --- a group's checkpoints, and cold arms another process trains ----------------------------


class Killed(Exception):
    """Stands for the process dying right after a checkpoint was written."""


class MemoryCheckpoint:
    """A ``GroupCheckpoint`` in memory (each save serialized, as the disk store's is) that can
    'kill' the group once it has saved a given stage."""

    def __init__(self, kill_after: int | None = None, kill_at_save: int | None = None) -> None:
        self.saved: bytes | None = None
        self.kill_after = kill_after  # stages done
        self.kill_at_save = kill_at_save  # the n-th save, counting from 1
        self.saves = 0

    def load(self):
        if self.saved is None:
            return None
        import io
        return torch.load(io.BytesIO(self.saved), weights_only=False)

    def save(self, states):
        import io
        buffer = io.BytesIO()
        torch.save(states, buffer)
        self.saved = buffer.getvalue()
        self.saves += 1
        if states[0]["stages_done"] == self.kill_after or self.saves == self.kill_at_save:
            self.kill_after = self.kill_at_save = None
            raise Killed


def without(metrics: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in keys and "seconds" not in k}
            for m in metrics]


@pytest.mark.parametrize("cfgs", [
    SETTINGS["seeds"][:3],
    [config(), config(warm={"intervention": "dash"}), config(seed=1, meta_horizon=2,
                                                             cold_at_chosen_lr=True)]],
    ids=["seeds", "settings of a seed"])
def test_an_interrupted_group_resumes_after_its_last_stage_as_if_never_stopped(cfgs):
    whole = [[] for _ in cfgs]
    want = run_group(cfgs, [log.append for log in whole])
    checkpoint = MemoryCheckpoint(kill_after=2)
    before = [[] for _ in cfgs]
    with pytest.raises(Killed):
        run_group(cfgs, [log.append for log in before], checkpoint=checkpoint)
    after = [[] for _ in cfgs]
    stages = []
    got = run_group(cfgs, [log.append for log in after], checkpoint=checkpoint,
                    on_stage=stages.append)
    # it trained only the last stage, and ended where the uninterrupted group did: on the CPU
    # the same numbers bit for bit
    assert stages == [3]
    assert [m["resumed_stage"] for m in got] == [2] * len(cfgs)
    assert without(got, "resumed_stage") == without(want, "resumed_stage")
    for k in range(len(cfgs)):
        # what came after the checkpoint is what the uninterrupted group sent from there on,
        # step counter included (a record sent before the 'kill' but after the checkpoint,
        # none here, would come again)
        assert after[k] and all(r["stage"] == 3 for r in after[k])
        tail = [r for r in whole[k] if r["stage"] == 3]
        assert without(after[k]) == without(tail)
        assert without(before[k]) == without(whole[k][: len(before[k])])


def test_a_group_stopped_among_its_cold_arms_resumes_with_the_cold_stages_it_trained(
        monkeypatch):
    cfgs = SETTINGS["seeds"][:2]
    whole = [[] for _ in cfgs]
    want = run_group(cfgs, [log.append for log in whole])
    # saves: after stage 1, after each of the cold arms' two later stages, after each warm one
    checkpoint = MemoryCheckpoint(kill_at_save=2)
    before = [[] for _ in cfgs]
    with pytest.raises(Killed):
        run_group(cfgs, [log.append for log in before], checkpoint=checkpoint)
    sizes = count_stacks(monkeypatch)
    after = [[] for _ in cfgs]
    got = run_group(cfgs, [log.append for log in after], checkpoint=checkpoint)
    # the cold arms' last stage, then the warm arms' two later stages: nothing trained twice
    assert sizes == [2, 2, 2]
    assert [m["resumed_stage"] for m in got] == [1, 1]
    assert without(got, "resumed_stage") == without(want, "resumed_stage")
    for k in range(len(cfgs)):
        # the records are the uninterrupted group's, the cold arms' epochs included
        assert without(before[k] + after[k]) == without(whole[k])


def test_a_group_stores_its_cold_arms_before_its_warm_arms_train_on(tmp_path):
    from wssweep.science.experiment import baseline_key

    cfgs = SETTINGS["seeds"][:2]
    cache = ArtifactCache(tmp_path)
    stored = {}

    def on_stage(n: int) -> None:
        stored[n] = [cache.load(baseline_key(c)) is not None for c in cfgs]

    got = run_group(cfgs, cache=cache, on_stage=on_stage)
    # another group waiting on these cold arms has them before this group's warm arms' 2nd
    # stage is over: it waits for cold arms, not for warm arms it does not need
    assert stored == {1: [False, False], 2: [True, True], 3: [True, True]}
    assert [cache.load(baseline_key(c))["cold"][-1].test_acc for c in cfgs] == [
        m["cold/test_acc"] for m in got]


def test_checkpoints_of_another_group_or_layout_are_not_resumed():
    cfgs = SETTINGS["seeds"][:2]
    checkpoint = MemoryCheckpoint(kill_after=2)
    with pytest.raises(Killed):
        run_group(cfgs, checkpoint=checkpoint)
    # other members (another seed): it starts over
    got = run_group([cfgs[0], config(seed=7)], checkpoint=checkpoint)
    assert [m["resumed_stage"] for m in got] == [0, 0]


def waiting_on_a_claimant(tmp_path, cfgs, logs=None, **kwargs):
    """``run_group(cfgs)`` in a thread, on a shared cache where another process has stored
    ``cfgs[0]``'s stage 1 (as run_trial stores it at once) and still holds the claim on its cold
    arm; returns (the claimant, the key, the finished artifact, the thread) once the group waits
    on that claim."""
    from tests.test_cache import in_thread, wait_until_blocked

    claimant, key, finished, _ = claimed_elsewhere(tmp_path, cfgs[0])
    progress = None if logs is None else [log.append for log in logs]
    group = in_thread(lambda: run_group(cfgs, progress, cache=ArtifactCache(tmp_path / "shared"),
                                        **kwargs))
    wait_until_blocked(tmp_path / "shared" / f"{key}.lock", group[0], "the group")
    return claimant, key, finished, group


@pytest.mark.parametrize("claim_cold_arms", [True, False])
def test_a_group_trains_its_warm_arms_while_another_process_trains_the_cold_arm(
        tmp_path, claim_cold_arms):
    from tests.test_cache import joined

    cfgs = [config(seed=0), config(seed=1)]
    alone = run_group(cfgs)
    logs = [[], []]
    claimant, key, finished, group = waiting_on_a_claimant(tmp_path, cfgs, logs,
                                                           claim_cold_arms=claim_cold_arms)
    # it trained every stage of both warm arms (and, claiming, seed 1's cold arm) before waiting
    assert max(r["stages_done"] for r in logs[0]) == 3
    assert not any(r.get("arm") == "cold" for r in logs[0] if r["event"] == "epoch")
    claimant.save(key, finished)
    claimant.release(key)
    got = joined(*group)
    # seed 1's cold arm, which nobody else claimed, it trained itself either way
    assert [m["baseline_reused"] for m in got] == [True, False]
    assert without(got, "baseline_reused") == without(alone, "baseline_reused")


def test_a_group_whose_cold_arm_claimant_dies_trains_the_cold_arm_itself(tmp_path):
    from tests.test_cache import joined

    cfgs = [config(seed=0), config(seed=0, warm={"intervention": "dash"})]
    alone = run_group(cfgs)
    claimant, key, _, group = waiting_on_a_claimant(tmp_path, cfgs)
    claimant.release_all()  # as when its process ends, with nothing stored
    got = joined(*group)
    assert [m["baseline_reused"] for m in got] == [False, True]
    assert without(got, "baseline_reused") == without(alone, "baseline_reused")
    assert ArtifactCache(tmp_path / "shared").load(key)["cold"][-1].test_acc == got[0][
        "cold/test_acc"]


# --- a group that leaves its cold arms to the group listed first (claim_cold_arms=False) -----


def by_arm(log: list[dict]) -> dict[str, list[dict]]:
    """A member's records, per arm, in the order it sent them (without wall-clock fields and
    counters, which depend on when they were sent)."""
    out: dict[str, list[dict]] = {}
    for r in without(log):
        out.setdefault(r.get("arm", r["event"]), []).append(
            {k: v for k, v in r.items() if k not in ("step", "stages_done")})
    return out


def test_a_group_that_does_not_claim_cold_arms_trains_those_nobody_claimed_at_its_end(
        tmp_path):
    from wssweep.science.experiment import baseline_key

    cfgs = SETTINGS["seeds"][:2]
    eager_logs = [[] for _ in cfgs]
    eager = run_group(cfgs, [log.append for log in eager_logs],
                      cache=ArtifactCache(tmp_path / "eager"))
    cache = ArtifactCache(tmp_path / "lazy")
    stored = {}
    lazy_logs = [[] for _ in cfgs]
    lazy = run_group(cfgs, [log.append for log in lazy_logs], cache=cache,
                     claim_cold_arms=False,
                     on_stage=lambda n: stored.setdefault(n, [cache.load(baseline_key(c))
                                                             is not None for c in cfgs]))
    # its warm arms' stages came first and nobody else claimed the cold arms: it trained and
    # stored them at its end
    assert stored == {1: [False, False], 2: [False, False], 3: [False, False]}
    assert all(cache.load(baseline_key(c)) is not None for c in cfgs)
    assert [m["baseline_reused"] for m in lazy] == [False, False]
    # the same numbers as the group that trained them first (each stack holds the same arms),
    # and the same records of each arm
    assert without(lazy) == without(eager)
    for got, want in zip(lazy_logs, eager_logs, strict=True):
        assert by_arm(got)["cold"] == by_arm(want)["cold"]
        assert by_arm(got)["warm"] == by_arm(want)["warm"]


def test_a_group_stopped_among_the_cold_arms_it_claimed_at_its_end_resumes_them(
        tmp_path, monkeypatch):
    from wssweep.science.experiment import baseline_key

    cfgs = SETTINGS["seeds"][:2]
    whole = [[] for _ in cfgs]
    want = run_group(cfgs, [log.append for log in whole], cache=ArtifactCache(tmp_path / "a"),
                     claim_cold_arms=False)
    # saves: after stage 1, after each warm later stage (2), after the first cold one: stopped
    checkpoint = MemoryCheckpoint(kill_at_save=4)
    before = [[] for _ in cfgs]
    with pytest.raises(Killed):  # its claims go with it, as with a process that dies
        run_group(cfgs, [log.append for log in before], cache=ArtifactCache(tmp_path / "b"),
                  checkpoint=checkpoint, claim_cold_arms=False)
    sizes = count_stacks(monkeypatch)
    after = [[] for _ in cfgs]
    cache = ArtifactCache(tmp_path / "b")
    got = run_group(cfgs, [log.append for log in after], cache=cache, checkpoint=checkpoint,
                    claim_cold_arms=False)
    # it took its claims again and trained only the cold arms' last stage, then stored them
    assert sizes == [2]
    assert [m["resumed_stage"] for m in got] == [3, 3]
    assert without(got, "resumed_stage") == without(want, "resumed_stage")
    for k, cfg in enumerate(cfgs):
        # the cold arms' epochs, sent once they were all trained, as the uninterrupted group
        assert {(r["event"], r.get("arm")) for r in after[k]} == {("epoch", "cold")}
        assert without(before[k] + after[k]) == without(whole[k])
        assert cache.load(baseline_key(cfg))["cold"][-1].test_acc == got[k]["cold/test_acc"]


def test_a_waiting_group_reports_a_cold_arm_stored_meanwhile_from_its_next_stage_on(tmp_path):
    cfgs = [config(seed=0), config(seed=0, warm={"intervention": "dash"})]
    alone = run_group(cfgs)
    # another process has stored stage 1 and holds the claim on the cold arm
    claimant, key, finished, _ = claimed_elsewhere(tmp_path, cfgs[0])

    def on_stage(n: int) -> None:
        if n == 2:  # it stores the cold arm while the group trains its warm arms' last stage
            claimant.save(key, finished)
            claimant.release(key)

    logs = [[], []]
    got = run_group(cfgs, [log.append for log in logs], cache=ArtifactCache(tmp_path / "shared"),
                    claim_cold_arms=False, on_stage=on_stage)
    cold = [s.test_acc for s in finished["cold"]]
    for log in logs:
        stages = {r["stage"]: r for r in log if r["event"] == "stage"}
        # stage 2's record came before the cold arm was stored: no cold accuracy, no gap;
        # stage 3's after: the stored cold arm's, and the gap from it
        assert stages[2]["cold/test_acc"] is None and stages[2]["gap"] is None
        assert stages[3]["cold/test_acc"] == cold[2]
        assert stages[3]["gap"] == pytest.approx(cold[2] - stages[3]["warm/test_acc"])
    # and the trial's numbers are those of the group that had the cold arm all along
    assert [m["baseline_reused"] for m in got] == [True, True]
    assert without(got, "baseline_reused") == without(alone, "baseline_reused")


def test_a_group_under_early_termination_waits_for_a_cold_arm_being_trained_before_a_stage(
        tmp_path):
    from tests.test_cache import joined

    cfgs = [config(seed=0), config(seed=0, warm={"intervention": "dash"})]
    alone = run_group(cfgs)
    logs = [[], []]
    claimant, key, finished, group = waiting_on_a_claimant(tmp_path, cfgs, logs,
                                                           claim_cold_arms=False,
                                                           wait_for_cold=True)
    # it waits after its warm arms' first stage, before that stage's record
    assert [max(r["stages_done"] for r in log) for log in logs] == [1, 1]
    claimant.save(key, finished)
    claimant.release(key)
    got = joined(*group)
    cold = [s.test_acc for s in finished["cold"]]
    for log in logs:
        # so every stage's record carries the cold arm's accuracy and the gap
        stages = [r for r in log if r["event"] == "stage"]
        assert [r["cold/test_acc"] for r in stages] == cold
        assert all(r["gap"] is not None for r in stages)
    assert without(got, "baseline_reused") == without(alone, "baseline_reused")
