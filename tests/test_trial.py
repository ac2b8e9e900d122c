"""The trainable's pure parts: which setting a Tune config is, and what runs where."""

from wssweep.results import setting_key
from wssweep.trial import placed_config, trial_setting

SWEEP = {"experiment": {"model": {"name": "logreg"}, "lr": 0.01}, "seeds": [0, 1, 2],
         "threads": 1}


def test_setting_key_is_the_same_for_every_seed_and_placement():
    keys, configs = set(), []
    for seed, device, threads in [(0, "cpu", 1), (1, "cuda", 4), (2, "auto", 2)]:
        setting, seed_of, key = trial_setting({"setting": {"lr": 0.1}, "seed": seed}, SWEEP)
        cfg = placed_config({**SWEEP, "threads": threads}, setting, seed_of, device)
        keys.add(key)
        configs.append(cfg)
        # what runs here does carry this node's device and threads
        assert (cfg.seed, cfg.device, cfg.threads) == (seed, device, threads)
        # and the key is the hash of the config without seed, device and threads
        assert setting_key(cfg) == key
    # three seeds, each on another kind of node: one key, so W&B groups pool them
    assert len(keys) == 1
    # the placed configs differ: the key really ignores where the trial ran
    assert len({(c.device, c.threads) for c in configs}) == 3


def test_setting_key_differs_between_settings():
    _, _, a = trial_setting({"setting": {"lr": 0.1}, "seed": 0}, SWEEP)
    _, _, b = trial_setting({"setting": {"lr": 0.2}, "seed": 0}, SWEEP)
    _, _, c = trial_setting({"setting": {"lr": 0.1}, "seed": 1}, SWEEP)
    # another value of a swept key is another setting; another seed is the same one
    assert a != b and a == c
