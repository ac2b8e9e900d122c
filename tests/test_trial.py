"""The trainable's pure parts: which setting a Tune config is, and what runs where."""

from pathlib import Path

import pytest

from wssweep import trial
from wssweep.checkpoint import TrialStore, trial_members
from wssweep.record import SweepRecord, WandbRecord
from wssweep.results import setting_key
from wssweep.trial import placed_config

SWEEP = SweepRecord(name="s", run_dir="/r", spec_path="s.yaml", spec={},
                    experiment={"model": {"name": "logreg"}, "lr": 0.01}, seeds=[0, 1, 2],
                    swept=["lr"], metric="gap", mode="min", threads=1)


def test_setting_key_is_the_same_for_every_seed_and_placement():
    keys, configs = set(), []
    for seed, device, threads in [(0, "cpu", 1), (1, "cuda", 4), (2, "auto", 2)]:
        setting, seed_of, key = trial_members({"setting": {"lr": 0.1}, "seed": seed}, SWEEP)[0]
        cfg = placed_config(SWEEP.model_copy(update={"threads": threads}), setting, seed_of,
                            device)
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
    _, _, a = trial_members({"setting": {"lr": 0.1}, "seed": 0}, SWEEP)[0]
    _, _, b = trial_members({"setting": {"lr": 0.2}, "seed": 0}, SWEEP)[0]
    _, _, c = trial_members({"setting": {"lr": 0.1}, "seed": 1}, SWEEP)[0]
    # another value of a swept key is another setting; another seed is the same one
    assert a != b and a == c


# --- the trainable with Ray and W&B stubbed: what a start, a replay and a failure leave behind

class FakeRuntime:
    def get_node_id(self):
        return "node-a"

    def get_assigned_resources(self):
        return {"CPU": 1.0}


class FakeContext:
    def get_trial_id(self):
        return "t_00001"


def stub_ray(monkeypatch, reports: list) -> None:
    """The trainable's Ray calls replaced: a fixed trial id and node, no GPU, and every Tune
    report appended to ``reports``."""
    monkeypatch.setattr(trial.tune, "get_context", FakeContext)
    monkeypatch.setattr(trial.tune, "report", lambda metrics, **kw: reports.append(metrics))
    monkeypatch.setattr(trial.ray, "get_runtime_context", FakeRuntime)
    monkeypatch.setattr(trial.ray, "get_gpu_ids", list)


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """The trainable's Ray and W&B calls replaced; returns (record, reports, trained)."""
    reports, trained = [], []
    stub_ray(monkeypatch, reports)
    record = SweepRecord(name="s", run_dir=str(tmp_path), spec_path="s.yaml", spec={},
                         experiment=SMALL, seeds=[0], swept=["lr"], metric="gap", mode="min",
                         wandb=WandbRecord(mode="disabled"))

    def fake_run_trial(cfg, progress=None, cache=None, checkpoint=None, wait_for_cold=False):
        trained.append(cfg.lr)
        if cfg.lr > 1:
            raise ValueError("the science refuses this rate")
        return {"gap": 1.5, "val_gap": 1.2, "diverged": False, "resumed_stage": 0}

    monkeypatch.setattr(trial, "run_trial", fake_run_trial)
    return record, reports, trained


SMALL = {"data": {"name": "digits"}, "model": {"name": "logreg"}, "lr": 0.1}
CONFIG = {"trial": {"setting": {"lr": 0.1}, "seed": 0}}


def test_a_finished_trial_reports_its_record_and_trains_nothing(stubbed):
    record, reports, trained = stubbed
    trial.trainable(CONFIG, record)
    # the first run trained, recorded its final metrics, then reported them
    assert trained == [0.1] and reports[-1]["gap"] == 1.5 and reports[-1]["status"] == "completed"
    trial.trainable(CONFIG, record)  # Tune restarts it: its snapshot predated the report
    # the second start trained nothing and reported the same final metrics
    assert trained == [0.1] and reports[-1] == reports[0]
    assert [s["event"] for s in trial.read_starts(record.run_dir)] == ["start", "replay"]


def test_an_exception_of_the_science_is_the_trials_result(stubbed):
    record, reports, trained = stubbed
    trial.trainable({"trial": {"setting": {"lr": 3.0}, "seed": 0}}, record)
    # no exception reaches Tune (which would retry it): the error is the reported result
    assert reports[-1]["status"] == "error" and "refuses this rate" in reports[-1]["error"]
    # and it is final: a restart does not train it again
    trial.trainable({"trial": {"setting": {"lr": 3.0}, "seed": 0}}, record)
    assert trained == [3.0]


def test_an_exception_from_tune_is_left_to_tune(stubbed, monkeypatch):
    record, reports, trained = stubbed

    def failing_report(metrics, **kw):
        raise RuntimeError("Tune's session is gone")

    def reporting_run_trial(cfg, progress=None, cache=None, checkpoint=None, wait_for_cold=False):
        progress({"event": "stage", "stage": 1, "stages_done": 1, "step": 1, "gap": 1.0})

    monkeypatch.setattr(trial.tune, "report", failing_report)
    monkeypatch.setattr(trial, "run_trial", reporting_run_trial)
    # a failure inside a report is not the science's: it propagates, so Tune can retry
    with pytest.raises(RuntimeError, match="session is gone"):
        trial.trainable(CONFIG, record)
    # and nothing was recorded as finished
    assert TrialStore(record.run_dir, trial.unit_name(trial_members(
        CONFIG, record)[0][2], 0)).final() is None


def test_a_second_run_under_the_same_storage_reuses_the_first_runs_baseline(monkeypatch,
                                                                           tmp_path):
    from wssweep.checkpoint import final_records

    reports = []
    stub_ray(monkeypatch, reports)
    experiment = {"data": {"name": "digits", "train_size": 200, "test_size": 100},
                  "model": {"name": "logreg"}, "lr": 0.1,
                  "protocol": {"kind": "online", "chunks": 2, "stop": {"max_epochs": 2}}}
    finals = {}
    for name, shrink in (("first", 1.0), ("second", 0.5)):  # two sweeps, one storage
        record = SweepRecord(name=name, run_dir=str(tmp_path / name), spec_path="s.yaml",
                             spec={}, experiment=experiment, seeds=[0], swept=["shrink"],
                             metric="gap", mode="min", wandb=WandbRecord(mode="disabled"))
        Path(record.run_dir).mkdir()  # as the driver makes it
        trial.trainable({"trial": {"setting": {"shrink": shrink}, "seed": 0}}, record)
        finals[name] = final_records(record.run_dir)[0]
    # the first trained its seed's stage 1 and cold arm; the second found them in the store
    assert not finals["first"]["baseline_reused"] and finals["second"]["baseline_reused"]
    assert finals["second"]["cold/stage_seconds"] == finals["first"]["cold/stage_seconds"]
    assert (tmp_path / ".baselines").is_dir()


# --- a group: several (setting, seed) members in one Tune trial, trained as one model -------

GROUP_EXPERIMENT = {"data": {"name": "digits", "train_size": 240, "test_size": 120},
                    "model": {"name": "mlp", "width": 16}, "lr": 0.01,
                    "optim": {"name": "adam", "batch_size": 32},
                    "protocol": {"kind": "online", "chunks": 3, "stop": {"max_epochs": 3}}}
GROUP = {"trial": {"group": [{"setting": {"shrink": 0.5}, "seed": s} for s in (0, 1, 2)]}}


@pytest.fixture
def group_run(monkeypatch, tmp_path):
    """The trainable with Ray stubbed and the real science; returns (record, reports, calls)."""
    from wssweep.science import group as group_module

    reports, calls = [], []
    stub_ray(monkeypatch, reports)
    for name, module in (("run_group", group_module), ("run_trial", trial)):
        real = getattr(module, name)
        monkeypatch.setattr(trial, name, lambda *a, _real=real, _name=name, **kw: (
            calls.append((_name, len(a[0]) if _name == "run_group" else 1)), _real(*a, **kw))[1])
    record = SweepRecord(name="s", run_dir=str(tmp_path / "run"), spec_path="s.yaml", spec={},
                         experiment=GROUP_EXPERIMENT, seeds=[0, 1, 2], swept=["shrink"],
                         metric="gap", mode="min", wandb=WandbRecord(mode="disabled"),
                         fuse="seeds")
    Path(record.run_dir).mkdir()
    return record, reports, calls


def test_a_group_records_each_member_and_reports_their_mean_after_every_stage(group_run):
    import statistics

    from wssweep.checkpoint import final_records

    record, reports, calls = group_run
    trial.trainable(GROUP, record)
    # one fused training of the three seeds
    assert calls == [("run_group", 3)]
    finals = sorted(final_records(record.run_dir), key=lambda r: r["seed"])
    # one final record per member, each its own seed's, finished
    assert [(r["seed"], r["status"], r["group_size"]) for r in finals] == [
        (0, "completed", 3), (1, "completed", 3), (2, "completed", 3)]
    assert all(r["stages_done"] == 3 and len(r["warm/stage_test_acc"]) == 3 for r in finals)
    # Tune heard once per stage, then the final: each the members' mean
    assert [r.get("stages_done") for r in reports[:-1]] == [1, 2, 3]
    assert all(r["members"] == 3 for r in reports)
    assert reports[-1]["final"] and reports[-1]["val_gap"] == pytest.approx(
        statistics.fmean(r["val_gap"] for r in finals))
    assert reports[-2]["gap"] == pytest.approx(statistics.fmean(r["gap"] for r in finals))
    # Tune restarts it (its snapshot predated the report): nothing trains, the same mean again
    trial.trainable(GROUP, record)
    assert calls == [("run_group", 3)] and len(reports) == 5 and reports[4] == reports[3]
    starts = trial.read_starts(record.run_dir)
    assert [s["event"] for s in starts] == ["start"] * 3 + ["replay"] * 3


def test_a_group_with_finished_members_trains_only_the_others(group_run):
    from wssweep.checkpoint import final_records

    record, reports, calls = group_run
    first = {"trial": {"group": GROUP["trial"]["group"][:1]}}
    trial.trainable(first, record)  # seed 0 alone (as if its group had ended there)
    trial.trainable(GROUP, record)
    # seed 0 was not trained again; the two left trained as one group
    assert calls == [("run_trial", 1), ("run_group", 2)]
    assert sorted(r["seed"] for r in final_records(record.run_dir)) == [0, 1, 2]
    events = [(s["event"], s["unit"][-5:]) for s in trial.read_starts(record.run_dir)]
    assert events == [("start", "seed0"), ("replay", "seed0"), ("start", "seed1"),
                      ("start", "seed2")]


def test_an_exception_of_the_science_in_a_group_is_every_members_result(group_run, monkeypatch):
    from wssweep.checkpoint import final_records

    record, reports, calls = group_run

    def refusing(*args, **kwargs):
        raise ValueError("the science refuses this group")

    monkeypatch.setattr(trial, "run_group", refusing)
    trial.trainable(GROUP, record)
    finals = final_records(record.run_dir)
    assert [r["status"] for r in finals] == ["error"] * 3
    assert all("refuses this group" in r["error"] for r in finals)
    assert reports[-1]["final"] and reports[-1]["members"] == 3


@pytest.mark.parametrize("claims", [True, False, None])
def test_a_group_claims_its_cold_arms_at_its_start_as_its_entry_says(group_run, monkeypatch,
                                                                     claims):
    from wssweep.space import CLAIMS_COLD

    record, reports, calls = group_run
    seen = []
    real = trial.run_group
    monkeypatch.setattr(trial, "run_group", lambda *a, **kw: (
        seen.append(kw["claim_cold_arms"]), real(*a, **kw))[1])
    entry = dict(GROUP["trial"]) if claims is None else {**GROUP["trial"], CLAIMS_COLD: claims}
    trial.trainable({"trial": entry}, record)
    # no flag (a search's group, a run from before it): it claims, as it always did
    assert seen == [True if claims is None else claims]


@pytest.mark.parametrize("early_terminate", [True, False])
def test_a_group_waits_for_cold_arms_before_its_stage_reports_under_early_termination(
        group_run, monkeypatch, early_terminate):
    record, reports, calls = group_run
    seen = []
    real = trial.run_group
    monkeypatch.setattr(trial, "run_group", lambda *a, **kw: (
        seen.append(kw["wait_for_cold"]), real(*a, **kw))[1])
    trial.trainable(GROUP, record.model_copy(update={"early_terminate": early_terminate}))
    # ASHA compares the stage reports: each must carry the gap
    assert seen == [early_terminate]
