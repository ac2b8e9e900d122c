"""Mid-trial resume: a trial stopped after any stage continues there, bit-identical on the CPU."""

import pytest

from tests.science.test_experiment import SMALL as TRIAL
from wssweep.cache import ArtifactCache
from wssweep.checkpoint import TrialStore, clear_stage_checkpoints, unit_name
from wssweep.config import ExperimentConfig
from wssweep.science.experiment import run_trial

# The science tests' small trial, with a 4th stage so that a resume can land after stage 1, 2 or 3.
SMALL = {**TRIAL, "protocol": {**TRIAL["protocol"], "chunks": 4}}

# Each resumes a different piece of state: the optimizer carried across stages, the noise of
# shrink-and-perturb, the active learner's pool (picked by each arm's own model), the L2-init
# anchor, DASH, the meta-horizon's rate and the third arm.
VARIANTS = {
    "plain_sgd": {"optim": {"name": "sgd", "batch_size": 32, "momentum": 0.9}},
    "keep_adam_state_gaussian_sp": {"warm": {"intervention": "shrink_perturb", "noise": "gaussian",
                                             "perturb": 0.01, "keep_optimizer": True},
                                    "shrink": 0.5},
    "active_l2_init": {"protocol": {"kind": "active", "chunks": 4, "stop": {"max_epochs": 3}},
                       "warm": {"intervention": "l2_init"}},
    "dash": {"warm": {"intervention": "dash"}},
    "meta_horizon_cold_chosen": {"meta_horizon": 5, "cold_at_chosen_lr": True,
                                 "warm": {"meta_candidates": 3}},
}


class Interrupt(Exception):
    """Stands in for the process dying right after a stage was checkpointed."""


def config(**changes) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**SMALL, **changes})


def stop_after(stages_done: int):
    def progress(record: dict) -> None:
        if record["event"] == "stage" and record["stages_done"] == stages_done:
            raise Interrupt
    return progress


def same_metrics(a: dict, b: dict) -> dict:
    """The metrics where ``a`` and ``b`` differ, wall-clock seconds aside."""
    keys = (set(a) | set(b)) - {"resumed_stage"}
    return {k: (a.get(k), b.get(k)) for k in sorted(keys)
            if "seconds" not in k and a.get(k) != b.get(k)}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("interrupt_after", [1, 2, 3])
def test_resumed_trial_is_bit_identical_to_an_uninterrupted_one(variant, interrupt_after,
                                                                 tmp_path):
    cfg = config(**VARIANTS[variant])
    reference = run_trial(cfg)
    store = TrialStore(tmp_path, unit_name("k", 0))
    with pytest.raises(Interrupt):
        run_trial(cfg, progress=stop_after(interrupt_after), checkpoint=store)
    # the checkpoint holds the interrupted stage
    assert store.load()["stages_done"] == interrupt_after
    stages_seen = []
    resumed = run_trial(cfg, checkpoint=store, progress=lambda r: stages_seen.append(
        r["stages_done"]) if r["event"] == "stage" else None)
    # it continued after that stage: the earlier stages were not trained again
    assert resumed["resumed_stage"] == interrupt_after
    assert stages_seen == list(range(interrupt_after + 1, 5))
    # and every metric (wall-clock seconds aside) equals the uninterrupted run's, bit for bit
    assert same_metrics(reference, resumed) == {}
    assert reference["resumed_stage"] == 0


def test_resume_of_a_trial_that_used_the_shared_baseline(tmp_path):
    cfg = config(warm={"intervention": "shrink_perturb"})
    cache = ArtifactCache(tmp_path / "cache")
    run_trial(config(), cache=cache)  # another setting of the seed stores stage 1 and cold
    reference = run_trial(cfg, cache=cache)
    store = TrialStore(tmp_path, unit_name("sp", 0))
    with pytest.raises(Interrupt):
        run_trial(cfg, progress=stop_after(2), cache=cache, checkpoint=store)
    resumed = run_trial(cfg, cache=cache, checkpoint=store)
    # the resumed trial still takes its cold arm from the cache, and matches
    assert resumed["resumed_stage"] == 2
    assert same_metrics(reference, resumed) == {}


def test_a_checkpoint_of_another_experiment_is_not_resumed(tmp_path):
    store = TrialStore(tmp_path, unit_name("k", 0))
    with pytest.raises(Interrupt):
        run_trial(config(lr=0.003), progress=stop_after(2), checkpoint=store)
    metrics = run_trial(config(), checkpoint=store)
    # a state saved under other settings is ignored: the trial starts from scratch
    assert metrics["resumed_stage"] == 0
    assert same_metrics(run_trial(config()), metrics) == {}


def test_final_record_drops_the_stage_checkpoint(tmp_path):
    store = TrialStore(tmp_path, unit_name("k", 3))
    store.save({"stages_done": 1})
    other = TrialStore(tmp_path, unit_name("j", 3))
    other.save({"stages_done": 2})
    store.write_final({"gap": float("nan"), "status": "diverged"})
    # finishing keeps the metrics (NaN survives the round trip) and deletes the stage state
    assert not store.stage_path.exists() and store.final()["status"] == "diverged"
    assert store.final()["gap"] != store.final()["gap"]
    # at the end of a sweep the remaining checkpoints go too
    assert clear_stage_checkpoints(tmp_path) == 1 and other.load() is None


# --- a group's checkpoints: every member at the same stage, whenever the group was killed ---


def group_of(tmp_path, n=3):
    from wssweep.checkpoint import GroupStore

    return GroupStore([TrialStore(tmp_path, unit_name("k", s)) for s in range(n)])


def test_a_group_killed_while_writing_its_next_stage_comes_back_at_the_last_one(tmp_path,
                                                                               monkeypatch):
    from wssweep import checkpoint

    group = group_of(tmp_path)
    group.save([{"stages_done": 1, "m": k} for k in range(3)])
    writes = []
    real = checkpoint.atomic_write

    def dying(path, *args, **kwargs):
        writes.append(path.name)
        if len(writes) == 2:  # the second member's new state: the process dies here
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", dying)
    with pytest.raises(KeyboardInterrupt):
        group.save([{"stages_done": 2, "m": k} for k in range(3)])
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    assert group.stores[0].next_path.exists()  # the first member's new state was written
    # every member is back at stage 1, and the half-done stage is gone
    assert [(s["stages_done"], s["m"]) for s in group.load()] == [(1, 0), (1, 1), (1, 2)]
    assert not any(store.next_path.exists() for store in group.stores)


def test_a_group_killed_while_moving_its_next_stage_in_finishes_the_move(tmp_path):
    group = group_of(tmp_path)
    group.save([{"stages_done": 1} for _ in range(3)])
    # as a save that died after writing every new state and moving the first one in
    import torch
    for store in group.stores:
        torch.save({"stages_done": 2}, store.next_path)
    group.stores[0].next_path.replace(group.stores[0].stage_path)
    assert [s["stages_done"] for s in group.load()] == [2, 2, 2]
    assert not any(store.next_path.exists() for store in group.stores)
    assert all(store.load()["stages_done"] == 2 for store in group.stores)


def test_a_group_killed_before_its_first_stage_starts_over(tmp_path):
    import torch

    group = group_of(tmp_path)
    assert group.load() is None
    group.stores[0].dir.mkdir(parents=True)
    torch.save({"stages_done": 1}, group.stores[0].next_path)  # one member written, then killed
    assert group.load() is None and not group.stores[0].next_path.exists()
