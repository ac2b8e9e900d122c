"""Running the ``wssweep`` CLI from tests, as users do: a subprocess in its own process group.

Every driver gets its own session, so a local Ray it starts is in its process group and goes with
it (``kill_group``); ``ray stop`` is never used, since it ends every Ray on the machine.
Waiting is on conditions (``wait_for``), never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.1  # how often wait_for looks again


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _live_children() -> dict[int, list[int]]:
    """Every live (not zombie) process's children, from Linux's /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(stat.parent.name))
    return children


def process_tree(pid: int) -> set[int]:
    """``pid`` and its live descendants: a driver's local Ray, whose workers outlive a
    ``kill_group`` of the driver for a moment (they leave when they see their raylet gone)."""
    children, tree, todo = _live_children(), set(), [pid]
    while todo:
        p = todo.pop()
        if p not in tree:
            tree.add(p)
            todo.extend(children.get(p, []))
    return tree


def kill_tree(tree: set[int]) -> None:
    """SIGKILL each of ``tree`` (``process_tree``, taken while they ran) and wait until none is
    left alive: nothing of that session writes after this returns."""
    for p in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    wait_for(lambda: not tree & {c for cs in _live_children().values() for c in cs},
             "the killed session's processes to be gone")


def start(env: dict, *args: str) -> subprocess.Popen:
    """``wssweep ARGS`` running in the background, output captured to pipes."""
    return subprocess.Popen([sys.executable, "-m", "wssweep", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


# Several `wssweep ...` command lines, one after another in one process (argv: a JSON list of
# argument lists): one local Ray and one set of imports for all of them.
RUN_MANY = """
import json, sys
from wssweep.cli import main
for args in json.loads(sys.argv[1]):
    code = main(args)
    if code:
        sys.exit(f"wssweep {' '.join(args)}: exit {code}")
"""


def run_many(env: dict, commands: list[list[str]], timeout: float = 600
             ) -> subprocess.CompletedProcess:
    """Each of ``commands`` (``wssweep`` argument lists) in turn, in one process, to the end.

    For tests of what each run writes, not of how a process starts or ends: the CLI's code
    path is the same, the local Ray is shared (``orchestrate.connect`` joins it).
    """
    import json

    proc = subprocess.Popen([sys.executable, "-c", RUN_MANY, json.dumps(commands)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return finish(proc, timeout)


def finish(proc: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
    """Wait for ``proc``; on a timeout kill it (and its Ray) and fail with what it printed."""
    import pytest

    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(proc.args[2:])} still running after {timeout}s:\n"
                    f"{out[-3000:]}\n{err[-3000:]}")
    finally:
        kill_group(proc.pid)  # leftovers of a local Ray, if any
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wssweep(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``wssweep ARGS`` to its end."""
    return finish(start(env, *args), timeout)


def show(out: subprocess.CompletedProcess) -> str:
    return out.stdout[-3000:] + "\n" + out.stderr[-3000:]


def wait_for(condition: Callable[[], object], what: str, proc: subprocess.Popen | None = None,
             timeout: float = 300) -> object:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``
    seconds, or at once if ``proc`` ends first."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the driver ended (exit {proc.returncode}) before {what}:\n"
                        f"{out[-3000:]}\n{err[-3000:]}")
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
