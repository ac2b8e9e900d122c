"""Run a sweep on Ray Tune: connect, build the Tuner, write results as trials finish, resume.

The driver writes the run record (``wssweep.record``: ``sweep.json`` and every path of the run
directory, laid out in docs/architecture.md) once, before the first trial, and hands it to every
trial; ``resume`` reads it back.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wssweep.checkpoint import clear_stage_checkpoints, final_records
from wssweep.errors import InputError
from wssweep.files import atomic_write, check_can_create, path_kind
from wssweep.record import GridTrial, RunDir, SeedPlanRecord, SweepRecord, WandbRecord
from wssweep.results import error_line, write_results
from wssweep.spec import NAME_PATTERN
from wssweep.verdicts import DEFAULT_ALPHA

PROGRESS_EVERY_S = 30.0  # seconds between progress lines when nothing changed
STOP_POLL_S = 0.5  # how often a running sweep looks for RUN_DIR/stop (wssweep stop)
STOP_REQUEST = 0  # in place of a signal number: the stop was asked by `wssweep stop`
ADDRESS_TIMEOUT_S = 5.0  # seconds a Ray head's port gets to accept a connection (check_address)


def loopback_env() -> None:
    """Keep Ray on this machine's loopback and quiet (docs/architecture.md): no usage stats,
    no probes."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Tune's result.json is kept (its ResultGrid reads it); its TensorBoard and CSV copies of what
    # W&B already has are not (see _tuner_parts).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Our own progress line replaces Tune's tables; its snapshot-frequency warning is noise here.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("WANDB_SILENT", "true")


def warm_map_imports() -> None:
    """Import what building the map needs (matplotlib, scipy, statsmodels: about 3 s) in a
    background thread, while the driver waits on its trials, rather than after the last one."""
    import threading

    def imports() -> None:
        import wssweep.report  # noqa: F401
        from wssweep.verdicts import corrected

        corrected([0.5], "holm")  # its statsmodels import

    threading.Thread(target=imports, name="wssweep-map-imports", daemon=True).start()


def connect(address: str | None, wandb_mode: str) -> None:
    """A local Ray (default) or the cluster at ``address`` — the same code path either way.

    The W&B environment is set here, in the driver, before Ray starts, so workers inherit it.
    """
    import ray

    from wssweep import tracking

    loopback_env()
    tracking.quiet_env()
    if wandb_mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
    if ray.is_initialized():
        return
    warm_map_imports()
    if address:
        check_address(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:  # "auto" with no Ray running here, among others
            reason = str(exc).split(". ")[0].rstrip(".")
            raise InputError("--address", f"a running Ray cluster ({reason})", address) from None
    else:
        # "local" starts a fresh Ray even if one is already running on this machine: a run
        # without --address never lands on someone else's cluster by accident.
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")


def connect_for(sweep: SweepRecord, address: str | None) -> None:
    """``connect``, then refuse a sweep whose trials this Ray can never start."""
    connect(address, sweep.wandb.mode)
    if address is None:
        check_trials_fit(sweep)


def check_trials_fit(sweep: SweepRecord) -> None:
    """On this machine's own Ray, a trial that asks for more CPUs than Ray has here is bad
    input: Tune would leave every trial pending for good, with a warning a minute. (A cluster
    may grow, so ``--address`` is left to Ray's own warning.)"""
    import ray

    cpus = max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]),
               default=0.0)
    if sweep.cpus_per_trial > cpus:
        raise InputError("resources.cpus_per_trial", f"at most the {cpus:g} CPUs Ray has on "
                         "this machine (a trial that needs more never starts)",
                         sweep.cpus_per_trial)


def check_address(address: str) -> None:
    """Refuse an ``--address`` no Ray head answers at, before ``ray.init`` waits on it for good
    (it retries a closed port every few seconds, without end). ``auto`` and ``ray://`` addresses
    are Ray's to resolve.

    Example:
        >>> check_address("127.0.0.1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        wssweep.errors.InputError: --address: expected a Ray head's HOST:PORT (...), got '127.0.0.1'
    """
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError("--address", "a Ray head's HOST:PORT (e.g. 127.0.0.1:6379, as "
                         "`ray start --head` prints it)", address)
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InputError("--address", f"the HOST:PORT of a running Ray head ({reason})",
                         address) from None


def trial_resources(sweep: SweepRecord) -> dict[str, float]:
    """Per-trial resources; a GPU request on a cluster without GPUs is dropped, with a note."""
    import ray

    from wssweep import space

    resources = space.trial_resources(sweep.cpus_per_trial, sweep.trials_per_gpu,
                                      num_gpus=ray.cluster_resources().get("GPU", 0))
    if sweep.trials_per_gpu and "gpu" not in resources:
        print("wssweep: note: trials_per_gpu is set but the Ray cluster has no GPU; "
              "trials run on CPU without a GPU request", file=sys.stderr)
    return resources


def row_from(trial_id: str, config: dict[str, Any], result: dict[str, Any] | None,
             error: str | None, sweep: SweepRecord, done: bool) -> dict[str, Any]:
    """One results.csv row from a trial's Tune config and its last reported result.

    The seed and swept values come from the config, so a trial that raised before reporting
    anything still has them.
    """
    from wssweep.space import trial_identity

    setting, seed = trial_identity(config, sweep.seeds)
    result = dict(result or {})
    if error:
        status = "error"
    elif result.get("final"):
        status = result.get("status", "completed")
    elif done:
        status = "stopped"  # ended by the scheduler (ASHA) before its last stage
    else:
        status = "running" if result else "pending"
    not_results = _not_results()
    row = {k: v for k, v in result.items() if k not in not_results
           and not k.startswith(("config/", "event"))}
    row.update(setting)
    row.update({"trial_id": trial_id, "status": status, "seed": seed,
                "error": error or result.get("error") or ""})
    return row


@functools.cache
def _not_results() -> frozenset[str]:
    """Keys of a Tune result that are not the trial's results: Tune's own bookkeeping (as
    ``ray.tune.result`` lists it), the labels of the progress records trial.py reports, and the
    marker of its final report."""
    from ray.tune import result as tune_result

    # Imported here: the science brings torch, which the driver has by now (it imports the
    # trainable) but validate and map do not need.
    from wssweep.science.experiment import PROGRESS_LABELS

    tune_keys = {*tune_result.AUTO_RESULT_KEYS, *tune_result.DEBUG_METRICS, tune_result.DONE,
                 tune_result.SHOULD_CHECKPOINT, tune_result.EXPERIMENT_TAG}
    return frozenset(tune_keys - {tune_result.TRIAL_ID}) | PROGRESS_LABELS | {"final"}


@dataclass
class ResultsWriter:
    """A Tune callback: rewrite results.csv (atomically) whenever a trial ends."""

    sweep: SweepRecord
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def callback(self):
        from ray.tune import Callback

        writer = self

        class _Writer(Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                writer.record(trial, error=None)

            def on_trial_error(self, iteration, trials, trial, **info):
                writer.record(trial, error=_trial_error(trial))

        return _Writer()

    def record(self, trial, error: str | None) -> None:
        self.rows.update(trial_rows(trial.trial_id, trial.config, trial.last_result, error,
                                    self.sweep, done=True))
        write_results(Path(self.sweep.run_dir), list(self.rows.values()), self.sweep.swept)


def row_key(row: dict[str, Any]) -> str:
    """What identifies a results.csv row (or a final record): its member, ``setting_key-seed``
    (a cell's text and a record's value give the same key); a row without its setting key (a
    trial stopped before it reported one) is its Tune trial's."""
    key = row.get("setting_key")
    return f"{key}-{row.get('seed')}" if key not in (None, "") else f"trial {row.get('trial_id')}"


def trial_rows(trial_id: str, config: dict[str, Any], result: dict[str, Any] | None,
               error: str | None, sweep: SweepRecord, done: bool) -> dict[str, dict[str, Any]]:
    """The results.csv rows of one Tune trial, keyed by member (``setting_key-seed``): a
    trial's row from its last result; a group's, one per member, from each member's final record
    (its last result is the members' mean), else with the group's status."""
    from wssweep.checkpoint import TrialStore, member_id, trial_members, unit_name

    members = trial_members(config, sweep)
    if len(members) == 1:
        _, seed, key = members[0]
        recorded = None if (result or {}).get("final") else TrialStore(
            sweep.run_dir, unit_name(key, seed)).final()
        if recorded is not None:
            # Finished but stopped before its report reached Tune: its own record says so.
            result, error = {**recorded, "trial_id": trial_id}, None
        return {row_key({"setting_key": key, "seed": seed}):
                row_from(trial_id, config, result, error, sweep, done)}
    rows = {}
    for index, (setting, seed, key) in enumerate(members):
        recorded = TrialStore(sweep.run_dir, unit_name(key, seed)).final()
        rows[row_key({"setting_key": key, "seed": seed})] = (
            record_row(recorded, sweep) if recorded is not None else
            row_from(member_id(trial_id, index, True), {"setting": setting, "seed": seed},
                     {"stages_done": result.get("stages_done")} if result else None, error,
                     sweep, done))
    return rows


def _trial_error(trial) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return error_line(Path(path).read_text())
    return str(getattr(trial, "error_msg", "") or "error")


class Progress:
    """A Tune callback printing one line every few seconds: done/running/failed, best, ETA.

    It counts (setting, seed) trials: a group's members count one each.
    """

    def __init__(self, total: int | None, metric: str, mode: str, seeds: list[int]) -> None:
        self.total, self.metric, self.mode, self.seeds = total, metric, mode, seeds
        self.start = time.time()
        self.last = 0.0
        self.shown: tuple = ()

    def callback(self):
        from ray.tune import Callback

        progress = self

        class _Progress(Callback):
            def on_step_end(self, iteration, trials, **info):
                progress.show(trials, force=False)

            def on_experiment_end(self, trials, **info):
                progress.show(trials, force=True)

        return _Progress()

    def show(self, trials, force: bool) -> None:
        """A line when a trial starts or ends, and otherwise every ``PROGRESS_EVERY_S``."""
        from wssweep.space import trial_members

        now = time.time()
        sizes = [len(trial_members(t.config, self.seeds)) for t in trials]
        done = sum(n for t, n in zip(trials, sizes, strict=True) if t.status == "TERMINATED")
        failed = sum(n for t, n in zip(trials, sizes, strict=True) if t.status == "ERROR")
        running = sum(n for t, n in zip(trials, sizes, strict=True) if t.status == "RUNNING")
        changed = (done, failed, running) != self.shown
        if not (force or changed or now - self.last >= PROGRESS_EVERY_S):
            return
        self.last, self.shown = now, (done, failed, running)
        values = [t.last_result.get(self.metric) for t in trials
                  if t.status == "TERMINATED" and t.last_result.get("final")]
        values = [v for v in values if isinstance(v, int | float) and v == v]
        best = (min if self.mode == "min" else max)(values) if values else None
        finished = done + failed
        elapsed = now - self.start
        eta = (elapsed / finished * (self.total - finished) if finished and self.total
               else None)
        total = "" if self.total is None else f"/{self.total}"  # None: until stopped
        print(f"[wssweep] {finished}{total} finished ({done} done, {failed} failed), "
              f"{running} running | best {self.metric}: "
              f"{'-' if best is None else f'{best:.2f}'} | elapsed {elapsed:.0f}s"
              f"{'' if eta is None else f', ETA {eta:.0f}s'}", flush=True)


def sweep_record(resolved, run_dir: Path, name: str) -> SweepRecord:
    """The run record of a resolved sweep: what trials receive and ``resume`` re-reads."""
    from wssweep import tracking
    from wssweep.space import applied_fuse, grid_trials, trial_count

    spec = resolved.spec
    res = spec.resources
    grid = ([GridTrial(**trial) for trial in grid_trials(spec, resolved.experiment)]
            if spec.method == "grid" else None)
    return SweepRecord(
        name=name, run_dir=str(run_dir), spec_path=str(resolved.path),
        overrides=list(resolved.overrides), smoke=resolved.smoke,
        spec=spec.model_dump(mode="json", exclude_unset=True), experiment=resolved.experiment,
        seeds=spec.first_seeds, swept=list(spec.parameters), metric=spec.metric.name,
        target=spec.metric.target,
        seed_plan=None if spec.seed_plan is None else SeedPlanRecord(
            min_seeds=spec.seed_plan.min, max_seeds=spec.seed_plan.max),
        mode=spec.metric.mode, method=spec.method, gap_tolerance=spec.gap_tolerance,
        reference=spec.reference, correction=spec.correction,
        cpus_per_trial=res.cpus_per_trial, threads=max(1, int(res.cpus_per_trial)),
        trials_per_gpu=res.trials_per_gpu, max_failures=res.max_failures,
        early_terminate=spec.early_terminate is not None,
        fuse=applied_fuse(spec, resolved.experiment),
        wandb=WandbRecord(project=spec.wandb.project, entity=spec.wandb.entity,
                          mode=tracking.resolve_mode(spec.wandb.mode), tags=spec.wandb.tags),
        # Seeds until decided: how many trials it takes is what the sweep finds out.
        expected_trials=None if spec.seed_plan else trial_count(spec, resolved.experiment),
        grid=grid)


def trainable(config: dict[str, Any], sweep: SweepRecord) -> None:
    """Tune's entry point for one trial (``wssweep.trial.trainable``), imported where it runs.

    Ray pickles this function by reference, so the driver never imports torch and the science
    (about 2 s of every ``run`` and ``resume``); each worker imports them once.
    """
    from wssweep.trial import trainable as run_one_trial

    run_one_trial(config, sweep)


def _tuner_parts(sweep: SweepRecord, total: int | None, round_name: str | None = None,
                 stopper=None):
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    run = RunDir(sweep.run_dir)
    writer = ResultsWriter(sweep)
    if round_name is not None:  # a round of seeds until decided: keep the rounds before it
        writer.rows = {f"{r.get('setting_key')}-{r.get('seed')}": record_row(r, sweep)
                       for r in final_records(sweep.run_dir)}
    run_config = tune.RunConfig(
        name=run.tune.name if round_name is None else round_name,
        storage_path=sweep.run_dir if round_name is None else str(run.rounds), verbose=0,
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        stop=stopper,  # metric.target (space.build_stopper), or None
        callbacks=[JsonLoggerCallback(), writer.callback(),
                   Progress(total, sweep.objective, sweep.mode, sweep.seeds).callback()])
    wrapped = tune.with_resources(tune.with_parameters(trainable, sweep=sweep),
                                  trial_resources(sweep))
    return wrapped, run_config, writer


def record_row(recorded: dict[str, Any], sweep: SweepRecord) -> dict[str, Any]:
    """The results.csv row of a trial's final record (``trials/<unit>/final.json``)."""
    config = {"setting": {k: recorded.get(k) for k in sweep.swept}, "seed": recorded["seed"]}
    return row_from(str(recorded.get("trial_id", "")), config, recorded, None, sweep, done=True)


def finish(grid, sweep: SweepRecord, *, interrupted: bool = False) -> Path:
    """Rewrite results.csv from Tune's own record of every trial (authoritative after resume),
    then build the map.

    After an interrupt, a trial without its final metrics is ``running`` (it resumes from its
    stage checkpoint) or ``pending``; once the sweep has ended, no trial will run again, so the
    stage checkpoints left (stopped or errored trials) are deleted.
    """
    rows: dict[str, dict[str, Any]] = {}
    for result in grid:
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or Path(result.path).name
        error = error_line(str(result.error)) if result.error else None
        rows.update(trial_rows(trial_id, result.config or {}, metrics, error, sweep,
                               done=not interrupted))
    rows = list(rows.values())
    # A trial that finished after Tune's last snapshot and was stopped before Tune saw it again
    # is in no result of the grid; its record still counts.
    seen = {row_key(r) for r in rows}
    for recorded in final_records(sweep.run_dir):
        if row_key(recorded) not in seen:
            rows.append(record_row(recorded, sweep))
    rows.sort(key=lambda r: str(r.get("started_at") or ""))
    path = write_results(Path(sweep.run_dir), rows, sweep.swept)
    if not interrupted:
        clear_stage_checkpoints(sweep.run_dir)
    publish_map(Path(sweep.run_dir), sweep)
    return path


class Interrupted(Exception):
    """The sweep was stopped by SIGINT, SIGTERM or ``wssweep stop``; what finished is written,
    the rest resumes."""

    def __init__(self, signum: int, run_dir: Path) -> None:
        self.signum, self.run_dir = signum, run_dir
        how = ("stopped by `wssweep stop`" if signum == STOP_REQUEST else
               f"interrupted by {signal.Signals(signum).name}")
        super().__init__(f"{how}: results so far in {RunDir(run_dir).results_csv}; "
                         f"`wssweep resume {run_dir}` continues it")

    @property
    def exit_status(self) -> int:
        # A stop the user asked for is a normal end; a signal gets the shell's convention: 130
        # for SIGINT, 143 for SIGTERM.
        return 0 if self.signum == STOP_REQUEST else 128 + self.signum


@contextmanager
def stop_on_signal(run_dir: Path | None = None) -> Iterator[list[int]]:
    """While ``tuner.fit()`` runs: SIGINT, SIGTERM or ``RUN_DIR/stop`` (``wssweep stop``) ends
    the sweep cleanly; yields the signals received (empty if none; ``STOP_REQUEST`` for the stop
    file).

    Tune's own handler covers SIGINT only; SIGTERM (what a scheduler or ``kill`` sends) would kill
    the driver with nothing written. Both are routed to Tune's graceful stop instead (it listens
    on SIGUSR1 too): the loop ends, Tune saves its experiment state, running trials keep their
    stage checkpoints. A second signal aborts at once.
    """
    received: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        print(f"wssweep: {signal.Signals(signum).name} received: stopping the sweep (running "
              "trials keep their stage checkpoints; a second signal aborts)", file=sys.stderr,
              flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for sig in previous:
        signal.signal(sig, handler)
    done = threading.Event()

    def watch(stop_file: Path) -> None:
        while not done.wait(STOP_POLL_S):
            if stop_file.exists() and not received:
                received.append(STOP_REQUEST)
                print("wssweep: stop requested (wssweep stop): stopping the sweep (running "
                      "trials keep their stage checkpoints)", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGUSR1)
                return

    if run_dir is not None:
        threading.Thread(target=watch, args=(RunDir(run_dir).stop,), name="wssweep-stop",
                         daemon=True).start()
    try:
        yield received
    finally:
        done.set()
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fit(tuner, sweep: SweepRecord, started: float, session: str) -> Path:
    """Run the sweep to its end or to a signal; write results and the map either way."""
    run_dir = Path(sweep.run_dir)
    with stop_on_signal(run_dir) as received:
        grid = tuner.fit()
    path = finish(grid, sweep, interrupted=bool(received))
    record_wall(run_dir, started, session)
    if received:
        raise Interrupted(received[0], run_dir)
    return path.parent


def publish_map(run_dir: Path, sweep: SweepRecord):
    """Build ``RUN_DIR/map/`` from results.csv and log it as the sweep's W&B map run."""
    from wssweep import tracking
    from wssweep.report import build_map

    files = build_map(run_dir)
    tracking.log_map_run(run_dir, sweep, files)
    print(f"wssweep: gap map in {files.report_html}", flush=True)
    return files


def record_wall(run_dir: Path, started: float, session: str) -> None:
    """Append one session (``run`` or ``resume``) with its wall time to ``RUN_DIR/wall.json``."""
    path = RunDir(run_dir).wall_json
    sessions = json.loads(path.read_text()) if path.is_file() else []
    finished = time.time()
    sessions.append({"session": session, "started_at": started, "finished_at": finished,
                     "seconds": round(finished - started, 1)})
    with atomic_write(path) as handle:
        handle.write(json.dumps(sessions, indent=1))


def check_run_target(storage: Path, name: str | None) -> None:
    """Reject a --name that is not a plain directory name (``/abs``, ``../up``) and a --storage
    that cannot become a directory, before Ray starts."""
    if name is not None and not re.match(NAME_PATTERN, name):
        raise InputError("--name", f"a run name matching {NAME_PATTERN} (it becomes a directory "
                         "under --storage)", name)
    check_can_create(storage, "--storage", "a writable directory, or a path where one can be "
                     "created")


def _search_done(sweep: SweepRecord) -> bool:
    """Whether a random sweep's search (its first round) has finished every trial."""
    planned = (sweep.spec.get("run_cap") or 0) // max(len(sweep.seeds), 1) * len(sweep.seeds)
    return len(final_records(sweep.run_dir)) >= planned


def _in_rounds(sweep: SweepRecord) -> bool:
    """Whether the sweep runs (or has reached) its rounds of seeds until decided: a grid's and a
    bayes search's from the start, a random search's once its first seeds are in."""
    return sweep.seed_plan is not None and (sweep.method in ("grid", "bayes")
                                            or _search_done(sweep))


def load_run(run_dir: Path) -> SweepRecord:
    """The run record of RUN_DIR, checked before Ray starts: a sweep.json wssweep wrote, and a
    Tune state that was saved."""
    from ray import tune

    run = RunDir(Path(run_dir).absolute())
    sweep = run.record()
    if _in_rounds(sweep):
        return sweep  # its rounds are planned again from the final records
    if not tune.Tuner.can_restore(str(run.tune)):
        raise InputError("RUN_DIR", "a run whose Tune state was saved", str(run.path))
    return sweep


def _at_once(sweep: SweepRecord) -> int:
    """How many trials the cluster runs at once: a sweep that runs until stopped creates no
    more than that (Tune would otherwise queue ~200 pending trials that a stop leaves behind)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // sweep.cpus_per_trial))


def target_reached(sweep: SweepRecord) -> bool:
    """Whether a finished trial of ``sweep`` reached ``metric.target`` (so it has ended)."""
    from wssweep.spec import MetricSpec

    if sweep.target is None:
        return False
    metric = MetricSpec(name=sweep.metric, goal="minimize" if sweep.mode == "min" else
                        "maximize", target=sweep.target)
    values = [r.get(sweep.objective) for r in final_records(sweep.run_dir)
              if r.get("status") == "completed"]
    return any(isinstance(v, int | float) and math.isfinite(v) and metric.reached(v)
               for v in values)


def run_sweep(resolved, *, name: str, storage: Path, address: str | None) -> Path:
    """Run the resolved sweep; returns the run directory (results.csv inside)."""
    from ray import tune

    from wssweep.space import build_search

    started = time.time()
    check_run_target(Path(storage), name)
    run_dir = Path(storage).absolute() / name
    if path_kind(run_dir, "--name"):
        raise InputError("--name", "a run name not used yet in the storage directory "
                         "(to finish an interrupted run: wssweep resume RUN_DIR)", str(run_dir))
    sweep = sweep_record(resolved, run_dir, name)
    connect_for(sweep, address)
    run_dir.mkdir(parents=True)
    if _in_rounds(sweep):
        try:
            RunDir(run_dir).write_record(sweep)
            shutil.copyfile(resolved.path, RunDir(run_dir).spec_copy)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return run_rounds(sweep, started, "run", address)
    try:
        plan = build_search(resolved, run_dir)
        RunDir(run_dir).write_record(sweep)
        shutil.copyfile(resolved.path, RunDir(run_dir).spec_copy)
        wrapped, run_config, _ = _tuner_parts(sweep, plan.total_trials, stopper=plan.stopper)
        tuner = tune.Tuner(
            wrapped, param_space=plan.param_space, run_config=run_config,
            tune_config=tune.TuneConfig(
                metric=plan.metric, mode=plan.mode, search_alg=plan.search_alg,
                scheduler=plan.scheduler, num_samples=plan.num_samples, reuse_actors=True,
                max_concurrent_trials=_at_once(sweep) if plan.total_trials is None else None))
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    out = _fit(tuner, sweep, started, "run")
    # Random with seeds until decided: the search ran on the first seeds; now the rounds add
    # seeds where its settings are undecided.
    return out if sweep.seed_plan is None else run_rounds(sweep, time.time(), "run", address)


def run_rounds(sweep: SweepRecord, started: float, session: str, address: str | None) -> Path:
    """Seeds until decided: one Tune run per round, each over the (setting, seed) trials that
    ``wssweep.sequential`` asks for, until it asks for none.

    A grid's settings are known; a bayes search draws its settings over the rounds
    (``wssweep.optuna_rounds``: Optuna sees each setting's mean over the seeds run so far); a
    random search's are those its first round drew. The plan is a function of the finished
    trials' final records (and, for bayes, of the settings drawn), so ``resume`` re-enters this
    loop and continues where the sweep was (finished trials are never asked for again). Ray is
    started (or joined at ``address``) only when a round has trials: resuming a finished sweep
    rebuilds its results and map without it.
    """
    from ray import tune

    from wssweep import optuna_rounds, tracking
    from wssweep.sequential import Plan, plan_round, plan_search_round
    from wssweep.space import fused_trials

    plan = Plan(sweep.seed_plan.min_seeds, sweep.seed_plan.max_seeds)
    settings = _unique([t.setting for t in sweep.grid] if sweep.grid is not None else
                       [{k: r.get(k) for k in sweep.swept} for r in final_records(sweep.run_dir)])
    family = (optuna_rounds.settings_cap(sweep) if sweep.method == "bayes" else len(settings))
    tune_dir = RunDir(sweep.run_dir).rounds
    grid: Any = []
    asked: list = []
    while True:
        records = final_records(sweep.run_dir)
        if sweep.method == "bayes":
            settings = optuna_rounds.draw(sweep, records)
            step = plan_search_round(records, settings, sweep.swept, plan, sweep.gap_tolerance,
                                     DEFAULT_ALPHA, sweep.reference, family)
        else:  # every setting is known: the first round runs all their first seeds
            step = plan_round(records, settings, sweep.swept, plan, sweep.gap_tolerance,
                              DEFAULT_ALPHA, sweep.reference)
        # A round that finished none of its trials (each failed in Tune, not in the science,
        # after its retries) would be asked for again forever: the sweep ends there instead.
        if not step.trials or step.trials == asked:
            break
        asked = step.trials
        connect_for(sweep, address)
        number = len(list(tune_dir.glob("round-*"))) + 1 if tune_dir.is_dir() else 1
        trials = [{"setting": setting, "seed": seed} for setting, seed in step.trials]
        wrapped, run_config, _ = _tuner_parts(sweep, len(trials), f"round-{number}")
        print(f"wssweep: round {number}: {len(trials)} trials "
              f"({len(step.verdicts)} of {family} settings decided)", flush=True)
        entries = fused_trials(trials, sweep.fuse, sweep.experiment)
        tuner = tune.Tuner(wrapped, param_space={"trial": tune.grid_search(entries)},
                           run_config=run_config,
                           tune_config=tune.TuneConfig(metric=sweep.objective, mode=sweep.mode,
                                                       reuse_actors=True))
        with stop_on_signal(Path(sweep.run_dir)) as received:
            grid = tuner.fit()
        if received:
            finish(grid, sweep, interrupted=True)
            record_wall(Path(sweep.run_dir), started, session)
            raise Interrupted(received[0], Path(sweep.run_dir))
    tracking.quiet_env()  # when no round ran, nothing else has
    path = finish(grid, sweep)
    record_wall(Path(sweep.run_dir), started, session)
    return path.parent


def _unique(settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for setting in settings:
        if setting not in out:
            out.append(setting)
    return out


def request_stop(run_dir: Path) -> Path:
    """Ask the sweep running in ``run_dir`` to stop cleanly (``wssweep stop``): its driver
    looks for the stop file every ``STOP_POLL_S`` and ends as after Ctrl-C, exit status 0."""
    run = RunDir(Path(run_dir).absolute())
    run.record()  # InputError on RUN_DIR unless a sweep.json wssweep wrote is there
    with atomic_write(run.stop) as handle:
        handle.write(json.dumps({"requested_at": time.time()}))
    return run.stop


def _use_callbacks(tuner, callbacks: list) -> None:
    """Give a restored Tuner this session's callbacks. ``Tuner.restore`` brings back the ones
    pickled when the run began, which hold that session's run record: a run directory moved
    since would have its results.csv written at the old path. Ray has no public way to replace
    them; where its private attribute is gone, the pickled ones stay (right unless moved)."""
    internal = getattr(tuner, "_local_tuner", None)
    run_config = getattr(internal, "_run_config", None)
    if run_config is not None and hasattr(run_config, "callbacks"):
        run_config.callbacks = callbacks


def resume_sweep(run_dir: Path, *, address: str | None) -> Path:
    """Finish an interrupted sweep without re-running its finished trials."""
    from ray import tune

    started = time.time()
    run_dir = Path(run_dir).absolute()
    sweep = load_run(run_dir)
    # A stop asked of an earlier session (or of none running) does not stop this one.
    RunDir(run_dir).stop.unlink(missing_ok=True)
    if _in_rounds(sweep):
        return run_rounds(sweep, started, "resume", address)
    if target_reached(sweep):
        # It ended at metric.target; Tune's restored stopper would not know and run on.
        print(f"wssweep: metric.target {sweep.target:g} was reached: nothing left to run",
              flush=True)
        from wssweep import tracking

        tracking.quiet_env()
        from wssweep.results import read_results

        csv = RunDir(run_dir).results_csv
        rows = {row_key(r): dict(r) for r in (read_results(csv) if csv.is_file() else [])}
        for recorded in final_records(run_dir):  # newer than a csv a killed driver left
            rows[row_key(recorded)] = record_row(recorded, sweep)
        path = write_results(run_dir, list(rows.values()), sweep.swept)
        publish_map(run_dir, sweep)
        record_wall(run_dir, started, "resume")
        return path.parent
    tune_dir = RunDir(run_dir).tune
    connect_for(sweep, address)
    total = sweep.expected_trials or len(list(tune_dir.glob("*/")))
    wrapped, run_config, _ = _tuner_parts(sweep, total)
    tuner = tune.Tuner.restore(str(tune_dir), wrapped, resume_unfinished=True,
                               resume_errored=False)
    _use_callbacks(tuner, run_config.callbacks)
    out = _fit(tuner, sweep, started, "resume")
    return out if sweep.seed_plan is None else run_rounds(sweep, time.time(), "resume", address)
