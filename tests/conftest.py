"""Test-wide settings: a private data cache, so tests never touch the user's ~/.cache, and the
slowest modules collected first."""

import os
import tempfile

import pytest

# The slowest modules (real sweeps), slowest first. pytest-xdist (``--dist loadfile
# --no-loadscope-reorder``) hands each module whole to the next free worker in collection order:
# one handed out last keeps one worker busy while the other idles. (Without the flag xdist orders
# modules by test count, which puts these few-test, slow modules last.)
SLOWEST_FIRST = ("test_sweep_e2e.py", "test_search_e2e.py", "test_bench.py", "test_cluster.py",
                 "test_resume.py", "test_studies.py", "test_cli.py", "test_dashboard.py",
                 "test_quickstart.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    # sort is stable: within a module, and among the other modules, the order is pytest's
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True, scope="session")
def private_cache():
    previous = os.environ.get("WSSWEEP_CACHE")
    with tempfile.TemporaryDirectory(prefix="wssweep-cache-") as cache:
        # Subprocesses (CLI tests) inherit it too, and share one generated MNIST-1D.
        os.environ["WSSWEEP_CACHE"] = cache
        yield cache
    if previous is None:
        os.environ.pop("WSSWEEP_CACHE", None)
    else:
        os.environ["WSSWEEP_CACHE"] = previous


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def ray_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses that start Ray: loopback only, W&B offline, private HOME.

    A ``$HOME/ray_bootstrap_config.yaml`` with ``provider: {type: local}`` stops the
    dashboard's cloud-metadata probe; usage stats off; no W&B key so W&B stays offline.
    """
    home = tmp_path_factory.mktemp("home")
    (home / "ray_bootstrap_config.yaml").write_text("provider: {type: local}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({
        "HOME": str(home),
        "PYTHONPATH": REPO,  # Ray workers import test plugins (tests.plugins) from the repo
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "WANDB_MODE": "offline",
    })
    return env
