"""The science layer stays plain PyTorch/NumPy: no Ray or W&B import anywhere in it."""

import ast
import subprocess
import sys
from pathlib import Path

SCIENCE = Path(__file__).resolve().parents[2] / "wssweep" / "science"
FORBIDDEN = {"ray", "wandb"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_ray_or_wandb_import_in_science_sources():
    files = sorted(SCIENCE.glob("*.py"))
    # the science package has its modules (guards against an empty glob passing vacuously)
    assert len(files) >= 8
    for path in files:
        # no module of the science layer imports ray or wandb, at any depth in the file
        assert not imported_roots(path) & FORBIDDEN, path.name


def test_importing_science_loads_neither_ray_nor_wandb():
    code = (
        "import sys, importlib, pkgutil, wssweep.science as s\n"
        "for m in pkgutil.iter_modules(s.__path__):\n"
        "    importlib.import_module('wssweep.science.' + m.name)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('ray', 'wandb')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # importing every science module pulls in no ray or wandb module, even indirectly
    assert out.stdout.strip() == "[]"
