"""What the bench scripts share: the default sweep, the ``--smoke`` overrides, their options.

Each script runs as ``python bench/NAME.py`` (this folder is then first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO / "sweeps" / "quickstart.yaml"
# --smoke: digits (1797 samples, shipped with scikit-learn), 2 stages of at most 2 epochs.
SMOKE_SETS = ["data.name=digits", "protocol.chunks=2", "protocol.stop.max_epochs=2"]


def parser(doc: str, *, cores: bool = True, json: bool = True) -> argparse.ArgumentParser:
    """SPEC, ``--set``, ``--smoke``, and (optionally) ``--cores`` and ``--json``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC), help="a sweep spec")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override an experiment key, as in wssweep run")
    ap.add_argument("--smoke", action="store_true", help="tiny data, to check the script runs")
    if cores:
        ap.add_argument("--cores", type=int, default=os.cpu_count(), help="CPUs to use")
    if json:
        ap.add_argument("--json", metavar="PATH", help="also write the numbers here")
    return ap


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides, after the smoke ones when ``--smoke``."""
    return [*(SMOKE_SETS if args.smoke else []), *args.set]


def load_sweep(args: argparse.Namespace, prog: str):
    """The resolved sweep of ``args``, or ``None`` after printing why not (exit status 2)."""
    from wssweep.errors import InputError
    from wssweep.spec import load_sweep_spec

    try:
        return load_sweep_spec(args.spec, overrides(args))
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None
