"""The run's artifact cache: what one trial stored, another with the same key loads."""

import torch

from wssweep.cache import ArtifactCache


def test_an_artifact_comes_back_as_it_was_stored(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    # nothing is there before a trial stores it
    assert cache.load("k") is None
    cache.save("k", {"model": {"w": torch.arange(3.0)}, "cold": [1, 2]})
    loaded = cache.load("k")
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["cold"] == [1, 2]


def test_a_second_save_replaces_the_first_whole(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.save("k", {"v": 1})
    cache.save("k", {"v": 2})
    # two trials that missed at once: the later rename wins, and no temp file is left behind
    assert cache.load("k") == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pt"]
