"""The ``wssweep`` command line.

Exit status: 0 when the work finished (diverged trials are results, not errors); 2 for bad input
(spec, path, option), with the key path, what was expected and what was given, and no traceback;
1 only for a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from wssweep.errors import InputError

EXIT_BAD_INPUT = 2


def _cmd_trial(args: argparse.Namespace) -> int:
    from wssweep.science.experiment import run_trial
    from wssweep.spec import load_trial_config

    cfg = load_trial_config(args.spec, args.set)
    metrics = run_trial(cfg)
    if args.pretty:
        # One metric per line, lists kept on their line: readable and still valid JSON.
        lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in metrics.items()]
        print("{\n" + ",\n".join(lines) + "\n}")
    else:
        print(json.dumps(metrics))
    return 0


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
    trial.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key by its dotted path, e.g. --set lr=0.03 "
                       "--set warm.intervention=shrink_perturb (repeatable)")
    trial.add_argument("--pretty", action="store_true", help="one metric per line")
    trial.set_defaults(func=_cmd_trial)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"wssweep: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
