"""Many trials trained as one fused group: ``run_group(cfgs)[k]`` is ``run_trial(cfgs[k])``.

The trials of a group share the shapes of their models and stages (``fusable_configs``), so each
stage of all of them trains as one batched model (``fused.train_stage_group``): stage 1 once per
distinct baseline (trials whose configs differ only in warm-arm settings share it, and their cold
arm), then, at every later stage, every live warm arm, every cold arm and every cold start at the
chosen rate in one call. What precedes a stage's training (the active protocol's pick, the
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from wssweep.science.data import Dataset
from wssweep.science.experiment import (
    COLD_CHOSEN,
    STAGE1_SUFFIX,
    Arm,
    Baseline,
    Prepared,
    Reporter,
    Trial,
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
    stage1_state,
    stage_record,
    start_arms,
    trial_metrics,
)
from wssweep.science.fused import fusable, train_stage_group
from wssweep.science.train import StageResult

if TYPE_CHECKING:
    from wssweep.cache import ArtifactCache
    from wssweep.config import ExperimentConfig

__all__ = ["fusable_configs", "run_group"]

Events = list[tuple[int, float]]  # (epoch, train accuracy) of one arm's stage, as trained


def _shape(cfg: ExperimentConfig) -> str:
    """What must be the same for trials to train as one group: the data (the seed aside), the
    model, the optimizer type, the batch size and the stages' sizes."""
    p = cfg.protocol
    return json.dumps({"kind": cfg.kind, "device": cfg.device, "data": cfg.data.model_dump(),
                       "model": cfg.model.model_dump(), "optim": cfg.optim.name,
                       "batch_size": cfg.optim.batch_size,
                       "protocol": [p.kind, p.chunks, p.fraction, p.val_fraction]},
                      sort_keys=True, default=str)


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
    return bool(cfgs) and all(c.kind == "network" for c in cfgs) and len(
        {_shape(c) for c in cfgs}) == 1


@dataclass
class _Base:
    """Stage 1 and the cold arm of one baseline key, shared by the group's trials of that key."""

    key: str
    trial: Trial  # its first trial's: the key fixes everything stage 1 and the cold arm read
    found: Baseline
    stage1: dict[str, Any] | None = None
    cold: Arm | None = None
    stage1_events: Events = field(default_factory=list)


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
    done: bool = False  # both arms diverged: run_trial stops here


def _find(cache: ArtifactCache | None, key: str) -> Baseline:
    """``find_baseline``, waiting while another process trains the cold arm: a group trains
    its stages in lockstep, so it cannot take the cold arm's stages as they come."""
    found = find_baseline(cache, key)
    while cache is not None and found.cold is None and not found.trains_cold:
        cache.wait(key)
        found = find_baseline(cache, key)
    return found


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
) -> list[dict[str, Any]]:
    """Run the trials of ``cfgs`` (``fusable_configs``) as one group; element k is
    ``run_trial(cfgs[k], progress[k], cache)``'s metrics, and ``progress[k]`` receives the records
    ``run_trial`` would send it.

    ``cache``, if given, holds stage 1 and the cold arm of each baseline key, as for
    ``run_trial``: a key stored there is loaded, not trained; the group's first trial of a key
    not stored trains it (``baseline_reused`` false) and the others reuse it, as trials run one
    after another with that cache would (their metrics are the same; the progress records of a
    trial that reuses a baseline trained in this group show its cold stages as they are trained,
    where ``run_trial`` would show them all from the start). A key whose cold arm another
    process is training is
    waited for before the group starts. Checkpointing (``run_trial``'s ``checkpoint``) is not
    supported: a group that stops starts over. The group runs on the largest ``threads`` asked.

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
        return _run(cfgs, progress, cache)
    finally:
        if cache is not None:
            cache.release_all()  # a group that raised gives up its claims too


def _run(cfgs: Sequence[ExperimentConfig],
         progress: Sequence[Callable[[dict[str, Any]], None] | None],
         cache: ArtifactCache | None) -> list[dict[str, Any]]:
    torch.set_num_threads(max(c.threads for c in cfgs))
    device = resolve_device(cfgs[0].device)
    loaded: dict[str, Dataset] = {}
    bases: dict[str, _Base] = {}
    members: list[_Member] = []
    for cfg, callback in zip(cfgs, progress, strict=True):
        data_key = json.dumps(cfg.data.model_dump(), sort_keys=True, default=str)
        if data_key not in loaded:
            loaded[data_key] = load_experiment_data(cfg, device)
        trial = new_trial(cfg, loaded[data_key], device)
        key = baseline_key(cfg, device.type)
        owner = key not in bases
        if owner:
            bases[key] = _Base(key, trial, _find(cache, key))
        found = bases[key].found
        members.append(_Member(
            trial, bases[key], Reporter(callback),
            trains_cold=cache is None or (owner and found.trains_cold),
            emits_stage1=cache is None or (owner and found.stage1 is None)))

    # Stage 1, once per key not stored.
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
        m.report.emit(stage_record(m.warm, m.base.cold, 0))

    for stage in range(1, members[0].trial.n_stages):
        events: dict[tuple[str, int], Events] = {}
        hook = functools.partial(_recorder, events)
        warm = {i: prepare_warm(m.trial, m.warm, stage, m.init_params, hook("warm", i))
                for i, m in enumerate(members) if not m.warm.diverged}
        cold = {b.key: prepare_fresh(b.trial, b.cold, stage, hook("cold", id(b)))
                for b in bases.values() if b.found.trains_cold and not b.cold.diverged}
        chosen = {i: prepare_fresh(m.trial, m.chosen, stage, hook(COLD_CHOSEN, i),
                                   lr=warm[i].lr)
                  for i, m in enumerate(members)
                  if m.chosen is not None and not m.chosen.diverged and i in warm}
        results = iter(_train([*warm.values(), *cold.values(), *chosen.values()]))
        for i, job in warm.items():
            members[i].warm.stages.append(next(results))
            members[i].warm.optimizer = job.member.optimizer
        for key in cold:
            bases[key].cold.stages.append(next(results))
        for i in chosen:
            members[i].chosen.stages.append(next(results))
        for i, m in enumerate(members):
            if m.done:
                continue
            _replay(m.report, "warm", stage, events.get(("warm", i), []))
            if m.trains_cold:
                _replay(m.report, "cold", stage, events.get(("cold", id(m.base)), []))
            _replay(m.report, COLD_CHOSEN, stage, events.get((COLD_CHOSEN, i), []))
            if m.warm.diverged and m.base.cold.diverged:
                m.done = True
                continue
            m.report.stages_done = stage + 1
            m.report.emit(stage_record(m.warm, m.base.cold, stage))

    if cache is not None:
        for b in bases.values():
            if b.found.trains_cold:
                cache.save(b.key, {"stage1": b.stage1, "cold": b.cold.stages},
                           about=baseline_about(b.trial.cfg))
                cache.release(b.key)
    return [trial_metrics(m.trial, m.warm, m.base.cold, m.chosen, resumed_stage=0,
                          trains_cold=m.trains_cold) for m in members]
