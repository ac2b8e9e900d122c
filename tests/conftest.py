"""Test-wide settings: a private data cache, so tests never touch the user's ~/.cache."""

import os
import tempfile

import pytest


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
