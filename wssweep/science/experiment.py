"""One trial: a warm-started arm against a cold-started arm on the same seed and data.

Both arms share stage 1 (same init, same data, same batch order), so it is trained once. At each
later stage new data arrives; the warm arm carries its model over (with its intervention:
shrink-and-perturb, DASH, last-layer reset or an L2-init penalty; its warmup; its rate, perhaps
chosen by short-horizon meta-optimization), and the cold arm starts from a fresh init. Both see the
same stage pools and batch orders, so ``gap = cold - warm`` is a paired difference.

Example:
    >>> from wssweep.config import ExperimentConfig
    >>> cfg = ExperimentConfig.model_validate({
    ...     "data": {"name": "digits", "train_size": 200}, "model": {"name": "logreg"},
    ...     "protocol": {"kind": "batch", "stop": {"max_epochs": 2}}, "lr": 0.1})
    >>> metrics = run_trial(cfg)
    >>> sorted(k for k in metrics if k.startswith("warm/steps"))
    ['warm/steps']
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wssweep.cells import finite_or_none
from wssweep.science.data import Dataset, holdout, load_dataset, subset
from wssweep.science.fused import Member
from wssweep.science.interventions import (
    dash,
    l2_init_penalty,
    reset_last_layer,
    shrink_perturb,
    snapshot_params,
)
from wssweep.science.meta import log_grid, short_horizon_lr
from wssweep.science.models import build_model
from wssweep.science.nqm import run_nqm
from wssweep.science.optim import catapult_lr, load_optimizer_state, make_optimizer
from wssweep.science.protocols import margin_select, stage_pools
from wssweep.science.schedules import make_schedule
from wssweep.science.train import StageResult, StopRule, train_stage

if TYPE_CHECKING:
    from wssweep.cache import ArtifactCache
    from wssweep.config import ExperimentConfig

ARMS = ("warm", "cold")
#: The optional third arm: a cold start trained at the rate the warm arm's meta-optimization chose.
COLD_CHOSEN = "cold_chosen"
CHANCE_FACTOR = 1.5  # a final train accuracy below 1.5x chance counts as diverged (Kalra & B.)


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one purpose (split, batches of stage j, noise of stage j) from the trial seed."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


@functools.cache
def code_version(*user_paths: str) -> str:
    """A hash of the code a trial's numbers come from: every module of ``wssweep.science``, the
    config schema (its defaults fill the config), the torch version, and the files of the user
    code named by ``user_paths`` (``package.module:function`` import paths), where found.

    Part of ``baseline_key``: a baseline stored by other code is never reused.
    """
    science = Path(__file__).parent
    files = [*sorted(science.glob("*.py")), science.parent / "config.py"]
    for path in user_paths:
        try:
            spec = importlib.util.find_spec(path.split(":")[0])
        except (ImportError, ValueError):
            continue  # not importable: building the model or loading the data says so
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            files.append(Path(spec.origin))
    digest = hashlib.sha256(torch.__version__.encode())
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def baseline_key(cfg: ExperimentConfig, device: str = "cpu") -> str:
    """A hash of exactly what determines stage 1 and the cold arm: the config without its warm
    settings, the device type it trains on, and the code (``code_version``).

    Example:
        >>> from wssweep.config import ExperimentConfig
        >>> a = ExperimentConfig.model_validate({"shrink": 0.5})
        >>> b = ExperimentConfig.model_validate({"shrink": 0.9, "warm": {"perturb": 0.0}})
        >>> baseline_key(a) == baseline_key(b), baseline_key(a) == baseline_key(b.model_copy(
        ...     update={"seed": 1})), baseline_key(a) == baseline_key(a, "cuda")
        (True, False, False)
    """
    user = tuple(p for p in (cfg.data.loader, cfg.model.factory) if p)
    text = json.dumps({"config": json.loads(cfg.baseline_recipe()), "device": device,
                       "code": code_version(*user)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def baseline_about(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a stored baseline is, for people (``wssweep cache ls``)."""
    return {"data": cfg.data.name, "model": cfg.model.name, "protocol": cfg.protocol.kind,
            "optim": cfg.optim.name, "lr": cfg.lr, "seed": cfg.seed}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def load_experiment_data(cfg: ExperimentConfig, device: torch.device) -> Dataset:
    """The config's dataset, trimmed as asked, on ``device``, its inputs in the default dtype."""
    d = cfg.data
    data = load_dataset(d.name, root=d.root, cache_dir=d.cache_dir, num_samples=d.num_samples,
                        loader=d.loader, kwargs=dict(d.kwargs))
    if d.train_size or d.test_size:
        data = subset(data, d.train_size, d.test_size)
    # The inputs in the default dtype, as the models' parameters are (float64 where set).
    dtype = torch.get_default_dtype()
    return Dataset(name=data.name, num_classes=data.num_classes,
                   x_train=data.x_train.to(device, dtype), y_train=data.y_train.to(device),
                   x_test=data.x_test.to(device, dtype), y_test=data.y_test.to(device))


@dataclass
class Prepared:
    """One stage ready to train: ``member`` holds what ``train_stage`` (or a fused group) takes;
    the rest is what the stage's result records besides its training."""

    member: Member
    lr: float  # the target rate (the meta-horizon's pick, where it picked)
    extra_steps: int  # steps the rate pick spent
    extra: dict[str, Any]  # the catapult search's outcome; the intervention's stats are added

    def finish(self, result: StageResult) -> StageResult:
        """``result`` (this stage's training) with what the preparation measured."""
        result.lr, result.extra_steps, result.extra = self.lr, self.extra_steps, self.extra
        return result

    def train(self) -> StageResult:
        """Train the stage alone (``train_stage``)."""
        m = self.member
        penalty = None if m.penalty_init is None else (
            lambda: l2_init_penalty(m.model, m.penalty_init, m.penalty_coef))
        return self.finish(train_stage(
            m.model, m.optimizer, m.schedule, m.x, m.y, m.x_test, m.y_test,
            batch_size=m.batch_size, stop=m.stop, generator=m.generator, penalty=penalty,
            on_epoch=m.on_epoch, x_val=m.x_val, y_val=m.y_val))


@dataclass
class Trial:
    """Everything one trial needs, with the helpers both arms share."""

    cfg: ExperimentConfig
    data: Dataset  # its training examples are those left after the validation split
    device: torch.device
    x_val: torch.Tensor  # the validation split: selection reads it, both arms and every stage
    y_val: torch.Tensor
    pools: list[torch.Tensor] = field(default_factory=list)

    @property
    def n_stages(self) -> int:
        p = self.cfg.protocol
        return 2 if p.kind == "batch" else p.chunks

    def new_model(self, seed: int) -> nn.Module:
        model = build_model(self.cfg.model, input_shape=self.data.input_shape,
                            num_classes=self.data.num_classes, seed=seed)
        return model.to(self.device)

    def optimizer_kwargs(self) -> dict[str, Any]:
        o = self.cfg.optim
        return {"momentum": o.momentum, "betas": o.betas, "weight_decay": o.weight_decay}

    def new_optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return make_optimizer(self.cfg.optim.name, params, lr, **self.optimizer_kwargs())

    def pool(self, stage: int, previous: torch.Tensor, model: nn.Module) -> torch.Tensor:
        """Training indices of ``stage``; active learning picks the new chunk with ``model``."""
        if self.cfg.protocol.kind != "active":
            return self.pools[stage]
        n = len(self.data.x_train)
        rest = torch.ones(n, dtype=torch.bool)
        rest[previous.cpu()] = False
        rest_idx = rest.nonzero().squeeze(1)
        k = round((stage + 1) * n / self.cfg.protocol.chunks) - len(previous)
        picked = margin_select(model, self.data.x_train[rest_idx.to(self.device)], k)
        return torch.cat([previous, rest_idx[picked.cpu()]])

    def prepare(
        self,
        model: nn.Module,
        stage: int,
        pool: torch.Tensor,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        meta: bool = False,
        lr: float | None = None,
        penalty_init: dict[str, torch.Tensor] | None = None,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> Prepared:
        """Everything before training one stage at ``lr`` (default the config's, or the
        meta-optimized one if ``meta``): the stage's tensors, the rate pick, the catapult search,
        the optimizer (``optimizer`` if given, else a fresh one), schedule, stop rule and batch
        generator. ``penalty_init`` anchors an L2-init penalty of ``warm.l2_coef``."""
        cfg, o = self.cfg, self.cfg.optim
        pool = pool.to(self.device)
        x, y = self.data.x_train[pool], self.data.y_train[pool]
        batch_seed = derive_seed(cfg.seed, "batches", stage)
        lr, extra_steps, extra = cfg.lr if lr is None else lr, 0, {}
        if meta and cfg.meta_horizon > 0:
            w = cfg.warm
            pick = short_horizon_lr(
                model, self.new_optimizer, x, y, horizon=cfg.meta_horizon,
                candidates=log_grid(w.meta_lr_min, w.meta_lr_max, w.meta_candidates),
                batch_size=o.batch_size, seed=batch_seed, score_batches=w.meta_score_batches,
                optimizer_state=optimizer.state_dict() if optimizer is not None else None)
            lr, extra_steps = pick.lr, pick.steps
        if optimizer is None:
            optimizer = self.new_optimizer(model.parameters(), lr)
        init, catapult = (o.warmup_init, False) if o.warmup_init != "catapult" else (0.0, True)
        if catapult and cfg.warmup_steps > 0:
            first = torch.randperm(len(x), generator=torch.Generator().manual_seed(batch_seed))
            first = first[: o.batch_size].to(self.device)
            found = catapult_lr(model, F.cross_entropy, (x[first], y[first]), o.name, lr,
                                optimizer_kwargs=self.optimizer_kwargs())
            init = found.lr
            extra.update(catapult_lr=found.lr, catapult_forward_passes=found.forward_passes,
                         catapult_outcome=found.outcome)
        schedule = make_schedule(lr, warmup_steps=cfg.warmup_steps, warmup_init=init,
                                 catapult=catapult, kind=o.schedule, decay_steps=o.decay_steps,
                                 switch_step=o.switch_step, ratio=o.ratio)
        member = Member(model=model, optimizer=optimizer, schedule=schedule, x=x, y=y,
                        x_test=self.data.x_test, y_test=self.data.y_test,
                        batch_size=o.batch_size, stop=StopRule(**cfg.protocol.stop.model_dump()),
                        generator=torch.Generator().manual_seed(batch_seed),
                        penalty_init=penalty_init,
                        penalty_coef=cfg.warm.l2_coef if penalty_init is not None else 0.0,
                        on_epoch=on_epoch, x_val=self.x_val, y_val=self.y_val)
        return Prepared(member, lr, extra_steps, extra)

    def train(self, model: nn.Module, stage: int, pool: torch.Tensor,
              **options: Any) -> tuple[StageResult, torch.optim.Optimizer]:
        """``prepare`` (with its keyword ``options``) then train the stage; returns its result
        and the optimizer (for arms that keep it)."""
        prepared = self.prepare(model, stage, pool, **options)
        return prepared.train(), prepared.member.optimizer

    def intervene(self, model: nn.Module, stage: int, pool: torch.Tensor) -> dict[str, Any]:
        """Apply the warm arm's intervention before training on ``stage``'s new data; returns
        what it measured (DASH's factors: ``DASH_EXTRA``), else nothing."""
        w, cfg = self.cfg.warm, self.cfg
        noise_seed = derive_seed(cfg.seed, "noise", stage)
        if w.intervention == "shrink_perturb":
            shrink_perturb(model, cfg.resolved_shrink(), w.perturb, noise=w.noise,
                           fresh=self.new_model(noise_seed),
                           generator=torch.Generator(device=self.device).manual_seed(noise_seed))
        elif w.intervention == "reset_last_layer":
            reset_last_layer(model, self.new_model(noise_seed))
        elif w.intervention == "dash":
            # DASH walks the accumulated data oldest first, one chunk's size per batch.
            chunk = len(self.pools[0])
            pool = pool.to(self.device)
            data = ((self.data.x_train[pool[i : i + chunk]], self.data.y_train[pool[i : i + chunk]])
                    for i in range(0, len(pool), chunk))
            stats = dash(model, data, shrink=cfg.resolved_shrink(), alpha=w.dash_alpha,
                         granularity=w.granularity)
            layers = {k.split("/", 1)[1]: [stats[k], stats[f"factor_min/{k.split('/', 1)[1]}"],
                                           stats[f"factor_max/{k.split('/', 1)[1]}"]]
                      for k in stats if k.startswith("factor/")}
            return {"dash_factor_mean": stats["mean_factor"],
                    "dash_factor_min": stats["min_factor"],
                    "dash_factor_max": stats["max_factor"], "dash_layers": layers}
        return {}


@dataclass
class Arm:
    """One arm's running state: its model, optimizer, current pool and finished stages."""

    model: nn.Module | None
    optimizer: torch.optim.Optimizer | None
    pool: torch.Tensor
    stages: list[StageResult]

    @property
    def diverged(self) -> bool:
        return self.stages[-1].diverged


class StageCheckpoint(Protocol):
    """Where a trial keeps its state between stages (``wssweep.checkpoint.TrialStore`` on disk).

    ``save`` receives a picklable mapping of tensors and ``StageResult`` objects and must persist
    it before returning (a resumed trial continues from the last one saved); ``load`` gives the
    last one back, or ``None`` when the trial has not finished a stage yet.
    """

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


CHECKPOINT_VERSION = 3  # bump when the state layout changes: older checkpoints are ignored


def arm_state(arm: Arm | None) -> dict[str, Any] | None:
    """What a stage checkpoint keeps of an arm (``restore_arm`` reads it back)."""
    if arm is None:
        return None
    return {"model": None if arm.model is None else arm.model.state_dict(),
            "optimizer": None if arm.optimizer is None else arm.optimizer.state_dict(),
            "pool": arm.pool, "stages": arm.stages}


def rng_state() -> dict[str, Any]:
    # Every random draw of a trial goes through generators seeded per stage (derive_seed); the
    # global states are saved anyway, so a user model that draws from them (dropout) resumes too.
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_arm(trial: Trial, saved: dict[str, Any] | None) -> Arm | None:
    """The arm ``arm_state`` saved, on ``trial``'s model and optimizer."""
    if saved is None:
        return None
    model = None
    if saved["model"] is not None:
        model = trial.new_model(init_seed_of(trial.cfg))
        model.load_state_dict(saved["model"])
    optimizer = None
    if saved["optimizer"] is not None:
        optimizer = trial.new_optimizer(model.parameters(), trial.cfg.lr)
        load_optimizer_state(optimizer, saved["optimizer"])
    return Arm(model, optimizer, saved["pool"], list(saved["stages"]))


#: What DASH measured at a stage (``StageResult.extra``): its factors' mean, least and largest
#: over every layer, and each layer's [mean, min, max].
DASH_EXTRA = ("dash_factor_mean", "dash_factor_min", "dash_factor_max", "dash_layers")

#: The suffix of the key under which stage 1 is stored as soon as it is trained, so the trials of
#: a seed waiting for its baseline start their warm arms while the cold arm still trains.
STAGE1_SUFFIX = "-stage1"


@dataclass
class Baseline:
    """Where a trial's stage 1 and cold arm come from (``find_baseline``)."""

    stage1: dict[str, Any] | None  # from the cache; None: this trial trains stage 1
    cold: list[StageResult] | None  # the cold arm's stages from the cache, if they are there
    trains_cold: bool  # this trial trains the cold arm (it holds the claim, or has no cache)


def find_baseline(cache: ArtifactCache | None, key: str, claim_cold: bool = True) -> Baseline:
    """Stage 1 and the cold arm of ``key``: stored, claimed here, or being trained elsewhere.

    A trial that finds nothing stored claims stage 1 and the cold arm and trains both (stage 1
    is stored at once); one that finds the claim taken waits for stage 1 and trains its warm arm
    while the claimant trains the cold arm, then waits for that (``run_trial``). A claimant that
    died leaves its claims free: the next to look takes them. With ``claim_cold`` false the cold
    arm is left unclaimed (``trains_cold`` false), for its caller to claim later if nobody has.
    """
    if cache is None:
        return Baseline(None, None, True)
    first = key + STAGE1_SUFFIX
    while True:
        full = cache.load(key)
        if full is not None:
            return Baseline(full["stage1"], full["cold"], False)
        stage1 = cache.load(first)
        if stage1 is not None:
            # Stage 1 is stored: the cold arm is claimed by whoever trains it, or by no one.
            if not claim_cold or not cache.claim(key):
                return Baseline(stage1, None, False)
            if cache.load(key) is not None:  # stored between the two looks
                cache.release(key)
                continue
            return Baseline(stage1, None, True)
        if cache.claim(first):
            if cache.load(first) is not None:  # stored between the two looks
                cache.release(first)
                continue
            # Whoever trains stage 1 trains the cold arm: both claims are taken stage 1 first,
            # so nobody else holds the second.
            return Baseline(None, None, claim_cold and cache.claim(key))
        cache.wait(first)  # until its claimant stores it (or dies); then look again


def take_stored_cold(cache: ArtifactCache | None, key: str, cold: Arm,
                     wait: bool = False) -> bool:
    """Whether another trial has stored the cold arm of ``key`` by now (then ``cold`` takes its
    stages): a trial whose cold arm another trains reports its accuracies and gaps from the next
    stage record on (W&B's charts, hyperband's bands), not only at its end. With ``wait``, first
    wait while another process holds the claim on it (training it now); a cold arm nobody trains
    is still left for the end."""
    if cache is None:
        return False
    stored = cache.wait(key) if wait else cache.load(key)
    if stored is None:
        return False
    cold.stages = stored["cold"]
    return True


def run_trial(
    cfg: ExperimentConfig,
    progress: Callable[[dict[str, Any]], None] | None = None,
    cache: ArtifactCache | None = None,
    checkpoint: StageCheckpoint | None = None,
    wait_for_cold: bool = False,
) -> dict[str, Any]:
    """Run the warm arm and the cold arm of ``cfg``; return the trial's metrics (JSON-ready).

    Accuracies are in percent; ``gap`` is cold minus warm final test accuracy in points; steps and
    seconds count what each arm spent after the first stage, i.e. once new data had arrived
    (stage 1 is shared); ``saving`` is cold steps over warm steps. With ``cold_at_chosen_lr`` a
    third arm, ``cold_chosen``, trains a cold start at each stage's meta-optimized rate, and
    ``gap_chosen`` is its test accuracy minus the warm arm's.

    The arms advance stage by stage, warm then cold, so a running gap exists after every stage.
    ``progress``, if given, receives a record after every epoch (``event: "epoch"``) and every
    stage (``event: "stage"``, with that stage's test accuracies and gap); ``step`` counts epochs
    over both arms and ``stages_done`` counts stages both arms have finished (both monotone).

    ``cache``, if given, holds stage 1 and the cold arm under ``baseline_key(cfg)``: a trial that
    finds them there trains only its warm arm (the cold arm's steps and seconds are those measured
    when it was trained).

    ``checkpoint``, if given, receives every arm's state (models, optimizers, pools, stage results,
    RNG states) after each finished stage, before that stage is reported; a trial whose checkpoint
    holds a state continues after that stage. On the CPU a resumed trial's metrics are
    bit-identical to an uninterrupted run's (wall-clock seconds aside). ``resumed_stage`` in the
    metrics is the stage it continued after (0: it started from scratch).

    A trial whose cold arm another trial trains takes it from ``cache`` once stored, looking
    after each stage; with ``wait_for_cold`` it waits there while that trial trains it, so every
    stage record carries the gap (early termination compares stage records).
    """
    if cfg.kind == "nqm":
        return {**run_nqm(cfg.nqm, seed=cfg.seed, meta_horizon=cfg.meta_horizon),
                "resumed_stage": 0}
    try:
        return _run_arms(cfg, progress, cache, checkpoint, wait_for_cold)
    finally:
        if cache is not None:
            cache.release_all()  # a trial that raised gives up its claims too


class Reporter:
    """A trial's progress records: ``step`` counts epochs over every arm, ``stages_done`` the
    stages both arms have finished."""

    def __init__(self, progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.progress, self.step, self.stages_done = progress, 0, 0

    def emit(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress({"step": self.step, "stages_done": self.stages_done, **record})

    def epoch_hook(self, arm: str, stage: int) -> Callable[[int, float], None]:
        def hook(epoch: int, train_acc: float) -> None:
            self.step += 1
            self.emit({"event": "epoch", "arm": arm, "stage": stage + 1, "epoch": epoch,
                       f"{arm}/train_acc": 100 * train_acc})
        return hook


def new_trial(cfg: ExperimentConfig, loaded: Dataset, device: torch.device) -> Trial:
    """The trial of ``cfg`` on ``loaded`` (``load_experiment_data``): its validation split and
    stage pools, drawn from its seed."""
    p = cfg.protocol
    # Carved before the stages are: every stage of both arms sees the same validation split.
    data, x_val, y_val = holdout(loaded, p.val_fraction,
                                 torch.Generator().manual_seed(derive_seed(cfg.seed, "validation")))
    trial = Trial(cfg, data, device, x_val, y_val)
    split = torch.Generator().manual_seed(derive_seed(cfg.seed, "split"))
    trial.pools = stage_pools(p.kind, len(trial.data.x_train), fraction=p.fraction,
                              chunks=p.chunks, generator=split)
    return trial


def init_seed_of(cfg: ExperimentConfig) -> int:
    """The seed of stage 1's init, which every cold start also starts from."""
    return derive_seed(cfg.seed, "init")


def load_stage1(trial: Trial, stage1: dict[str, Any]) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A model and optimizer as stage 1 left them, from its stored state."""
    model = trial.new_model(init_seed_of(trial.cfg))
    model.load_state_dict(stage1["model"])
    optimizer = trial.new_optimizer(model.parameters(), trial.cfg.lr)
    load_optimizer_state(optimizer, stage1["optimizer"])
    return model, optimizer


def stage1_state(model: nn.Module, first: StageResult,
                 optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What the baseline store keeps of stage 1 (``load_stage1`` reads it)."""
    return {"model": copy.deepcopy(model.state_dict()), "result": first,
            "optimizer": copy.deepcopy(optimizer.state_dict())}


def start_arms(trial: Trial, model: nn.Module, optimizer: torch.optim.Optimizer,
               first: StageResult, cold_stages: list[StageResult] | None,
               ) -> tuple[Arm, Arm, Arm | None, dict[str, torch.Tensor] | None]:
    """The arms after stage 1 (``model`` as it left it): warm, cold (with ``cold_stages`` when
    they are stored), the cold start at the chosen rate where asked, and L2-init's anchor."""
    cfg = trial.cfg
    after_first = copy.deepcopy(model) if cfg.protocol.kind == "active" else None
    warm = Arm(model, optimizer, trial.pools[0], [first])
    cold = Arm(after_first, None, trial.pools[0], [first] if cold_stages is None else cold_stages)
    # A cold start at the warm arm's chosen rate; without meta-optimization it is the cold arm.
    chosen = Arm(copy.deepcopy(after_first), None, trial.pools[0], [first]) if (
        cfg.cold_at_chosen_lr and cfg.meta_horizon > 0) else None
    # L2-init (Kumar et al., as the DASH paper's baseline) pulls toward the weights at
    # initialisation, before any training: the same init stage 1 started from.
    init_params = (snapshot_params(trial.new_model(init_seed_of(cfg)))
                   if cfg.warm.intervention == "l2_init" else None)
    return warm, cold, chosen, init_params


def prepare_warm(trial: Trial, warm: Arm, stage: int, init_params: dict[str, torch.Tensor] | None,
                 on_epoch: Callable[[int, float], None] | None) -> Prepared:
    """The warm arm's ``stage``: carry the model (and, if asked, the optimizer) into the new
    data, after its intervention (whose stats go with the result)."""
    warm.pool = trial.pool(stage, warm.pool, warm.model)
    measured = trial.intervene(warm.model, stage, warm.pool)
    prepared = trial.prepare(
        warm.model, stage, warm.pool,
        optimizer=warm.optimizer if trial.cfg.warm.keep_optimizer else None, meta=True,
        penalty_init=init_params, on_epoch=on_epoch)
    prepared.extra.update(measured)
    return prepared


def prepare_fresh(trial: Trial, arm: Arm, stage: int,
                  on_epoch: Callable[[int, float], None] | None,
                  lr: float | None = None) -> Prepared:
    """A cold start's ``stage``: a fresh init and a fresh optimizer, on the same pool and batch
    order as the warm arm's."""
    arm.pool = trial.pool(stage, arm.pool, arm.model)
    arm.model = trial.new_model(init_seed_of(trial.cfg))
    return trial.prepare(arm.model, stage, arm.pool, lr=lr, on_epoch=on_epoch)


def trial_metrics(trial: Trial, warm: Arm, cold: Arm, chosen: Arm | None, *, resumed_stage: int,
                  trains_cold: bool) -> dict[str, Any]:
    """``run_trial``'s metrics from its arms."""
    stages = {"warm": warm.stages, "cold": cold.stages}
    if trial.cfg.cold_at_chosen_lr:
        stages[COLD_CHOSEN] = cold.stages if chosen is None else chosen.stages
    return {**summarize(stages, trial.n_stages, trial.data.num_classes),
            "resumed_stage": resumed_stage, "baseline_reused": not trains_cold}


def _run_arms(cfg: ExperimentConfig, progress: Callable[[dict[str, Any]], None] | None,
              cache: ArtifactCache | None, checkpoint: StageCheckpoint | None,
              wait_for_cold: bool) -> dict[str, Any]:
    """``run_trial`` of a network experiment."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    trial = new_trial(cfg, load_experiment_data(cfg, device), device)
    init_seed = init_seed_of(cfg)
    report = Reporter(progress)
    key = baseline_key(cfg, device.type)
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None and (state.get("version") != CHECKPOINT_VERSION
                              or state.get("baseline_key") != key):
        state = None  # another layout, or another experiment's state: start over

    if state is None:
        resumed_stage = 0
        baseline = find_baseline(cache, key)
        trains_cold = baseline.trains_cold
        # Stage 1 is the same for both arms: train it once (or load it from another trial).
        if baseline.stage1 is None:
            model = trial.new_model(init_seed)
            first, optimizer = trial.train(model, 0, trial.pools[0],
                                           on_epoch=report.epoch_hook("warm", 0))
            stage1 = stage1_state(model, first, optimizer)
            if cache is not None:
                cache.save(key + STAGE1_SUFFIX, stage1, about=baseline_about(cfg))
                cache.release(key + STAGE1_SUFFIX)
        else:
            stage1 = baseline.stage1
            first = stage1["result"]
            model, optimizer = load_stage1(trial, stage1)
        warm, cold, chosen, init_params = start_arms(trial, model, optimizer, first,
                                                     baseline.cold)
        report.stages_done = 1
        start_stage = 1
    else:
        resumed_stage = start_stage = state["stages_done"]
        trains_cold, stage1 = state["trains_cold"], state["stage1"]
        warm, cold = restore_arm(trial, state["warm"]), restore_arm(trial, state["cold"])
        chosen = restore_arm(trial, state["chosen"])
        init_params = state["init_params"]
        report.step, report.stages_done = state["step"], start_stage
        set_rng_state(state["rng"])
        if trains_cold and cache is not None:
            # The claim went with the process that died. If another trial of the seed took it
            # meanwhile, both train the cold arm; the second store replaces the first with the
            # same content.
            cache.claim(key)
    # The cold arm comes from another trial of the seed: its stages once that trial stores them.
    cold_pending = not trains_cold and len(cold.stages) < trial.n_stages

    def train_cold(stage: int) -> None:
        cold.stages.append(prepare_fresh(trial, cold, stage,
                                         report.epoch_hook("cold", stage)).train())

    def save_state() -> None:
        if checkpoint is None:
            return
        checkpoint.save({
            "version": CHECKPOINT_VERSION, "baseline_key": key,
            "stages_done": report.stages_done, "step": report.step,
            "trains_cold": trains_cold, "stage1": stage1 if trains_cold else None,
            "warm": arm_state(warm), "cold": arm_state(cold), "chosen": arm_state(chosen),
            "init_params": init_params, "rng": rng_state()})

    if state is None:
        save_state()
        report.emit(stage_record(warm, cold, 0))

    for stage in range(start_stage, trial.n_stages):
        if not warm.diverged:
            prepared = prepare_warm(trial, warm, stage, init_params,
                                    report.epoch_hook("warm", stage))
            warm.stages.append(prepared.train())
            warm.optimizer = prepared.member.optimizer
        if trains_cold and not cold.diverged:
            train_cold(stage)
        if chosen is not None and not chosen.diverged and len(warm.stages) > stage:
            chosen.stages.append(prepare_fresh(
                trial, chosen, stage, report.epoch_hook(COLD_CHOSEN, stage),
                lr=warm.stages[stage].lr).train())
        if cold_pending and take_stored_cold(cache, key, cold, wait=wait_for_cold):
            cold_pending = False
        if warm.diverged and (cold.diverged or cold_pending):
            break
        report.stages_done = stage + 1
        save_state()
        report.emit(stage_record(warm, cold, stage))
    if cold_pending:
        stored = cache.wait(key) if cache is not None else None
        if stored is not None:
            cold.stages = stored["cold"]
        else:  # its claimant ended without storing it: this trial trains it after all
            trains_cold = cache is None or cache.claim(key)
            stage1 = stage1 or (cache.load(key + STAGE1_SUFFIX) if cache is not None else None)
            for stage in range(len(cold.stages), trial.n_stages):
                if not cold.diverged:
                    train_cold(stage)
    if cache is not None and trains_cold:
        cache.save(key, {"stage1": stage1, "cold": cold.stages}, about=baseline_about(cfg))
        cache.release(key)
    return trial_metrics(trial, warm, cold, chosen, resumed_stage=resumed_stage,
                         trains_cold=trains_cold)


#: The keys of a progress record that label it rather than measure anything: which event, the
#: epoch counter over both arms, the stage, the epoch within it and the arm. The rest of a record
#: is declared metrics (``wssweep.metrics``) and ``stages_done``, the count ASHA schedules on.
PROGRESS_LABELS = frozenset({"event", "step", "stage", "epoch", "arm"})


def stage_record(warm: Arm, cold: Arm, stage: int) -> dict[str, Any]:
    """The progress record at the end of ``stage``: each arm's test and validation accuracy, and
    the gap on each (ASHA compares the validation gap); DASH's factors where it shrank."""
    record: dict[str, Any] = {"event": "stage", "stage": stage + 1}
    if len(warm.stages) > stage:
        record.update({f"warm/{k}": warm.stages[stage].extra[k] for k in DASH_EXTRA[:3]
                       if k in warm.stages[stage].extra})
    for name, arm in (("warm", warm), ("cold", cold)):
        done = len(arm.stages) > stage and not arm.stages[stage].diverged
        for split in ("test", "val"):
            acc = getattr(arm.stages[stage], f"{split}_acc") if done else None
            record[f"{name}/{split}_acc"] = finite_or_none(acc)
        record[f"{name}/steps"] = sum(s.steps + s.extra_steps for s in arm.stages[1:stage + 1])
    for gap, split in (("gap", "test"), ("val_gap", "val")):
        warm_acc, cold_acc = record[f"warm/{split}_acc"], record[f"cold/{split}_acc"]
        record[gap] = None if warm_acc is None or cold_acc is None else cold_acc - warm_acc
    return record


def summarize(stages: dict[str, list[StageResult]], n_stages: int, num_classes: int) -> dict:
    """The trial's metrics from both arms' stage results (names as in docs/architecture.md)."""
    chance = 100.0 / num_classes
    out: dict[str, Any] = {}
    for arm in stages:
        done = stages[arm]
        later = done[1:]
        diverged = (len(done) < n_stages or done[-1].diverged
                    or not done[-1].train_acc >= CHANCE_FACTOR * chance)
        out[f"{arm}/diverged"] = bool(diverged)
        # Why the final stage stopped: arms are compared as equals only when both converged.
        out[f"{arm}/stop"] = "diverged" if diverged else done[-1].stop_reason
        out[f"{arm}/test_acc"] = None if diverged else finite_or_none(done[-1].test_acc)
        out[f"{arm}/val_acc"] = None if diverged else finite_or_none(done[-1].val_acc)
        out[f"{arm}/train_acc"] = None if diverged else finite_or_none(done[-1].train_acc)
        out[f"{arm}/test_acc_mean"] = (
            None if diverged else sum(s.test_acc for s in done) / len(done))
        out[f"{arm}/val_acc_mean"] = (
            None if diverged else finite_or_none(sum(s.val_acc for s in done) / len(done)))
        out[f"{arm}/steps"] = sum(s.steps + s.extra_steps for s in later)
        out[f"{arm}/seconds"] = sum(s.seconds for s in later)
        out[f"{arm}/stage_test_acc"] = [finite_or_none(s.test_acc) for s in done]
        out[f"{arm}/stage_val_acc"] = [finite_or_none(s.val_acc) for s in done]
        out[f"{arm}/stage_train_acc"] = [finite_or_none(s.train_acc) for s in done]
        out[f"{arm}/stage_steps"] = [s.steps + s.extra_steps for s in done]
        out[f"{arm}/stage_epochs"] = [s.epochs for s in done]
        out[f"{arm}/stage_seconds"] = [s.seconds for s in done]
        out[f"{arm}/stage_n_train"] = [s.n_train for s in done]
        out[f"{arm}/stage_stop"] = [s.stop_reason for s in done]
    for gap, split in (("gap", "test"), ("val_gap", "val")):
        warm_acc, cold_acc = out[f"warm/{split}_acc"], out[f"cold/{split}_acc"]
        out[gap] = None if warm_acc is None or cold_acc is None else cold_acc - warm_acc
        if COLD_CHOSEN in stages:
            chosen_acc = out[f"{COLD_CHOSEN}/{split}_acc"]
            out[f"{gap}_chosen"] = (None if warm_acc is None or chosen_acc is None
                                    else chosen_acc - warm_acc)
    out["saving"] = out["cold/steps"] / out["warm/steps"] if out["warm/steps"] else None
    chosen = [s.lr for s in stages["warm"][1:] if s.extra_steps]
    # The geometric mean summarises the per-stage choices on the scale rates live on.
    out["lr_chosen"] = (math.exp(sum(math.log(v) for v in chosen) / len(chosen))
                        if chosen else None)
    out["warm/stage_lr"] = [s.lr for s in stages["warm"]]
    out["warm/meta_steps"] = sum(s.extra_steps for s in stages["warm"])
    for key in ("catapult_lr", "catapult_forward_passes", "catapult_outcome"):
        values = [s.extra[key] for s in stages["warm"] if key in s.extra]
        if values:
            out[f"warm/stage_{key}"] = values
    if any(DASH_EXTRA[0] in s.extra for s in stages["warm"]):
        # Per stage (None for stage 1, before any shrinking): the factors over every layer,
        # and each layer's [mean, min, max].
        for key in DASH_EXTRA:
            out[f"warm/stage_{key}"] = [s.extra.get(key) for s in stages["warm"]]
    for key in DASH_EXTRA[:3]:  # the last stage's, as the accuracies are
        out[f"warm/{key}"] = stages["warm"][-1].extra.get(key)
    out["diverged"] = out["warm/diverged"] or out["cold/diverged"]
    return out
