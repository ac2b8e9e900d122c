"""The ``wssweep`` command line.

Exit status: 0 when the work finished (diverged trials are results, not errors); 2 for bad input
(spec, path, option), with the key path, what was expected and what was given, and no traceback;
130 (SIGINT, Ctrl-C) or 143 (SIGTERM) when a sweep was interrupted, 0 when ``wssweep stop``
stopped it: either way what finished is written and ``wssweep resume RUN_DIR`` continues it; 1
only for a bug.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from wssweep.errors import InputError
from wssweep.files import path_kind
from wssweep.record import RunDir

EXIT_BAD_INPUT = 2


def _cmd_trial(args: argparse.Namespace) -> int:
    from wssweep.preflight import check_device
    from wssweep.science.experiment import run_trial
    from wssweep.spec import load_trial_config

    cfg = load_trial_config(args.spec, args.set, smoke=args.smoke)
    check_device([cfg], prefix="")  # the trial runs here
    metrics = run_trial(cfg)
    if args.pretty:
        # One metric per line, lists kept on their line: readable and still valid JSON.
        lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in metrics.items()]
        print("{\n" + ",\n".join(lines) + "\n}")
    else:
        print(json.dumps(metrics))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from wssweep.space import describe
    from wssweep.spec import load_sweep_spec

    print(describe(load_sweep_spec(args.spec, args.set, smoke=args.smoke)))
    return 0


def _default_name(spec_path: str) -> str:
    return f"{Path(spec_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _cmd_run(args: argparse.Namespace) -> int:
    from wssweep.orchestrate import run_sweep
    from wssweep.spec import load_sweep_spec

    # On a cluster the data and user code are where the trials run, not here: a trial that
    # cannot load them is recorded as an error there.
    resolved = load_sweep_spec(args.spec, args.set, smoke=args.smoke,
                               preflight=args.address is None)
    name = args.name if args.name is not None else (resolved.spec.name or _default_name(args.spec))
    run_dir = run_sweep(resolved, name=name, storage=Path(args.storage), address=args.address)
    print(f"wssweep: results in {RunDir(run_dir).results_csv}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from wssweep.orchestrate import resume_sweep

    run_dir = resume_sweep(Path(args.run_dir), address=args.address)
    print(f"wssweep: results in {RunDir(run_dir).results_csv}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from wssweep.orchestrate import request_stop

    request_stop(Path(args.run_dir))
    print(f"wssweep: asked the sweep in {args.run_dir} to stop: its driver ends within a second "
          "or so, running trials keep their stage checkpoints, and `wssweep resume "
          f"{args.run_dir}` continues it")
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    from wssweep import tracking
    from wssweep.orchestrate import publish_map
    from wssweep.record import RESULTS_FILE

    run = RunDir(Path(args.run_dir).absolute())
    if path_kind(run.results_csv, "RUN_DIR") != "file":
        raise InputError("RUN_DIR", f"a wssweep run directory (with {RESULTS_FILE})",
                         str(run.path))
    tracking.quiet_env()
    publish_map(run.path, run.record())
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from wssweep.dashboard import sync

    return sync(Path(args.run_dir), dry_run=args.dry_run)


def _cmd_results(args: argparse.Namespace) -> int:
    from wssweep.files import check_can_create
    from wssweep.studies import write_results

    out = Path(args.out)
    if path_kind(out, "--out") == "dir":
        raise InputError("--out", "a markdown file to write, not a directory", str(out))
    # the page's figures go beside it, in figures/
    check_can_create(out.absolute().parent, "--out", "a file in a directory that exists or can "
                     "be created", str(out))
    out = write_results(args.runs, out, include_smoke=args.include_smoke)
    print(f"wssweep: studies written to {out}")
    return 0


SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}  # --max-size, binary
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # --older-than


def parse_amount(text: str, units: dict[str, int], option: str, example: str) -> float:
    """``text`` as a number with one of ``units``' suffixes, in the base unit.

    Example:
        >>> parse_amount("1.5G", SIZE_UNITS, "--max-size", "500M"), parse_amount(
        ...     "2d", AGE_UNITS, "--older-than", "7d")
        (1610612736.0, 172800.0)
    """
    value, unit = text.strip(), ""
    if value and value[-1].upper() in {u.upper() for u in units if u}:
        value, unit = value[:-1], value[-1]
    unit = next((u for u in units if u.upper() == unit.upper()), None)
    try:
        amount = float(value)
    except ValueError:
        amount = float("nan")
    if unit is None or not amount >= 0 or amount * units[unit] == float("inf"):
        named = ", ".join(u for u in units if u)
        raise InputError(option, f"a non-negative number with a unit ({named}), e.g. {example}",
                         text)
    return amount * units[unit]


def _store_of(storage: str):
    from wssweep.cache import ArtifactCache
    from wssweep.record import BASELINES_DIR

    root = Path(storage).absolute()
    if path_kind(root, "--storage") != "dir":
        raise InputError("--storage", "the directory runs are stored in (wssweep run --storage)",
                         str(root))
    return ArtifactCache(root / BASELINES_DIR)


def _cmd_cache(args: argparse.Namespace) -> int:
    store = _store_of(args.storage)
    if args.action == "ls":
        entries = store.entries() if store.root.is_dir() else []
        for e in reversed(entries):  # most recently used first
            about = " ".join(f"{k}={e.about[k]}" for k in ("data", "model", "protocol", "optim",
                                                           "lr", "seed") if k in e.about)
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
            print(f"{e.key}  {e.size / 2**20:8.2f} MiB  last used {used}  {about}")
        total = sum(e.size for e in entries)
        print(f"wssweep: {len(entries)} baseline artifacts, {total / 2**20:.2f} MiB in "
              f"{store.root}")
        return 0
    if args.max_size is None and args.older_than is None:
        raise InputError("cache prune", "--max-size SIZE and/or --older-than AGE", "neither")
    max_bytes = (None if args.max_size is None else  # an int: sizes are whole bytes
                 int(parse_amount(args.max_size, SIZE_UNITS, "--max-size", "500M")))
    older = (None if args.older_than is None else
             parse_amount(args.older_than, AGE_UNITS, "--older-than", "7d"))
    gone = store.prune(max_bytes=max_bytes, older_than_s=older) if store.root.is_dir() else []
    print(f"wssweep: pruned {len(gone)} baseline artifacts "
          f"({sum(e.size for e in gone) / 2**20:.2f} MiB) from {store.root}")
    return 0


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment key by its dotted path, e.g. --set lr=0.03 "
                        "--set warm.intervention=shrink_perturb (repeatable)")
    parser.add_argument("--smoke", action="store_true",
                        help="the same study in seconds: 400 training examples, 3 stages of 2 "
                        "epochs (a 50-dimension NQM), the first 2 seeds, at most 4 trials; --set "
                        "still applies on top")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wssweep",
        description="Sweeps for warm-start studies: when does continuing from yesterday's "
        "weights generalize as well as starting over, and what does it save?",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    trial = sub.add_parser(
        "trial",
        help="run one warm-vs-cold trial in-process (no Ray, no W&B) and print its metrics as JSON",
        description="Run one trial of SPEC: a sweep spec (each swept parameter takes its value, "
        "first value or the centre of its range; the first seed) or an experiment config.",
    )
    trial.add_argument("spec", metavar="SPEC.yaml")
    _add_set(trial)
    trial.add_argument("--pretty", action="store_true", help="one metric per line")
    trial.set_defaults(func=_cmd_trial)

    run = sub.add_parser("run", help="run a sweep on Ray Tune (local, or a cluster with --address)")
    run.add_argument("spec", metavar="SWEEP.yaml")
    run.add_argument("--name", help="run name (default: the spec's name, else FILE-TIMESTAMP)")
    run.add_argument("--storage", default="runs", help="where run directories go (default ./runs)")
    run.add_argument("--address", help="Ray cluster address, e.g. 127.0.0.1:6379 (default: a "
                     "local Ray)")
    _add_set(run)
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser("resume", help="finish an interrupted sweep without re-running "
                            "finished trials")
    resume.add_argument("run_dir", metavar="RUN_DIR")
    resume.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    resume.set_defaults(func=_cmd_resume)

    stop = sub.add_parser("stop", help="stop a running sweep cleanly from another shell (as "
                          "Ctrl-C does; wssweep resume continues it)")
    stop.add_argument("run_dir", metavar="RUN_DIR")
    stop.set_defaults(func=_cmd_stop)

    gap_map = sub.add_parser("map", help="(re)build RUN_DIR/map/ from results.csv: summary.csv, "
                             "heatmaps, Pareto plot, report.html, and the W&B map run")
    gap_map.add_argument("run_dir", metavar="RUN_DIR")
    gap_map.set_defaults(func=_cmd_map)

    sync = sub.add_parser("sync", help="upload RUN_DIR's offline W&B runs (wandb sync) and, "
                          "with WANDB_API_KEY set, save the sweep's W&B workspace")
    sync.add_argument("run_dir", metavar="RUN_DIR")
    sync.add_argument("--dry-run", action="store_true", help="list what would be uploaded "
                      "(wandb sync --dry-run) and the workspace, without any network call")
    sync.set_defaults(func=_cmd_sync)

    results = sub.add_parser("results", help="write docs/results.md (and its figures) from the "
                             "newest full run of each study in sweeps/")
    results.add_argument("runs", nargs="+", metavar="RUNS", help="run directories, or "
                         "directories holding them (e.g. runs/)")
    results.add_argument("--out", default="docs/results.md", help="the page to write (figures "
                         "go to figures/ beside it; default docs/results.md)")
    results.add_argument("--include-smoke", action="store_true", help="use --smoke runs too "
                         "(to check the page; their numbers are not results)")
    results.set_defaults(func=_cmd_results)

    cache = sub.add_parser("cache", help="list or prune the baselines (stage 1 and cold arms) "
                           "that runs under a --storage share")
    cache.add_argument("action", choices=("ls", "prune"))
    cache.add_argument("--storage", default="runs", help="the runs' directory (default ./runs)")
    cache.add_argument("--max-size", help="prune: delete the least recently used until at most "
                       "this much is left, e.g. 500M, 2G")
    cache.add_argument("--older-than", help="prune: delete what was not used for this long, "
                       "e.g. 12h, 7d")
    cache.set_defaults(func=_cmd_cache)

    validate = sub.add_parser("validate", help="check a sweep spec; print the resolved search "
                              "space, the trial count and each trial's resources")
    validate.add_argument("spec", metavar="SWEEP.yaml")
    _add_set(validate)
    validate.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from wssweep.orchestrate import Interrupted

    args = build_parser().parse_args(argv)
    # Outside a sweep's fit() (starting Ray, building the map), SIGTERM ends the command as
    # Ctrl-C does: a short line and the shell's status, not a traceback. Inside it,
    # orchestrate.stop_on_signal stops the sweep cleanly instead.
    received: list[int] = []

    def terminate(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"wssweep: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as stop:
        print(f"wssweep: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        print(f"wssweep: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
