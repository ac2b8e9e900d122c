"""Many trials trained as one fused group: ``run_group(cfgs)[k]`` is ``run_trial(cfgs[k])``.

The trials of a group share the shapes of their models and stages (``fusable_configs``), so each
stage of all of them trains as one batched model (``fused.train_stage_group``): stage 1 once per
distinct baseline (trials whose configs differ only in warm-arm settings share it, and their cold
arm); then every later stage of the cold arms the group trains, stored as soon as they are done;
then, at every later stage, every live warm arm and every cold start at the chosen rate in one
call. The cold arms come first so that other groups waiting on them wait for cold arms only, not
for this group's warm arms too; and since a cold arm is stacked only with cold arms, and a warm
arm only with its group's warm arms, no member's rounding depends on which group happened to
claim a baseline. What precedes a stage's training (the active protocol's pick, the
intervention, the meta-horizon's rate pick, the catapult search) runs per trial, as
``run_trial`` runs it. Models that cannot be fused (BatchNorm, dropout) train one by one.

Each trial's metrics and progress records are ``run_trial``'s, wall-clock seconds and float
rounding aside (the batched kernels sum in another order: equal to about 1e-8 in float64; in
float32 an accuracy, and so a stop, can differ now and then). Epoch records come after their
stage's fused training, in ``run_trial``'s order (warm, cold, cold at the chosen rate).

Example:
    >>> from wssweep.config import ExperimentConfig
    >>> cfgs = [ExperimentConfig.model_validate({
    ...     "data": {"name": "digits", "train_size": 200}, "model": {"name": "logreg"},
    ...     "protocol": {"kind": "batch", "stop": {"max_epochs": 2}}, "lr": 0.1, "seed": seed})
    ...     for seed in (0, 1)]
    >>> fusable_configs(cfgs), [m["warm/stage_epochs"] for m in run_group(cfgs)]
    (True, [[2, 2], [2, 2]])
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from wssweep.science.data import Dataset
from wssweep.science.experiment import (
    CHECKPOINT_VERSION,
    COLD_CHOSEN,
    STAGE1_SUFFIX,
    Arm,
    Baseline,
    Prepared,
    Reporter,
    Trial,
    arm_state,
    baseline_about,
    baseline_key,
    find_baseline,
    init_seed_of,
    load_experiment_data,
    load_stage1,
    new_trial,
    prepare_fresh,
    prepare_warm,
    resolve_device,
    restore_arm,
    rng_state,
    set_rng_state,
    stage1_state,
    stage_record,
    start_arms,
    take_stored_cold,
    trial_metrics,
)
from wssweep.science.fused import fusable, train_stage_group
from wssweep.science.train import StageResult

if TYPE_CHECKING:
    from wssweep.cache import ArtifactCache
    from wssweep.config import ExperimentConfig

__all__ = ["GroupCheckpoint", "fusable_configs", "run_group"]

Events = list[tuple[int, float]]  # (epoch, train accuracy) of one arm's stage, as trained


def fusable_configs(cfgs: Sequence[ExperimentConfig]) -> bool:
    """Whether ``cfgs`` can run as one group: network experiments with the same data, model,
    optimizer type, batch size, protocol (kind, chunks, fraction, validation share) and device.
    Seeds, rates, warmups, schedules, optimizer settings, stop rules and warm settings may differ.

    Example:
        >>> from wssweep.config import ExperimentConfig
        >>> a = ExperimentConfig.model_validate({"seed": 0})
        >>> fusable_configs([a, a.model_copy(update={"seed": 1, "lr": 0.5})]), fusable_configs(
        ...     [a, ExperimentConfig.model_validate({"model": {"width": 8}})])
        (True, False)
    """
    signatures = {c.fusion_signature() for c in cfgs}
    return bool(cfgs) and None not in signatures and len(signatures) == 1


class GroupCheckpoint(Protocol):
    """Where a group keeps its members' states between stages (``wssweep.checkpoint.
    GroupStore`` on disk): ``save`` persists one state per member, all or none, before it
    returns; ``load`` gives the last saved list back (aligned with the group's configs), or
    ``None`` when the group has not finished a stage."""

    def load(self) -> list[dict[str, Any]] | None: ...

    def save(self, states: list[dict[str, Any]]) -> None: ...


@dataclass
class _Base:
    """Stage 1 and the cold arm of one baseline key, shared by the group's trials of that key."""

    key: str
    trial: Trial  # its first trial's: the key fixes everything stage 1 and the cold arm read
    found: Baseline  # found.trains_cold: this group trains the cold arm
    stage1: dict[str, Any] | None = None
    cold: Arm | None = None
    stage1_events: Events = field(default_factory=list)
    cold_events: dict[int, Events] = field(default_factory=dict)  # stage -> epochs, as trained
    late: bool = False  # its cold arm was claimed at the group's end (``_finish_pending``)

    @property
    def pending(self) -> bool:
        """The cold arm is another process's to train, and not stored yet."""
        return not self.found.trains_cold and len(self.cold.stages) < self.trial.n_stages


@dataclass
class _Member:
    """One trial of the group."""

    trial: Trial
    base: _Base
    report: Reporter
    trains_cold: bool  # as run_trial would: it trains the cold arm (not reused from the cache)
    emits_stage1: bool  # as run_trial would: it trains stage 1 (not loaded from the cache)
    warm: Arm | None = None
    chosen: Arm | None = None
    init_params: dict[str, torch.Tensor] | None = None
    done: bool = False  # its warm arm diverged and its cold arm is over: run_trial stops here

    def state(self, stages_done: int) -> dict[str, Any]:
        """``run_trial``'s stage checkpoint of this member, plus what the group shares."""
        base = self.base
        return {"version": CHECKPOINT_VERSION, "group": True, "baseline_key": base.key,
                "stages_done": stages_done, "step": self.report.step, "done": self.done,
                "trains_cold": self.trains_cold, "base_trains_cold": base.found.trains_cold,
                "base_late": base.late,
                "stage1": base.stage1, "warm": arm_state(self.warm),
                "cold": arm_state(base.cold), "cold_events": base.cold_events,
                "chosen": arm_state(self.chosen),
                "init_params": self.init_params, "rng": rng_state()}


def _train(jobs: Sequence[Prepared]) -> list[StageResult]:
    """Train the stages of ``jobs`` as one fused group where their models allow it."""
    members = [j.member for j in jobs]
    if len(jobs) > 1 and fusable([m.model for m in members]) and len(
            {type(m.optimizer) for m in members}) == 1:
        return [j.finish(r) for j, r in zip(jobs, train_stage_group(members), strict=True)]
    return [j.train() for j in jobs]


def _recorder(events: dict[tuple[str, int], Events], arm: str,
              owner: int) -> Callable[[int, float], None]:
    """An ``on_epoch`` that keeps the epochs of ``owner``'s ``arm`` for ``_replay``."""
    log = events.setdefault((arm, owner), [])
    return lambda epoch, acc: log.append((epoch, acc))


def _replay(report: Reporter, arm: str, stage: int, events: Events) -> None:
    hook = report.epoch_hook(arm, stage)
    for epoch, acc in events:
        hook(epoch, acc)


def run_group(
    cfgs: Sequence[ExperimentConfig],
    progress: Sequence[Callable[[dict[str, Any]], None] | None] | None = None,
    cache: ArtifactCache | None = None,
    checkpoint: GroupCheckpoint | None = None,
    on_stage: Callable[[int], None] | None = None,
    claim_cold_arms: bool = True,
    wait_for_cold: bool = False,
) -> list[dict[str, Any]]:
    """Run the trials of ``cfgs`` (``fusable_configs``) as one group; element k is
    ``run_trial(cfgs[k], progress[k], cache)``'s metrics, and ``progress[k]`` receives the records
    ``run_trial`` would send it.

    ``cache``, if given, holds stage 1 and the cold arm of each baseline key, as for
    ``run_trial``: a key stored there is loaded, not trained; the group's first trial of a key
    not stored trains it (``baseline_reused`` false) and the others reuse it, as trials run one
    after another with that cache would (their metrics are the same; the progress records of a
    trial that reuses a baseline trained in this group show its cold stages as they are trained,
    where ``run_trial`` would show them all from the start). A key whose stage 1 another process
    is training is waited for before the group starts (keys are claimed in sorted order, so
    groups waiting on each other never deadlock); a key whose cold arm another process trains
    is waited for at the end, as ``run_trial`` waits, and trained here if that process died.
    With ``claim_cold_arms`` false the group claims no cold arm at its start: it trains its warm
    arms first and then, at the end, the cold arms nobody else has claimed meanwhile (so the
    group of a round that a sweep lists first trains the round's cold arms, not whichever group
    happens to look first: ``wssweep.space.fused_trials``). A cold arm another process stores
    meanwhile is taken after the stage it was stored in; with ``wait_for_cold`` the group waits
    there while another process trains it, so every stage record carries the gap (early
    termination compares stage records; those nobody trains are still left for the end).

    ``checkpoint``, if given, receives every member's state after each finished stage, before
    that stage's records are sent; a group whose checkpoint holds states continues after that
    stage (``resumed_stage`` in the metrics). ``on_stage(n)``, if given, is called once the
    group's n-th stage is recorded and reported for every member. The group runs on the largest
    ``threads`` asked.

    Raises:
        ValueError: for configs that cannot run as one group (``fusable_configs``), or a
            ``progress`` of another length than ``cfgs``.
    """
    if not fusable_configs(cfgs):
        raise ValueError("these configs cannot run as one group: they differ in data, model, "
                         "optimizer type, batch size, protocol or device (see fusable_configs)")
    progress = [None] * len(cfgs) if progress is None else list(progress)
    if len(progress) != len(cfgs):
        raise ValueError(f"{len(progress)} progress callbacks for {len(cfgs)} configs")
    try:
        return _run(cfgs, progress, cache, checkpoint, on_stage or (lambda n: None),
                    claim_cold_arms, wait_for_cold)
    finally:
        if cache is not None:
            cache.release_all()  # a group that raised gives up its claims too


def _resumable(states: list[dict[str, Any]] | None, keys: list[str]) -> bool:
    """Whether ``states`` are one stage of this group (this layout, these baselines)."""
    return (states is not None and len(states) == len(keys)
            and all(s is not None and s.get("version") == CHECKPOINT_VERSION and s.get("group")
                    and s.get("baseline_key") == k for s, k in zip(states, keys, strict=True))
            and len({s["stages_done"] for s in states}) == 1)


def _run(cfgs: Sequence[ExperimentConfig],
         progress: Sequence[Callable[[dict[str, Any]], None] | None],
         cache: ArtifactCache | None, checkpoint: GroupCheckpoint | None,
         on_stage: Callable[[int], None], claim_cold_arms: bool,
         wait_for_cold: bool) -> list[dict[str, Any]]:
    torch.set_num_threads(max(c.threads for c in cfgs))
    device = resolve_device(cfgs[0].device)
    loaded: dict[str, Dataset] = {}
    trials = []
    for cfg in cfgs:
        data_key = json.dumps(cfg.data.model_dump(), sort_keys=True, default=str)
        if data_key not in loaded:
            loaded[data_key] = load_experiment_data(cfg, device)
        trials.append(new_trial(cfg, loaded[data_key], device))
    keys = [baseline_key(cfg, device.type) for cfg in cfgs]
    states = checkpoint.load() if checkpoint is not None else None
    if _resumable(states, keys):
        members, bases = _restore(trials, keys, states, progress, cache)
        resumed_stage = start_stage = states[0]["stages_done"]
    else:
        members, bases = _start(trials, keys, progress, cache, claim_cold_arms)
        resumed_stage, start_stage = 0, 1
        _record_stage(members, 0, checkpoint, on_stage)
    _train_cold_arms(members, bases, cache, checkpoint, start_stage)

    for stage in range(start_stage, trials[0].n_stages):
        events: dict[tuple[str, int], Events] = {}
        hook = functools.partial(_recorder, events)
        warm = {i: prepare_warm(m.trial, m.warm, stage, m.init_params, hook("warm", i))
                for i, m in enumerate(members) if not m.done and not m.warm.diverged}
        chosen = {i: prepare_fresh(m.trial, m.chosen, stage, hook(COLD_CHOSEN, i),
                                   lr=warm[i].lr)
                  for i, m in enumerate(members)
                  if m.chosen is not None and not m.chosen.diverged and i in warm}
        results = iter(_train([*warm.values(), *chosen.values()]))
        for i, job in warm.items():
            members[i].warm.stages.append(next(results))
            members[i].warm.optimizer = job.member.optimizer
        for i in chosen:
            members[i].chosen.stages.append(next(results))
        _load_stored(bases.values(), cache, wait_for_cold)
        live = []
        for i, m in enumerate(members):
            if m.done:
                continue
            _replay(m.report, "warm", stage, events.get(("warm", i), []))
            if m.trains_cold:
                _replay(m.report, "cold", stage, m.base.cold_events.get(stage, []))
            _replay(m.report, COLD_CHOSEN, stage, events.get((COLD_CHOSEN, i), []))
            if m.warm.diverged and (m.base.cold.diverged or m.base.pending):
                m.done = True
                continue
            m.report.stages_done = stage + 1
            live.append(m)
        _record_stage(members, stage, checkpoint, on_stage, live)

    _finish_pending(members, bases, cache, checkpoint)
    return [trial_metrics(m.trial, m.warm, m.base.cold, m.chosen,
                          resumed_stage=resumed_stage, trains_cold=m.trains_cold) for m in members]


def _record_stage(members: list[_Member], stage: int, checkpoint: GroupCheckpoint | None,
                  on_stage: Callable[[int], None], live: list[_Member] | None = None) -> None:
    """After ``stage``: the checkpoint, then each live member's stage record, then ``on_stage``
    (``run_trial``'s order: a reported stage is always one a restart finds)."""
    if checkpoint is not None:
        checkpoint.save([m.state(stage + 1) for m in members])
    for m in members if live is None else live:
        m.report.emit(stage_record(m.warm, m.base.cold, stage))
    on_stage(stage + 1)


def _train_colds(bases: list[_Base], after_stage: Callable[[], None] | None = None) -> None:
    """Every stage ``bases``' cold arms have left, as one stack a stage (cold arms only, so a
    cold arm's rounding never depends on the warm arms of whichever group trains it); each
    stage's epochs go to ``cold_events`` for the members to replay; ``after_stage``, if given,
    is called once each stage is trained."""
    for stage in range(1, bases[0].trial.n_stages if bases else 0):
        todo = [b for b in bases if len(b.cold.stages) == stage and not b.cold.diverged]
        if not todo:
            continue
        events: dict[tuple[str, int], Events] = {}
        jobs = [prepare_fresh(b.trial, b.cold, stage, _recorder(events, "cold", id(b)))
                for b in todo]
        for b, result in zip(todo, _train(jobs), strict=True):
            b.cold.stages.append(result)
            b.cold_events[stage] = events.get(("cold", id(b)), [])
        if after_stage is not None:
            after_stage()


def _load_stored(bases: Iterable[_Base], cache: ArtifactCache | None, wait: bool) -> None:
    """The cold arms another process has stored since this group started (``take_stored_cold``)."""
    for b in bases:
        if b.pending:
            take_stored_cold(cache, b.key, b.cold, wait=wait)


def _store(bases: list[_Base], cache: ArtifactCache | None) -> None:
    """Store the finished cold arms this group trains, and give up their claims."""
    for b in bases:
        if cache is not None and b.found.trains_cold:
            cache.save(b.key, {"stage1": b.stage1, "cold": b.cold.stages},
                       about=baseline_about(b.trial.cfg))
            cache.release(b.key)


def _train_cold_arms(members: list[_Member], bases: dict[str, _Base],
                     cache: ArtifactCache | None, checkpoint: GroupCheckpoint | None,
                     stages_done: int) -> None:
    """The cold arms this group trains, every stage, stored at once (a checkpoint after each
    stage: a group stopped here resumes with the cold stages it trained)."""
    mine = [b for b in bases.values() if b.found.trains_cold and not b.late]
    _train_colds(mine, _saver(members, checkpoint, stages_done))
    _store(mine, cache)


def _saver(members: list[_Member], checkpoint: GroupCheckpoint | None,
           stages_done: int) -> Callable[[], None] | None:
    if checkpoint is None:
        return None
    return lambda: checkpoint.save([m.state(stages_done) for m in members])


def _start(trials: list[Trial], keys: list[str],
           progress: Sequence[Callable[[dict[str, Any]], None] | None],
           cache: ArtifactCache | None,
           claim_cold_arms: bool) -> tuple[list[_Member], dict[str, _Base]]:
    """Every member after stage 1 (trained here once per key not stored)."""
    by_key = {}
    for trial, key in zip(trials, keys, strict=True):
        by_key.setdefault(key, trial)
    # Sorted: a group waits for another's stage 1 only on keys above all those it holds.
    bases = {key: _Base(key, by_key[key], find_baseline(cache, key, claim_cold_arms))
             for key in sorted(by_key)}
    members: list[_Member] = []
    owners: set[str] = set()
    for trial, key, callback in zip(trials, keys, progress, strict=True):
        owner = key not in owners
        owners.add(key)
        found = bases[key].found
        members.append(_Member(
            trial, bases[key], Reporter(callback),
            trains_cold=cache is None or (owner and found.trains_cold),
            emits_stage1=cache is None or (owner and found.stage1 is None)))

    todo = [b for b in bases.values() if b.found.stage1 is None]
    jobs = [b.trial.prepare(b.trial.new_model(init_seed_of(b.trial.cfg)), 0, b.trial.pools[0],
                            on_epoch=lambda e, a, b=b: b.stage1_events.append((e, a)))
            for b in todo]
    for b, job, first in zip(todo, jobs, _train(jobs), strict=True):
        b.stage1 = stage1_state(job.member.model, first, job.member.optimizer)
        if cache is not None:
            cache.save(b.key + STAGE1_SUFFIX, b.stage1, about=baseline_about(b.trial.cfg))
            cache.release(b.key + STAGE1_SUFFIX)
    for b in bases.values():
        b.stage1 = b.stage1 or b.found.stage1
    for m in members:
        # Each trial continues from its own copy of stage 1 (as one that loads it from the cache).
        model, optimizer = load_stage1(m.trial, m.base.stage1)
        m.warm, cold, m.chosen, m.init_params = start_arms(
            m.trial, model, optimizer, m.base.stage1["result"], m.base.found.cold)
        m.base.cold = m.base.cold or cold
        if m.emits_stage1:
            _replay(m.report, "warm", 0, m.base.stage1_events)
        m.report.stages_done = 1
    return members, bases


def _restore(trials: list[Trial], keys: list[str], states: list[dict[str, Any]],
             progress: Sequence[Callable[[dict[str, Any]], None] | None],
             cache: ArtifactCache | None) -> tuple[list[_Member], dict[str, _Base]]:
    """Every member as the group's last checkpoint left it."""
    bases: dict[str, _Base] = {}
    members = []
    for trial, key, state, callback in zip(trials, keys, states, progress, strict=True):
        if key not in bases:
            trains = state["base_trains_cold"]
            bases[key] = _Base(key, trial, Baseline(state["stage1"], None, trains),
                               stage1=state["stage1"], cold=restore_arm(trial, state["cold"]),
                               cold_events=state.get("cold_events", {}),
                               late=state.get("base_late", False))
            if trains and cache is not None:
                # The claim went with the process that died; as run_trial, take it again.
                cache.claim(key)
        member = _Member(trial, bases[key], Reporter(callback), trains_cold=state["trains_cold"],
                         emits_stage1=False, warm=restore_arm(trial, state["warm"]),
                         chosen=restore_arm(trial, state["chosen"]),
                         init_params=state["init_params"], done=state["done"])
        member.report.step = state["step"]
        member.report.stages_done = state["stages_done"]
        members.append(member)
    set_rng_state(states[0]["rng"])
    return members, bases


def _finish_pending(members: list[_Member], bases: dict[str, _Base],
                    cache: ArtifactCache | None, checkpoint: GroupCheckpoint | None) -> None:
    """The cold arms another process trains: wait for them; train those it left undone, or
    that nobody claimed (a checkpoint after each stage, as at the start)."""
    # A group resumed after claiming some at its end finishes those first (it holds them again).
    left = [b for b in bases.values() if b.late]
    for b in (b for b in bases.values() if b.pending):
        while True:
            stored = cache.wait(b.key)
            if stored is None and cache.claim(b.key):
                stored = cache.load(b.key)  # stored between the two looks?
                if stored is None:
                    # Nobody claimed it, or its claimant ended without storing it: ours.
                    b.found.trains_cold = b.late = True
                    next(m for m in members if m.base is b).trains_cold = True
                    left.append(b)
                    break
                cache.release(b.key)
            if stored is not None:
                b.cold.stages = stored["cold"]
                break
    _train_colds(left, _saver(members, checkpoint, members[0].trial.n_stages))
    for m in members:
        if m.trains_cold and m.base in left:
            for stage in range(1, m.trial.n_stages):
                _replay(m.report, "cold", stage, m.base.cold_events.get(stage, []))
    _store(left, cache)
