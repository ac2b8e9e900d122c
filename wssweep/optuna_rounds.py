"""Bayes with seeds until decided: Optuna draws the settings over rounds and sees, at every round,
each setting's current estimate — its objective's mean over every seed it has run so far.

A plain bayes sweep tells Optuna each setting's mean over its seeds once (Ray's ``Repeater``).
Under seeds until decided a setting's estimate changes as the rounds add seeds to it, and a
finished Optuna trial cannot be told a new value; so before each round the sweep's study
(``RUN_DIR/optuna.db``, under the spec's name) is written anew from the final records, one
trial per setting drawn so far with its current mean (``FAIL`` where no seed produced a value),
and Optuna's TPE is asked for the round's new settings from it. The settings drawn are kept in
``RUN_DIR/rounds/settings.json`` before their trials start, so ``resume`` runs the same ones.

Everything here is a function of the final records and that file: a resumed sweep asks what
the uninterrupted one would have, and nothing finished is asked for again.

Example:
    >>> rows = [{"lr": 0.01, "seed": 0, "status": "completed", "val_gap": 2.0},
    ...         {"lr": 0.01, "seed": 1, "status": "completed", "val_gap": 4.0},
    ...         {"lr": 0.1, "seed": 0, "status": "error", "val_gap": None}]
    >>> estimates(rows, [{"lr": 0.01}, {"lr": 0.1}], ["lr"], "val_gap")
    [(3.0, 2), (None, 0)]
    >>> [batch_size(cap) for cap in (1, 4, 10)]
    [1, 1, 3]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wssweep.cells import cell_text, to_float
from wssweep.comparisons import finished
from wssweep.files import atomic_write
from wssweep.record import RunDir, SweepRecord
from wssweep.space import OPTUNA_SEED, tune_domain

if TYPE_CHECKING:
    import optuna

#: A bayes search's settings arrive over this many rounds, so the later draws see the seeds the
#: rounds have added to the earlier ones.
SEARCH_ROUNDS = 4
#: The user attribute of each study trial: how many seeds its value is the mean of.
SEEDS_ATTR = "n_seeds"


def settings_cap(sweep: SweepRecord) -> int:
    """How many settings the search draws: ``run_cap`` counts trials of the first seeds."""
    assert sweep.seed_plan is not None
    return max(1, int(sweep.spec["run_cap"]) // sweep.seed_plan.min_seeds)


def batch_size(cap: int) -> int:
    """New settings per round: the cap spread over ``SEARCH_ROUNDS`` rounds."""
    return max(1, math.ceil(cap / SEARCH_ROUNDS))


def estimates(rows: Sequence[dict[str, Any]], settings: Sequence[dict[str, Any]],
              swept: Sequence[str], objective: str) -> list[tuple[float | None, int]]:
    """Each setting's mean ``objective`` over its finished seeds that produced a finite value,
    and how many those are (``None, 0`` when none did)."""
    def ident(values: dict[str, Any]) -> tuple[str, ...]:
        return tuple(cell_text(values.get(k)) for k in swept)

    values: dict[tuple[str, ...], list[float]] = {ident(s): [] for s in settings}
    for row in rows:
        value = to_float(row.get(objective))
        if finished(row) and ident(row) in values and value is not None and math.isfinite(value):
            values[ident(row)].append(value)
    out = []
    for setting in settings:
        got = values[ident(setting)]
        out.append((sum(got) / len(got) if got else None, len(got)))
    return out


def distributions(sweep: SweepRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The swept keys Optuna samples (as Optuna distributions, the same conversion a plain bayes
    sweep uses) and the constant ones."""
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.sample import Domain

    from wssweep.spec import ParameterSpec

    space = {key: tune_domain(ParameterSpec.model_validate(param))
             for key, param in sweep.spec["parameters"].items()}
    domains = {k: v for k, v in space.items() if isinstance(v, Domain)}
    constants = {k: v for k, v in space.items() if not isinstance(v, Domain)}
    return OptunaSearch.convert_search_space(domains), constants


def current_study(sweep: SweepRecord, rows: Sequence[dict[str, Any]],
                  settings: Sequence[dict[str, Any]], dists: dict[str, Any]) -> optuna.Study:
    """The sweep's study written anew: one trial per drawn setting with its current estimate."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{RunDir(sweep.run_dir).optuna_db}")
    name = sweep.spec.get("name") or sweep.name
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(
        study_name=name, storage=storage,
        direction="minimize" if sweep.mode == "min" else "maximize",
        # Seeded by how many settings were drawn before: reproducible, and no draw repeats the
        # random start-up points of an earlier one.
        sampler=optuna.samplers.TPESampler(seed=OPTUNA_SEED + len(settings)))
    trials = []
    for setting, (value, n) in zip(settings, estimates(rows, settings, sweep.swept,
                                                       sweep.objective), strict=True):
        trials.append(optuna.trial.create_trial(
            params={k: setting[k] for k in dists}, distributions=dists,
            value=value, user_attrs={SEEDS_ATTR: n},
            state=optuna.trial.TrialState.COMPLETE if value is not None
            else optuna.trial.TrialState.FAIL))
    study.add_trials(trials)
    return study


def drawn_settings(sweep: SweepRecord) -> list[dict[str, Any]]:
    """The settings drawn so far (``RUN_DIR/rounds/settings.json``); none before the first."""
    path = RunDir(sweep.run_dir).drawn
    return json.loads(path.read_text()) if path.is_file() else []


def draw(sweep: SweepRecord, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The settings of the next round: those drawn before, plus up to ``batch_size`` new ones
    that Optuna suggests from the current estimates, until ``settings_cap``. The study is
    rewritten even when none is new, so it always holds the current estimates."""
    settings = drawn_settings(sweep)
    dists, constants = distributions(sweep)
    study = current_study(sweep, rows, settings, dists)
    cap = settings_cap(sweep)
    new = min(batch_size(cap), cap - len(settings))
    if new <= 0:
        return settings
    for _ in range(new):
        # Left RUNNING in the study until the next round rewrites it with their estimates.
        asked = study.ask(dists)
        settings.append({k: asked.params[k] if k in dists else constants[k]
                         for k in sweep.swept})
    path = RunDir(sweep.run_dir).drawn
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(json.dumps(settings, indent=1))
    return settings
