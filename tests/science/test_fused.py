"""Fused training of a group of stages gives each member what train_stage gives it alone."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from wssweep.config import ModelConfig
from wssweep.science.fused import Member, fusable, train_stage_group
from wssweep.science.interventions import l2_init_penalty, snapshot_params
from wssweep.science.models import build_model
from wssweep.science.optim import make_optimizer
from wssweep.science.schedules import make_schedule
from wssweep.science.train import StopRule, train_stage

torch.set_num_threads(1)

N, N_TEST, BATCH, DIM, CLASSES = 64, 40, 16, 40, 10  # 4 steps per epoch
RATES = {"sgd": [0.05, 0.1, 0.02, 0.08], "adam": [1e-3, 3e-3, 2e-3, 5e-4],
         "gi_adam": [1e-3, 3e-3, 2e-3, 5e-4]}


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def schedule(k: int, lr: float):
    """A constant, a warmup+cosine, a warmup+two-regime and a warmup from a nonzero start."""
    kw = [dict(warmup_steps=0, warmup_init=0.0, kind="constant"),
          dict(warmup_steps=10, warmup_init=0.0, kind="cosine"),
          dict(warmup_steps=5, warmup_init=0.0, kind="two_regime"),
          dict(warmup_steps=20, warmup_init=lr / 4, kind="constant")][k % 4]
    return make_schedule(lr, catapult=False, decay_steps=50, switch_step=30, ratio=0.1, **kw)


def stop(k: int) -> StopRule:
    """Stop rules that end the members' stages at different epochs and for different reasons."""
    return [StopRule(train_acc=0.999, plateau_std=0.0, plateau_window=3, max_epochs=25,
                     min_epochs=1),
            StopRule(train_acc=0.999, plateau_std=0.0, plateau_window=3, max_epochs=9,
                     min_epochs=1),
            StopRule(train_acc=0.5, plateau_std=0.0, plateau_window=3, max_epochs=25,
                     min_epochs=3),
            StopRule(train_acc=0.999, plateau_std=0.01, plateau_window=3, max_epochs=17,
                     min_epochs=1)][k % 4]


def data(seed: int, n: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    teacher = torch.randn(DIM, CLASSES, generator=torch.Generator().manual_seed(99))
    return x, (x @ teacher).argmax(1)


def members(opt: str, model: str, *, penalty: bool, k: int = 4, rates=None, log=None,
            stops=None) -> list[Member]:
    """K members with different seeds, pools, rates, schedules and stop rules; built afresh on
    every call, so two calls give identical, independent groups."""
    rates = rates or RATES[opt]
    out = []
    for i in range(k):
        net = build_model(ModelConfig(name=model), input_shape=(DIM,), num_classes=CLASSES,
                          seed=i)
        optimizer = make_optimizer(opt, net.parameters(), rates[i],
                                   momentum=0.9 if opt == "sgd" else 0.0, betas=(0.9, 0.999),
                                   weight_decay=1e-3 if opt == "sgd" else 1e-4)
        x, y = data(10 + i, N)
        x_test, y_test = data(100 + i, N_TEST)
        x_val, y_val = data(200 + i, N_TEST)
        with_penalty = penalty and i % 2 == 0
        out.append(Member(
            model=net, optimizer=optimizer, schedule=schedule(i, rates[i]), x=x, y=y,
            x_test=x_test, y_test=y_test, batch_size=BATCH,
            stop=(stops or stop)(i), generator=torch.Generator().manual_seed(1000 + i),
            penalty_init=snapshot_params(net) if with_penalty else None,
            penalty_coef=[1e-2, 0.0, 1e-1, 0.0][i] if with_penalty else 0.0,
            on_epoch=None if log is None else (lambda e, a, i=i: log.append((i, e, a))),
            x_val=x_val, y_val=y_val))
    return out


def one_by_one(group: list[Member]):
    results = []
    for m in group:
        penalty = None if m.penalty_init is None else (
            lambda m=m: l2_init_penalty(m.model, m.penalty_init, m.penalty_coef))
        results.append(train_stage(
            m.model, m.optimizer, m.schedule, m.x, m.y, m.x_test, m.y_test,
            batch_size=m.batch_size, stop=m.stop, generator=m.generator, penalty=penalty,
            on_epoch=m.on_epoch, x_val=m.x_val, y_val=m.y_val))
    return results


def fields(result) -> dict:
    d = dataclasses.asdict(result)
    d.pop("seconds")
    # NaN != NaN; compare "not a number" as a marker
    return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def assert_same_member(fused: Member, ref: Member, *, rtol=1e-8, atol=1e-10) -> None:
    for (name, p), q in zip(fused.model.named_parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=name)
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-9, msg=name)
    fo, ro = fused.optimizer, ref.optimizer
    assert fo.param_groups[0]["lr"] == pytest.approx(ro.param_groups[0]["lr"], rel=1e-12)
    for p, q in zip(fused.model.parameters(), ref.model.parameters(), strict=True):
        fs, rs = fo.state.get(p, {}), ro.state.get(q, {})
        assert sorted(fs) == sorted(rs)
        for key in rs:
            if isinstance(rs[key], torch.Tensor):
                assert fs[key].dtype == rs[key].dtype, key
                torch.testing.assert_close(fs[key], rs[key], rtol=rtol, atol=atol, msg=key)
            else:
                assert fs[key] == rs[key], key
    # the batch generator is left where train_stage leaves it (same randperm calls)
    assert torch.equal(fused.generator.get_state(), ref.generator.get_state())


def check_group(opt: str, model: str, penalty: bool, engine: str = "auto", **kw):
    log_f, log_r = [], []
    fused = members(opt, model, penalty=penalty, log=log_f, **kw)
    ref = members(opt, model, penalty=penalty, log=log_r, **kw)
    got = train_stage_group(fused, engine=engine)
    want = one_by_one(ref)
    assert [fields(r) for r in got] == [fields(r) for r in want]
    for f, r in zip(fused, ref, strict=True):
        assert_same_member(f, r)
    assert sorted(log_f) == sorted(log_r)  # the same epoch reports, member by member
    return got


@pytest.mark.parametrize("penalty", [False, True], ids=["plain", "l2_init"])
@pytest.mark.parametrize("model", ["mlp", "conv1d"])
@pytest.mark.parametrize("opt", ["sgd", "adam", "gi_adam"])
def test_fused_group_matches_train_stage_one_by_one(float64, opt, model, penalty):
    got = check_group(opt, model, penalty)
    # the members really stop at different epochs, so dropping members is exercised
    assert len({r.epochs for r in got}) >= 3
    assert max(r.steps for r in got) >= 40


def test_vmap_engine_matches_on_the_mlp(float64):
    # auto picks batched matmuls for the MLP; the general torch.func path must agree as well
    check_group("adam", "mlp", True, engine="vmap")


@pytest.mark.parametrize("opt", ["sgd", "adam", "gi_adam"])
def test_a_second_stage_continues_from_the_kept_optimizer_state(float64, opt):
    fused = members(opt, "mlp", penalty=False)
    ref = members(opt, "mlp", penalty=False)
    train_stage_group(fused)
    one_by_one(ref)
    short = StopRule(train_acc=1.0, plateau_std=0.0, plateau_window=3, max_epochs=3,
                     min_epochs=1)
    for group in (fused, ref):
        for i, m in enumerate(group):
            m.stop = short
            m.schedule = schedule(i + 1, RATES[opt][i])
            if i == 3:  # this one starts the stage with a new, empty optimizer
                m.optimizer = make_optimizer(opt, m.model.parameters(), 1e-3, momentum=0.5,
                                             betas=(0.8, 0.99), weight_decay=0.0)
    got, want = train_stage_group(fused), one_by_one(ref)
    assert [fields(r) for r in got] == [fields(r) for r in want]
    for f, r in zip(fused, ref, strict=True):
        assert_same_member(f, r)


def test_a_diverging_member_is_marked_and_the_others_are_unaffected(float64):
    rates = [0.05, 1e4, 0.02]
    got = check_group("sgd", "mlp", False, k=3, rates=rates)
    # the huge rate diverges after some steps, as train_stage finds alone
    assert got[1].diverged and got[1].stop_reason == "diverged" and got[1].steps > 0
    assert math.isnan(got[1].test_acc) and math.isnan(got[1].val_acc)
    # the others train to their own end
    assert not got[0].diverged and not got[2].diverged
    assert got[0].steps > got[1].steps and got[2].steps > got[1].steps


def test_a_member_diverging_at_its_first_step_is_left_untouched(float64):
    fused = members("adam", "mlp", penalty=False, k=2)
    ref = members("adam", "mlp", penalty=False, k=2)
    for group in (fused, ref):
        group[1].x = torch.full_like(group[1].x, math.inf)  # the very first loss is NaN
        for p in group[1].model.parameters():
            p.grad = torch.ones_like(p)  # whatever the caller left there
    got, want = train_stage_group(fused), one_by_one(ref)
    assert [fields(r) for r in got] == [fields(r) for r in want]
    assert got[1].diverged and got[1].steps == 0 and got[1].epochs == 0
    # no step taken: the gradients are the caller's and the optimizer has no state
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in fused[1].model.parameters())
    assert not fused[1].optimizer.state
    for f, r in zip(fused, ref, strict=True):
        assert_same_member(f, r)


def test_fusable_refuses_batchnorm_and_mixed_architectures():
    def net(name, **kw):
        shape = (3, 8, 8) if name == "resnet18" else (DIM,)
        return build_model(ModelConfig(name=name, **kw), input_shape=shape, num_classes=10,
                           seed=0)

    assert fusable([net("mlp"), net("mlp")])
    assert fusable([net("conv1d"), net("conv1d")])
    assert fusable([net("logreg")])
    # ResNet-18's BatchNorm keeps running statistics: not fusable, even with itself
    assert not fusable([net("resnet18"), net("resnet18")])
    assert not fusable([net("mlp"), net("conv1d")])
    assert not fusable([net("mlp"), net("mlp", width=50)])
    # the same parameter shapes, a different activation
    assert not fusable([net("mlp"), net("mlp", activation="tanh")])
    assert not fusable([torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))])
    assert not fusable([])


def test_train_stage_group_refuses_what_it_cannot_fuse():
    group = members("adam", "mlp", penalty=False, k=2)
    group[1].batch_size = BATCH * 2
    with pytest.raises(ValueError, match="batch_size"):
        train_stage_group(group)
    group = members("adam", "mlp", penalty=False, k=2)
    group[1].optimizer = make_optimizer("sgd", group[1].model.parameters(), 0.1, momentum=0.0,
                                        betas=(0.9, 0.999), weight_decay=0.0)
    with pytest.raises(ValueError, match="same optimizer"):
        train_stage_group(group)
    group = members("sgd", "mlp", penalty=False, k=1)
    group[0].optimizer = torch.optim.SGD(group[0].model.parameters(), lr=0.1, momentum=0.9,
                                         nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        train_stage_group(group)


@pytest.mark.parametrize("model", ["mlp", "conv1d"])
def test_float32_runs_are_deterministic(model):
    first, second = members("adam", model, penalty=True), members("adam", model, penalty=True)
    a, b = train_stage_group(first), train_stage_group(second)
    assert [fields(r) for r in a] == [fields(r) for r in b]
    for m1, m2 in zip(first, second, strict=True):
        for p, q in zip(m1.model.parameters(), m2.model.parameters(), strict=True):
            assert p.dtype == torch.float32 and torch.equal(p, q)
        for p, q in zip(m1.model.parameters(), m2.model.parameters(), strict=True):
            s1, s2 = m1.optimizer.state[p], m2.optimizer.state[q]
            assert all(torch.equal(s1[k], s2[k]) for k in s2)


def test_the_once_per_epoch_check_finds_each_members_divergence(float64, monkeypatch):
    from wssweep.science import fused as fused_module

    # the CUDA path's check (read once per epoch), forced on the CPU, against train_stage's
    # per-step check: the diverging member trains on to the end of its epoch, then stops
    monkeypatch.setattr(fused_module, "loss_checked_each_step", lambda device: False)
    rates = [0.05, 1e4, 0.02]
    group, ref = members("sgd", "mlp", penalty=False, k=3, rates=rates), members(
        "sgd", "mlp", penalty=False, k=3, rates=rates)
    got, want = train_stage_group(group), one_by_one(ref)
    # the same results: the diverged member's steps are those before its first non-finite loss
    assert [fields(r) for r in got] == [fields(r) for r in want]
    assert got[1].diverged and got[1].steps % (N // BATCH) != 0
    # the others are untouched by it, as with the per-step check
    for position in (0, 2):
        assert_same_member(group[position], ref[position])


def test_the_amp_path_trains_the_fused_convs(monkeypatch):
    from wssweep.science import fused as fused_module

    # CUDA's bfloat16 autocast forced on the CPU: vmap's conv1d forward runs under it
    plain = members("adam", "conv1d", penalty=True)
    train_stage_group(plain)
    monkeypatch.setattr(fused_module, "amp_dtype", lambda model, device: torch.bfloat16)
    amp = members("adam", "conv1d", penalty=True)
    results = train_stage_group(amp)
    assert not any(r.diverged for r in results) and all(r.steps > 0 for r in results)
    for a, p in zip(amp, plain, strict=True):
        weights = list(a.model.parameters())
        # the weights stay float32 (autocast casts inside the forward pass only) ...
        assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights)
        # ... and the bfloat16 forward pass did run: the trained weights are not float32's
        assert not all(torch.equal(w, q) for w, q in zip(weights, p.model.parameters(),
                                                         strict=True))
