"""A validated sweep spec as Ray Tune sees it: search space, searcher, scheduler, trial count.

Every trial's config carries the swept parameters as ``config["setting"]`` (dotted key -> value)
and its seed; ``trial_identity`` reads both back for each of the three layouts:

- ``grid``: ``{"trial": {"setting": ..., "seed": ...}}``, one ``tune.grid_search`` entry per trial
  (settings outer, seeds inner, cut at ``run_cap``), so the order is fixed and the cap exact.
- ``random``: ``{"setting": {key: Tune domain}, "seed": tune.grid_search(seeds)}`` with
  ``BasicVariantGenerator(constant_grid_search=True)``: each drawn setting runs on every seed
  (without that flag Tune would draw a new setting per seed, and a setting's seeds could not be
  averaged). ``run_cap // len(seeds)`` settings are drawn, so at most ``run_cap`` trials run;
  without ``run_cap``, settings are drawn until the sweep is stopped (``num_samples`` -1). A
  distribution Tune lacks is a ``WandbDomain``: a uniform variable through W&B's transform
  (``ParameterSpec.ppf``).
- ``bayes``: Optuna TPE over ``BayesSpace`` (each parameter's underlying variable: the uniform
  variable of its transform, an integer, or a choice), its study in ``<run_dir>/optuna.db`` (so a
  resumed run continues it). With several seeds a ``Repeater`` runs each suggested setting on
  every seed (``config["__trial_index__"]`` picks the seed) and tells Optuna the mean over seeds.
  With seeds until decided, bayes runs in rounds instead (``wssweep.optuna_rounds``), each
  trial in the grid layout.

A trial whose metric is missing, ``None`` or not finite (a diverged arm reports ``gap: None``) never
crashes the search: Optuna records it as failed (or, with ``metric.impute``, is told W&B's imputed
value), the repeat mean skips it, the scheduler ignores the result.

``early_terminate`` (W&B hyperband) is ``GapHyperbandScheduler`` over ``stages_done``, the count
of stages a trial has finished, which the trial reports (with the running metric) after every
stage: W&B's bands (``EarlyTerminateSpec.bands``) and W&B's rule (``hyperband_stops``: a trial
is compared at the last band it reached with the top 1/eta there; ``strict`` compares its value
at the band, else its best). ``metric.target`` is ``TargetStopper`` (``SearchPlan.stopper``).

Ray is imported only where a Tune object is built, so ``describe`` (``wssweep validate``) stays
fast.

Example:
    >>> from wssweep.spec import SweepSpec
    >>> spec = SweepSpec.model_validate({"experiment": {}, "seeds": [0, 1],
    ...     "parameters": {"lr": {"values": [0.1, 0.3]}, "shrink": {"value": 0.5}}})
    >>> [(t["setting"]["lr"], t["seed"]) for t in grid_trials(spec)]
    [(0.1, 0), (0.1, 1), (0.3, 0), (0.3, 1)]
    >>> trial_identity({"setting": {"lr": 0.1}, "__trial_index__": 1}, seeds=[5, 6])
    ({'lr': 0.1}, 6)
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import numbers
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wssweep.comparisons import cold_keys, problem_keys
from wssweep.config import ExperimentConfig
from wssweep.record import OPTUNA_DB
from wssweep.sequential import DESIGN_NAME
from wssweep.spec import (
    U_EDGE,
    UNBOUNDED,
    ParameterSpec,
    ResolvedSweep,
    SweepSpec,
    experiment_from_mapping,
)

if TYPE_CHECKING:
    from ray.tune import Stopper
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import SearchAlgorithm, Searcher

#: The trial reports this monotone counter of finished stages; the early termination's time axis.
TIME_ATTR = "stages_done"
#: Where the Repeater puts a trial's repeat index (``ray.tune.search.repeater.TRIAL_INDEX``).
TRIAL_INDEX = "__trial_index__"
#: A group entry's flag: it claims its cold arms at its start (``run_group``'s
#: ``claim_cold_arms``); absent means it does.
CLAIMS_COLD = "claims_cold_arms"
#: Fixed seeds, so the same spec draws the same settings every time.
RANDOM_STATE = 0
OPTUNA_SEED = 0


@dataclass
class SearchPlan:
    """What ``Tuner`` needs. ``search_alg`` and ``scheduler`` are ``None`` when Tune's default fits.

    ``param_space`` holds no unresolved domain when ``search_alg`` carries its own space (bayes),
    as Tune requires. The scheduler accepts ``metric``/``mode`` in ``TuneConfig`` too, as long as
    they match.
    """

    param_space: dict[str, Any]
    num_samples: int  # -1: until stopped (random and bayes without run_cap)
    search_alg: Searcher | SearchAlgorithm | None
    scheduler: TrialScheduler | None
    metric: str
    mode: str
    total_trials: int | None  # None: until stopped
    # metric.target: ``tune.RunConfig(stop=plan.stopper)`` ends the sweep once a finished trial
    # reaches it (``TargetStopper``); None without a target.
    stopper: Stopper | None = None


def _usable(value: Any) -> bool:
    """A metric value the searchers and schedulers can compare: a finite real number."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def hyperband_stops(history: dict[int, float], histories: Iterable[dict[int, float]],
                    bands: list[int], eta: float, strict: bool) -> bool:
    """W&B's hyperband rule (wandb/sweeps hyperband_stopping.py) for one running trial.

    ``history`` maps finished stages to the trial's metric, signed so that lower is better;
    ``histories`` holds every trial's, this one's included. The band is the last one the trial
    has reached; the threshold is the value ranked ``int(n / eta)`` (from the best) among the n
    trials that reached it; the trial stops when its value at the band (``strict``, W&B's
    default) or its best so far is worse.

    Example:
        >>> runs = [{1: 10.0, 2: 9.0}, {1: 10.0, 2: 8.0}, {1: 10.0, 2: 7.0}]
        >>> [hyperband_stops(h, runs, [1, 2], 2, strict=True) for h in runs]
        [True, False, False]
    """
    reached = [band for band in bands if band <= max(history)]
    if not reached:
        return False
    band = reached[-1]
    at_band = sorted(h[band] for h in histories if band in h)
    threshold = at_band[int(1.0 / eta * len(at_band))]
    value = history.get(band, min(history.values())) if strict else min(history.values())
    return value > threshold


def _define_ray_classes() -> None:
    """Define the Ray subclasses below on first use (importing Ray takes seconds)."""
    if "SafeOptunaSearch" in globals():
        return
    from ray.tune import Stopper
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.sample import Domain, _BackwardsCompatibleNumpyRng

    class SafeOptunaSearch(OptunaSearch):
        """OptunaSearch that survives a trial without a usable metric (diverged, ``None``).

        Ray 2.60's OptunaSearch passes ``None`` to ``Trial.report`` (a ``TypeError`` that stops
        the sweep) and tells Optuna NaN (left hanging as RUNNING); here such a trial is recorded
        as FAIL and its intermediate results are skipped; with ``impute`` (W&B's
        ``metric.impute``) Optuna is told W&B's imputed value instead (``imputed``).
        """

        impute: str | None = None

        def record_value(self, trial_id: str, value: float) -> None:
            """Keep a reported value of the trial (what W&B's imputation reads)."""
            self.__dict__.setdefault("_wss_histories", {}).setdefault(trial_id, []).append(value)

        def imputed(self, trial_id: str) -> float:
            """W&B's value for a failed run (bayes_search.impute): worst, the worst any finished
            trial reached; best, this trial's best; latest, its last value; 0 without one."""
            histories = self.__dict__.get("_wss_histories", {})
            done = self.__dict__.get("_wss_done", set())
            lower = self.mode == "min"
            if self.impute == "worst":
                worst = [max(h) if lower else min(h) for t, h in histories.items()
                         if t in done and h]
                return (max(worst) if lower else min(worst)) if worst else 0.0
            own = histories.get(trial_id) or []
            if not own:
                return 0.0
            if self.impute == "best":
                return min(own) if lower else max(own)
            return own[-1]

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if _usable(result.get(self.metric)):
                self.record_value(trial_id, float(result[self.metric]))
                super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            self.__dict__.setdefault("_wss_done", set()).add(trial_id)
            value = (result or {}).get(self.metric)
            if _usable(value):
                self.record_value(trial_id, float(value))
            elif self.impute is not None and trial_id in self._ot_trials:
                result, error = {self.metric: self.imputed(trial_id)}, False
                # the study says which of its values no trial produced
                self._ot_trials[trial_id].set_user_attr("imputed", self.impute)
            elif result is not None:
                result, error = None, True
            super().on_trial_complete(trial_id, result, error)

    class SafeRepeater(Repeater):
        """Repeater whose mean over seeds skips seeds without a usable metric.

        Ray's Repeater raises on a ``None`` score; here it counts as missing (NaN), so the mean is
        over the seeds that produced a number, and NaN (failed for Optuna) when none did. Each
        seed's running values reach the searcher under its setting's trial (for ``impute``).
        """

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            group = self._trial_id_to_group.get(trial_id)
            value = result.get(self.searcher.metric)
            if group is not None and _usable(value) and hasattr(self.searcher, "record_value"):
                self.searcher.record_value(group.primary_trial_id, float(value))

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              **kwargs: Any) -> None:
            metric = self.searcher.metric
            if result is not None and not _usable(result.get(metric)):
                result = {k: v for k, v in result.items() if k != metric}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # mean of all-NaN scores
                super().on_trial_complete(trial_id, result, **kwargs)

    class GapASHAScheduler(ASHAScheduler):
        """ASHA that skips results without a usable metric and accepts a matching metric/mode
        from ``TuneConfig`` (Ray's raises when the scheduler already has them). No longer built
        (hyperband is ``GapHyperbandScheduler``); kept so that a run started with it resumes."""

        def set_search_properties(self, metric: str | None, mode: str | None,
                                  **spec: Any) -> bool:
            if metric in (None, self._metric) and mode in (None, self._mode):
                return True
            return super().set_search_properties(metric, mode, **spec)

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if not _usable(result.get(self._metric)):
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            if not _usable(result.get(self._metric)):
                self._trial_info.pop(trial.trial_id, None)
                return
            super().on_trial_complete(tune_controller, trial, result)

    class GapHyperbandScheduler(FIFOScheduler):
        """W&B's hyperband early termination (``hyperband_stops``) at exactly its bands, over
        ``TIME_ATTR`` (finished stages). Every trial's history is kept, finished ones too, as
        W&B's thresholds read every run; a result without a usable metric is skipped."""

        # Each stage's result on its own, so a trial is stopped at the band, not later.
        _supports_buffered_results = False

        def __init__(self, time_attr: str, metric: str, mode: str, bands: list[int],
                     eta: float, strict: bool) -> None:
            super().__init__()
            self._time_attr, self._metric, self._mode = time_attr, metric, mode
            self.bands, self.eta, self.strict = list(bands), eta, strict
            self._histories: dict[str, dict[int, float]] = {}

        def set_search_properties(self, metric: str | None, mode: str | None,
                                  **spec: Any) -> bool:
            return metric in (None, self._metric) and mode in (None, self._mode)

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            value, stage = result.get(self._metric), result.get(self._time_attr)
            if not _usable(value) or not _usable(stage):
                return TrialScheduler.CONTINUE
            sign = 1.0 if self._mode == "min" else -1.0
            history = self._histories.setdefault(trial.trial_id, {})
            history[int(stage)] = sign * float(value)
            if hyperband_stops(history, self._histories.values(), self.bands, self.eta,
                               self.strict):
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

        def debug_string(self) -> str:
            return f"W&B hyperband at {TIME_ATTR} {self.bands[:6]}"

    class TargetStopper(Stopper):
        """W&B's ``metric.target``: the sweep ends once a finished trial's objective reaches it
        (a trial's last report carries ``final``; a group's is its members' mean)."""

        def __init__(self, metric: str, mode: str, target: float) -> None:
            self.metric, self.mode, self.target = metric, mode, target
            self.reached = False

        def __call__(self, trial_id: str, result: dict) -> bool:
            value = result.get(self.metric)
            if result.get("final") and _usable(value):
                met = value <= self.target if self.mode == "min" else value >= self.target
                self.reached = self.reached or met
            return False

        def stop_all(self) -> bool:
            return self.reached

    class WandbDomain(Domain):
        """A W&B distribution as a Tune domain: a uniform variable u drawn from the parameter's
        ``u_range``, transformed by ``ParameterSpec.ppf`` (q rounding included)."""

        def __init__(self, param: ParameterSpec) -> None:
            self.param = param

        def sample(self, config: Any = None, size: int = 1, random_state: Any = None) -> Any:
            if not isinstance(random_state, _BackwardsCompatibleNumpyRng):
                random_state = _BackwardsCompatibleNumpyRng(random_state)
            lo, hi = self.param.u_range
            items = [copy.deepcopy(self.param.ppf(float(u)))
                     for u in random_state.uniform(lo, hi, size=size)]
            return items if len(items) > 1 else items[0]

        def is_valid(self, value: Any) -> bool:
            return True

        def domain_str(self) -> str:
            return domain_text(self.param)

    for cls in (SafeOptunaSearch, SafeRepeater, GapASHAScheduler, GapHyperbandScheduler,
                TargetStopper, WandbDomain):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__  # importable by name, so Tune can pickle instances
        globals()[cls.__name__] = cls


_RAY_CLASSES = ("SafeOptunaSearch", "SafeRepeater", "GapASHAScheduler", "GapHyperbandScheduler",
                "TargetStopper", "WandbDomain")


def _ray_class(name: str) -> type:
    _define_ray_classes()
    return globals()[name]


def __getattr__(name: str) -> Any:
    # `from wssweep.space import SafeOptunaSearch` (and unpickling) defines them on demand.
    if name in _RAY_CLASSES:
        return _ray_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tune_domain(param: ParameterSpec) -> Any:
    """A parameter as a Tune domain (or the constant). W&B's int_uniform max is inclusive; a
    distribution Tune lacks draws a uniform variable and transforms it (``WandbDomain``)."""
    from ray import tune

    kind = param.kind
    if kind == "constant":
        return copy.deepcopy(param.value)
    if kind == "categorical":
        return tune.choice(copy.deepcopy(param.values))
    if kind == "uniform":
        return tune.uniform(param.min, param.max)
    if kind == "int_uniform":
        return tune.randint(param.min, param.max + 1)  # Tune's upper bound is exclusive
    if kind == "log_uniform_values":
        return tune.loguniform(param.min, param.max)
    if param.tune_quniform:
        return tune.quniform(param.min, param.max, param.q)
    return _ray_class("WandbDomain")(param)


class BayesSpace:
    """Optuna's search space for bayes, define-by-run: TPE sees each parameter's underlying
    variable (an integer for int_uniform, the choice for categorical values, else the uniform
    variable u of ``ParameterSpec.ppf``) and the trial's config gets the transformed value
    (Ray's OptunaSearch lets the returned dict override what was suggested under each name).
    Seeded by the searcher, so a spec gets the same suggestions every time.
    """

    def __init__(self, parameters: dict[str, ParameterSpec], seeds: list[int] = ()) -> None:
        self.parameters = {k: p for k, p in parameters.items() if p.kind != "constant"}
        self.seeds = list(seeds)

    def __call__(self, trial: Any) -> dict[str, Any]:
        values = {f"setting/{key}": bayes_value(trial, f"setting/{key}", param)
                  for key, param in self.parameters.items()}
        # optuna-dashboard shows TPE's underlying variables; these say what ran, on which seeds
        trial.set_user_attr("setting", {k: values[f"setting/{k}"] for k in self.parameters})
        trial.set_user_attr("seeds", self.seeds)
        return values


def _plain_choices(values: list[Any]) -> bool:
    """Whether Optuna can take ``values`` as its categories themselves: scalars no two of which
    are equal (Optuna finds a choice by ==, so true and 1, or 1 and 1.0, would be one)."""
    return all(v is None or isinstance(v, str | int | float) for v in values) and all(
        not any(v == w for w in values[:i]) for i, v in enumerate(values))


def bayes_value(trial: Any, name: str, param: ParameterSpec) -> Any:
    """Suggest ``param``'s underlying variable from Optuna's ``trial`` and return its value."""
    if param.kind == "categorical":
        if _plain_choices(param.values):
            return trial.suggest_categorical(name, param.values)
        index = trial.suggest_categorical(name, list(range(len(param.values))))
        return copy.deepcopy(param.values[index])  # lists, mappings, repeats: by position
    if param.kind == "int_uniform":
        return trial.suggest_int(name, param.min, param.max)
    lo, hi = param.u_range
    return copy.deepcopy(param.ppf(trial.suggest_float(name, lo, hi)))


def grid_settings(
    spec: SweepSpec, experiment: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The grid's settings: the cartesian product of each parameter's values, in spec order.

    Given the ``experiment``, a setting that runs the same experiment as an earlier one
    (``ExperimentConfig.canonical``: it differs only in keys the experiment never reads, such as
    the noise convention of a noiseless shrink-and-perturb) is dropped.
    """
    keys = list(spec.parameters)
    choices = [p.candidates(grid=True) for p in spec.parameters.values()]
    settings = [dict(zip(keys, copy.deepcopy(combo), strict=True))
                for combo in itertools.product(*choices)]
    if experiment is None:
        return settings
    seen, kept = set(), []
    for setting in settings:
        cfg = experiment_from_mapping(experiment, setting=setting)
        key = json.dumps(cfg.canonical(), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append(setting)
    return kept


def grid_trials(spec: SweepSpec, experiment: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every grid trial as ``{"setting": ..., "seed": s}``: settings outer, seeds inner, then
    cut at ``run_cap`` when one is given. ``experiment`` drops duplicate settings
    (``grid_settings``)."""
    trials = [{"setting": copy.deepcopy(setting), "seed": seed}
              for setting in grid_settings(spec, experiment) for seed in spec.first_seeds]
    return trials[: spec.run_cap] if spec.run_cap is not None else trials


def trial_identity(config: dict[str, Any], seeds: list[int]) -> tuple[dict[str, Any], int]:
    """``(setting, seed)`` of a trial's config, for the three layouts this module builds.

    ``{"trial": {"setting", "seed"}}`` (grid), ``{"setting", "seed"}`` (random; bayes with one
    seed) and ``{"setting", "__trial_index__"}`` (bayes with several seeds: the index into
    ``seeds``). Without any of them the seed is ``seeds[0]``.
    """
    if "trial" in config:
        config = config["trial"]
    setting = {key: _plain(value) for key, value in (config.get("setting") or {}).items()}
    if TRIAL_INDEX in config:
        return setting, int(seeds[int(config[TRIAL_INDEX])])
    if "seed" in config:
        return setting, int(config["seed"])
    return setting, int(seeds[0])


def trial_members(config: dict[str, Any], seeds: list[int]) -> list[tuple[dict[str, Any], int]]:
    """``(setting, seed)`` of each member of a trial's config: a group's
    (``{"trial": {"group": [{"setting", "seed"}, ...]}}``, or ``{"setting", "seeds": [...]}`` for
    the seeds of a drawn setting), else the one of ``trial_identity``.

    Example:
        >>> trial_members({"setting": {"lr": 0.1}, "seeds": [3, 4]}, seeds=[3, 4])
        [({'lr': 0.1}, 3), ({'lr': 0.1}, 4)]
    """
    inner = config.get("trial", config)
    if "group" in inner:
        return [trial_identity(member, seeds) for member in inner["group"]]
    if "seeds" in config:
        setting = trial_identity(config, seeds)[0]
        return [(setting, int(seed)) for seed in config["seeds"]]
    return [trial_identity(config, seeds)]


def claims_cold_arms(config: dict[str, Any]) -> bool:
    """Whether the group of a trial's ``config`` claims its cold arms at its start (the
    ``CLAIMS_COLD`` flag ``fused_trials`` sets; a search's groups, and older runs, do)."""
    return bool(config.get("trial", config).get(CLAIMS_COLD, True))


def fused_trials(trials: list[dict[str, Any]], fuse: str | bool,
                 experiment: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``trials`` (``{"setting", "seed"}`` each) as the entries of a grid: each alone
    (``fuse`` false), or groups (``{"group": [...]}``) of the seeds of one setting
    (``"seeds"``), or of every setting that can share one fused model (``"settings"``: the same
    ``ExperimentConfig.fusion_signature``). A group of one stays a plain trial; an experiment
    that trains no network (nqm) is never grouped.

    A group claims its cold arms at its start only if no earlier entry shares one of its
    baselines (``ExperimentConfig.baseline_recipe`` and seed): the first-listed setting's group
    trains them, and the others, which start beside it, train their warm arms and wait (or train
    at their end what nobody claimed). So which group trains a round's cold arms is the spec's
    order, not a race: list first the setting whose warm arms are cheapest.

    Example:
        >>> trials = [{"setting": {"shrink": x}, "seed": s} for x in (0.1, 0.3) for s in (0, 1)]
        >>> [len(e.get("group", [e])) for e in fused_trials(trials, "seeds")]
        [2, 2]
        >>> [e[CLAIMS_COLD] for e in fused_trials(trials, "seeds")]  # one baseline per seed
        [True, False]
        >>> [len(e.get("group", [e])) for e in fused_trials(trials, "settings")]
        [4]
    """
    if not fuse:
        return [dict(t) for t in trials]
    groups: dict[str, list[dict[str, Any]]] = {}
    recipes: dict[str, set[str]] = {}  # group -> its members' baselines
    for trial in trials:
        cfg = experiment_from_mapping(experiment or {},
                                      setting={**trial["setting"], "seed": trial["seed"]})
        signature = cfg.fusion_signature()
        if signature is None:
            by = json.dumps([id(trial)])  # not fusable: alone
        elif fuse == "settings":
            by = signature
        else:
            by = json.dumps([signature, trial["setting"]], sort_keys=True, default=str)
        groups.setdefault(by, []).append(dict(trial))
        recipes.setdefault(by, set()).add(cfg.baseline_recipe())  # the seed is in it
    entries, seen = [], set()
    for by, members in groups.items():
        entries.append(members[0] if len(members) == 1 else
                       {"group": members, CLAIMS_COLD: not recipes[by] & seen})
        seen |= recipes[by]
    return entries


def applied_fuse(spec: SweepSpec, experiment: dict[str, Any] | None = None) -> str | bool:
    """``resources.fuse`` as it applies: nothing to fuse without networks (kind: nqm), and a
    search draws its settings one at a time, so only a grid's settings can share a group."""
    if experiment_from_mapping(experiment or {}).fusion_signature() is None:
        return False
    fuse = spec.resources.fuse
    return "seeds" if fuse == "settings" and spec.method != "grid" else fuse


def _plain(value: Any) -> Any:
    """NumPy scalars as Python values, so settings serialize and compare plainly."""
    return value.item() if hasattr(value, "item") and not isinstance(value, list | dict) else value


def trial_count(spec: SweepSpec, experiment: dict[str, Any] | None = None) -> int | None:
    """How many trials the sweep runs (for random and bayes: the most the cap allows); ``None``
    for a search without run_cap, which runs until stopped."""
    n_seeds = len(spec.first_seeds)
    if spec.method == "grid":
        return len(grid_trials(spec, experiment))
    if spec.until_stopped:
        return None
    return (spec.run_cap // n_seeds) * n_seeds


def build_scheduler(spec: SweepSpec) -> TrialScheduler | None:
    """W&B's hyperband for ``early_terminate``, stopping at exactly its bands (W&B's rule, its
    ``strict``); ``None`` without it."""
    et = spec.early_terminate
    if et is None:
        return None
    return _ray_class("GapHyperbandScheduler")(
        time_attr=TIME_ATTR, metric=spec.metric.objective, mode=spec.metric.mode,
        bands=et.bands(), eta=et.eta, strict=et.strict)


def build_stopper(spec: SweepSpec) -> Stopper | None:
    """``metric.target`` as a Tune stopper (``TargetStopper``); ``None`` without a target."""
    if spec.metric.target is None:
        return None
    return _ray_class("TargetStopper")(spec.metric.objective, spec.metric.mode,
                                       spec.metric.target)


def target_reached(spec: SweepSpec, rows: Iterable[dict[str, Any]]) -> bool:
    """Whether a finished trial among ``rows`` (results.csv rows or final records) reached
    ``metric.target``: a resumed sweep that had ended there has nothing left to run.

    Example:
        >>> spec = SweepSpec.model_validate({"experiment": {}, "metric": {"name": "gap",
        ...     "target": 0.5}, "parameters": {"lr": {"values": [0.1]}}})
        >>> target_reached(spec, [{"status": "completed", "val_gap": "0.75"},
        ...                       {"status": "completed", "val_gap": 0.25}])
        True
    """
    objective = spec.metric.objective
    for row in rows:
        try:
            value = float(row.get(objective))
        except (TypeError, ValueError):
            continue
        if row.get("status") == "completed" and math.isfinite(value) and spec.metric.reached(
                value):
            return True
    return False


def build_search(resolved: ResolvedSweep, run_dir: Path) -> SearchPlan:
    """The Tune search for ``resolved``; bayes keeps its Optuna study in ``run_dir``."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    spec = resolved.spec
    seeds = list(spec.first_seeds)
    metric, mode = spec.metric.objective, spec.metric.mode
    scheduler = build_scheduler(spec)
    fuse = applied_fuse(spec, resolved.experiment)
    if spec.method == "grid":
        trials = grid_trials(spec, resolved.experiment)
        entries = fused_trials(trials, fuse, resolved.experiment)
        return SearchPlan({"trial": tune.grid_search(entries)}, 1, None, scheduler, metric, mode,
                          len(trials), build_stopper(spec))
    if spec.method == "random":
        space = {key: tune_domain(param) for key, param in spec.parameters.items()}
        # Without run_cap Tune draws without end (num_samples -1) until the sweep is stopped.
        per_seed = -1 if spec.until_stopped else spec.run_cap // len(seeds)
        search_alg = BasicVariantGenerator(random_state=RANDOM_STATE, constant_grid_search=True)
        # Fused: one trial per drawn setting, its seeds its members.
        param_space = {"setting": space, **({"seeds": seeds} if fuse and len(seeds) > 1 else
                                            {"seed": tune.grid_search(seeds)})}
        return SearchPlan(param_space, per_seed, search_alg, scheduler, metric, mode,
                          trial_count(spec), build_stopper(spec))
    return _bayes_plan(spec, Path(run_dir), scheduler, fused=bool(fuse))


def _bayes_plan(spec: SweepSpec, run_dir: Path, scheduler: TrialScheduler | None,
                fused: bool) -> SearchPlan:
    """Optuna TPE over ``BayesSpace`` (each parameter's underlying variable), its study in
    ``run_dir``; several seeds run each suggestion as one group (``fused``) or through a
    Repeater. ``metric.impute`` gives failed trials W&B's imputed value."""
    import optuna

    seeds = list(spec.first_seeds)
    constants = {k: copy.deepcopy(p.value) for k, p in spec.parameters.items()
                 if p.kind == "constant"}
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{run_dir / OPTUNA_DB}")
    searcher = _ray_class("SafeOptunaSearch")(
        space=BayesSpace(spec.parameters, seeds), metric=spec.metric.objective,
        mode=spec.metric.mode, seed=OPTUNA_SEED, storage=storage, study_name=spec.name or "wssweep")
    searcher.impute = spec.metric.impute
    # Constants stay in param_space; Tune merges each suggestion into it.
    param_space: dict[str, Any] = {"setting": constants}
    search_alg: Any = searcher
    settings = -1 if spec.until_stopped else spec.run_cap // len(seeds)
    total = trial_count(spec)
    stopper = build_stopper(spec)
    if len(seeds) == 1:
        param_space["seed"] = seeds[0]
    elif fused:  # one trial per suggestion, its seeds the members; it reports their mean
        param_space["seeds"] = seeds
        return SearchPlan(param_space, settings, search_alg, scheduler, spec.metric.objective,
                          spec.metric.mode, total, stopper)
    else:
        search_alg = _ray_class("SafeRepeater")(searcher, repeat=len(seeds), set_index=True)
    num_samples = -1 if spec.until_stopped else settings * len(seeds)
    return SearchPlan(param_space, num_samples, search_alg, scheduler, spec.metric.objective,
                      spec.metric.mode, total, stopper)


def trial_resources(cpus_per_trial: float, trials_per_gpu: int | None,
                    num_gpus: float | None = None) -> dict[str, float]:
    """What each trial asks Ray for. The GPU share is dropped when the cluster has no GPU
    (``num_gpus == 0``): Ray would leave such trials pending forever."""
    resources = {"cpu": float(cpus_per_trial)}
    per_gpu = trials_per_gpu
    if per_gpu is not None and num_gpus != 0:
        resources["gpu"] = 1.0 / per_gpu
    return resources


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def domain_text(param: ParameterSpec, grid: bool = False) -> str:
    """A parameter's resolved domain in words, e.g. ``log-uniform in [0.0001, 0.1]``; in a
    ``grid``, the values W&B's grid enumerates for a range."""
    kind = param.kind
    if grid and kind in ("int_uniform", "q_uniform"):
        values = param.grid_values()
        shown = _fmt(values) if len(values) <= 8 else (
            f"[{_fmt(values[0])}, {_fmt(values[1])}, ..., {_fmt(values[-1])}]")
        how = ("min .. max" if kind == "int_uniform"
               else f"min by {_fmt(param.q)} below max, as numpy.arange")
        return f"{len(values)} values on W&B's grid ({how}): {shown}"
    if kind == "constant":
        return f"fixed at {_fmt(param.value)}"
    if kind == "categorical":
        return f"one of {_fmt(param.values)}"
    if kind == "categorical_w_probabilities":
        return "one of " + _fmt(param.values) + " with probabilities " + _fmt(param.probabilities)
    lo, hi, base = _fmt(param.min), _fmt(param.max), kind.removeprefix("q_")
    text = {
        "uniform": f"uniform in [{lo}, {hi}]",
        "int_uniform": f"integer, uniform in [{lo}, {hi}] (both ends included)",
        "log_uniform_values": f"log-uniform in [{lo}, {hi}]",
        "log_uniform": f"exp of uniform in [{lo}, {hi}] (log-uniform in [e^{lo}, e^{hi}])",
        "inv_log_uniform": f"exp of minus uniform in [{lo}, {hi}] (in [e^-{hi}, e^-{lo}])",
        "inv_log_uniform_values": f"inverse log-uniform in [{lo}, {hi}]",
        "normal": f"normal, mean {_fmt(param.mu)}, sd {_fmt(param.sigma)}",
        "log_normal": f"log-normal, log mean {_fmt(param.mu)}, log sd {_fmt(param.sigma)}",
        "beta": f"beta, a {_fmt(param.a)}, b {_fmt(param.b)}",
    }[base]
    if kind.startswith("q_"):
        text += f", rounded to a multiple of {_fmt(param.q)}"
    if kind in UNBOUNDED:
        lo_v, hi_v = param.candidates()[0], param.candidates()[-1]
        text += f" (cut to [{_fmt(lo_v)}, {_fmt(hi_v)}], quantiles {U_EDGE:g} and 1 - {U_EDGE:g})"
    return text


def _count_text(spec: SweepSpec, experiment: dict[str, Any] | None = None) -> str:
    n_seeds, total = len(spec.first_seeds), trial_count(spec, experiment)
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    drawn = "sampled at random" if spec.method == "random" else "suggested by Optuna TPE"
    if total is None:
        return (f"until stopped (settings {drawn} x {seeds}, no run_cap): stop it with Ctrl-C or "
                "`wssweep stop RUN_DIR` from another shell; `wssweep resume RUN_DIR` continues it")
    if spec.method == "grid":
        n_settings = len(grid_settings(spec, experiment))
        text = f"{total} ({n_settings} setting{'s' if n_settings != 1 else ''} x {seeds}"
        n_product = math.prod(len(p.candidates(grid=True)) for p in spec.parameters.values())
        if n_settings < n_product:
            text += (f"; {n_product - n_settings} of the {n_product} combinations dropped as "
                     "repeats (they differ only in keys their experiment does not read)")
        if spec.run_cap is not None and spec.run_cap < n_settings * n_seeds:
            text += f", cut to run_cap {spec.run_cap}"
        return text + ")"
    return (f"{total} ({total // n_seeds} settings {drawn} x {seeds}; run_cap {spec.run_cap})")


def _resources_lines(spec: SweepSpec, num_cpus: float | None, num_gpus: float | None) -> list[str]:
    res = spec.resources
    cpus = f"{res.cpus_per_trial:g} CPU"
    if res.trials_per_gpu is None:
        gpu = "no GPU"
    else:
        gpu = f"{1 / res.trials_per_gpu:g} GPU (1/{res.trials_per_gpu}: {res.trials_per_gpu} " \
              "trials share a GPU)"
    # Only a lost node or worker is retried; an exception of the science is the trial's result.
    retries = ("retried forever after a lost node or worker" if res.max_failures < 0 else
               f"up to {res.max_failures} retries after a lost node or worker" if res.max_failures
               else "no retries after a lost node or worker")
    lines = [f"Resources per trial: {cpus}, {gpu}; {retries}"]
    if res.trials_per_gpu is not None and num_gpus == 0:
        lines.append("  note: the cluster has no GPU, so the GPU request will be dropped and "
                     "trials run on CPU")
    if num_cpus is not None:
        at_once = math.floor(num_cpus / res.cpus_per_trial + 1e-9)
        if res.trials_per_gpu is not None and num_gpus:
            at_once = min(at_once, math.floor(num_gpus * res.trials_per_gpu + 1e-9))
        where = f"{num_cpus:g} CPUs" + (f", {num_gpus:g} GPUs" if num_gpus is not None else "")
        lines.append(f"Trials at once: up to {at_once} on this cluster ({where})")
    return lines


def describe(resolved: ResolvedSweep, num_cpus: float | None = None,
             num_gpus: float | None = None) -> str:
    """What ``wssweep validate`` prints: the resolved search, its trial count and resources."""
    spec = resolved.spec
    cfg = ExperimentConfig.model_validate(resolved.experiment)
    what = (f"kind nqm, method {cfg.nqm.method}" if cfg.kind == "nqm" else
            f"{cfg.data.name} / {cfg.model.name}, {cfg.protocol.kind} protocol")
    lines = [f"Sweep: {spec.name or resolved.path.stem} ({resolved.path})"]
    if spec.description:
        lines.append(f"Description: {spec.description}")
    lines.append(f"Experiment: {resolved.experiment_source} ({what})")
    for text in resolved.overrides:
        lines.append(f"  --set {text}")
    lines.append(f"Method: {spec.method}")
    objective = spec.metric.objective
    selected = (f", selected on {objective} (the validation split; test accuracy is only "
                "reported)" if objective != spec.metric.name else "")
    lines.append(f"Metric: {spec.metric.name} ({spec.metric.goal}){selected}")
    if spec.metric.target is not None:
        lines.append(f"  target: the sweep ends once a finished trial's {objective} is "
                     f"{'at most' if spec.metric.mode == 'min' else 'at least'} "
                     f"{_fmt(spec.metric.target)}")
    if spec.metric.impute is not None:
        lines.append(f"  impute: a failed trial tells Optuna {spec.metric.impute} (W&B's "
                     "imputation)" + ("" if spec.method == "bayes" else "; used by bayes only"))
    weakens = cold_keys(list(spec.parameters))
    if spec.metric.name == "gap" and weakens and (spec.method != "grid" or spec.early_terminate):
        # The search compares each setting with its own cold arm (the same-recipe gap).
        lines.append(f"  note: the search selects on each setting's gap to its own cold arm, and "
                     f"it varies {', '.join(weakens)}, which the cold arm depends on: a weak cold "
                     "arm makes a small gap. The verdicts compare with the reference cold start "
                     "all the same; to search for the best warm start, use metric "
                     "warm/test_acc (maximize)")
    if spec.parameters:
        lines.append("Parameters:")
        width = max(len(k) for k in spec.parameters)
        lines += [f"  {key:<{width}}  {domain_text(p, grid=spec.method == 'grid')}"
                  for key, p in spec.parameters.items()]
    else:
        lines.append("Parameters: none (the experiment as it is)")
    plan = spec.seed_plan
    lines.append(f"Seeds: {_fmt(spec.first_seeds)}" if plan is None else
                 f"Seeds: until decided: {plan.min} everywhere, then doubling where undecided, "
                 f"up to {plan.max} ({DESIGN_NAME})")
    et = spec.early_terminate
    if et is not None:
        bands = et.bands()
        shown = ", ".join(str(b) for b in bands[:5]) + (" ..." if len(bands) > 5 else "")
        rule = "its value at the band" if et.strict else "its best value so far"
        lines.append(f"Early termination: W&B hyperband on {TIME_ATTR}, bands at {shown} "
                     f"finished stages; a trial stops when {rule} is worse than the top "
                     f"1/{_fmt(et.eta)} at its last band (strict: {str(et.strict).lower()})")
        if spec.method == "bayes" and len(spec.first_seeds) > 1 and not applied_fuse(
                spec, resolved.experiment):
            lines.append("  note: hyperband may stop some seeds of a setting early; Optuna then "
                         "gets the mean over seeds of their last reported values")
    trials = f"Trials: {_count_text(spec, resolved.experiment)}"
    settings = (trial_count(spec, resolved.experiment) or 0) // len(spec.first_seeds)
    if plan is not None and spec.method == "bayes":
        from wssweep.optuna_rounds import SEARCH_ROUNDS, batch_size

        trials = (f"Trials: at most {settings * plan.max} ({settings} settings suggested by "
                  f"Optuna TPE over {SEARCH_ROUNDS} rounds, {batch_size(settings)} a round, "
                  "each draw told every setting's mean over the seeds it has run so far; "
                  f"run_cap {spec.run_cap} on the first {plan.min} seeds)")
    elif plan is not None:  # seeds until decided: the first round; more where undecided
        trials += f" in the first round, at most {settings * plan.max} in all"
    lines.append(trials)
    lines.append(_groups_text(spec, resolved.experiment))
    lines += _resources_lines(spec, num_cpus, num_gpus)
    wb = spec.wandb
    entity = f", entity {wb.entity}" if wb.entity else ""
    lines.append(f"W&B: project {wb.project}{entity}, mode {wb.mode}"
                 + (f", tags {_fmt(wb.tags)}" if wb.tags else ""))
    lines.append(f"Gap tolerance: {spec.gap_tolerance:g} points")
    lines.append(f"Verdicts: {_verdict_text(spec)}")
    lines += [f"  note: {note}" for note in spec.notes]
    return "\n".join(lines)


def _groups_text(spec: SweepSpec, experiment: dict[str, Any]) -> str:
    """How the trials are grouped into Tune trials (``resources.fuse``)."""
    fuse = applied_fuse(spec, experiment)
    if not fuse:
        why = (" (kind nqm trains no network)" if spec.resources.fuse
               else " (resources.fuse: false)")
        return f"Groups: none, each (setting, seed) is its own Tune trial, trained alone{why}"
    if fuse == "seeds":
        text = ("Groups: the seeds of each setting train as one fused model, one Tune trial per "
                "setting (resources.fuse: seeds); the early termination and Optuna compare the "
                "seeds' mean")
        if spec.resources.fuse == "settings":
            text += "; fuse: settings applies to a grid only (a search draws settings one by one)"
        return text
    if spec.method == "grid" and spec.seed_plan is None:
        sizes = [len(e.get("group", [e])) for e in
                 fused_trials(grid_trials(spec, experiment), fuse, experiment)]
        count = f"{len(sizes)} Tune trial{'s' if len(sizes) != 1 else ''} of {_fmt(sizes)} members"
    else:
        count = "one Tune trial per round and model shape"
    return (f"Groups: every setting that shares the model's shapes trains as one fused model "
            f"(resources.fuse: settings): {count}")


def _verdict_text(spec: SweepSpec) -> str:
    """How the map will judge: against which cold start, by which test and correction."""
    from wssweep.verdicts import CORRECTION_NAMES, DEFAULT_ALPHA, TEST_NAME

    varying = [k for k, p in spec.parameters.items() if p.distribution != "constant"]
    problems = problem_keys(varying)
    keys = [k for k in cold_keys(varying) if k not in problems]
    if spec.reference:
        ref = "the cold start the spec names, " + ", ".join(
            f"{k}={v}" for k, v in spec.reference.items())
    elif keys:
        ref = (f"the best cold recipe by mean validation accuracy over seeds (among the values "
               f"of {', '.join(keys)})")
    else:
        ref = ("the sweep's one cold recipe (it varies nothing the cold arm depends on)"
               if not problems else "the cold arm of its own problem")
    if problems:
        ref += (f", for each value of {', '.join(problems)} (the problem, not the recipe: a "
                "warm start is judged against cold starts of its own problem)")
    test = (f"{TEST_NAME}s at {DEFAULT_ALPHA:g}, corrected across settings by "
            f"{CORRECTION_NAMES[spec.correction]}" if spec.seed_plan is None
            else f"{DESIGN_NAME}, at {DEFAULT_ALPHA:g} in all")
    return f"each warm start against {ref}, paired per seed; {test}"
