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
