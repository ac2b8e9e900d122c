"""Tests of the NQM (Wu et al. 2018): moments, greedy rate, short-horizon bias."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest

from wssweep.config import ExperimentConfig, NQMConfig
from wssweep.science import nqm as nqm_module
from wssweep.science.nqm import (
    expected_loss,
    expected_loss_curve,
    greedy_lr,
    greedy_schedule,
    initial_state,
    lookahead_loss,
    make_nqm,
    momentum_moments,
    online_lookahead,
    optimal_schedule,
    run_nqm,
    sgd_moments,
    sgd_moments_n,
    simulate_monte_carlo,
)

# The standard NQM of the paper (h = 1/i, σ² = h, θ₀ ~ N(0, I)) at the given dimension and seed.
PAPER = {"spectrum_power": 1.0, "noise_scale": 1.0, "theta0_std": 1.0}

CHECK_STEPS = [0, 4, 19, 59, 119]  # indices into a 120-step curve (after steps 1, 5, 20, 60, 120)


@pytest.mark.parametrize(
    ("momentum", "lrs"),
    [
        (0.0, np.concatenate([np.full(60, 1.2), np.full(60, 0.3)])),
        (0.9, np.concatenate([np.full(60, 0.1), np.full(60, 0.02)])),
    ],
    ids=["sgd", "heavy-ball"],
)
def test_recurrence_matches_monte_carlo(momentum: float, lrs: np.ndarray) -> None:
    nqm = make_nqm(d=20, seed=3, **PAPER)
    exact = expected_loss_curve(nqm, lrs, momentum)
    mc_mean, mc_se = simulate_monte_carlo(nqm, lrs, momentum=momentum, n_runs=4000, seed=7)
    for t in CHECK_STEPS:
        # the exact E[L] after step t+1 lies within 3 Monte Carlo standard errors of the MC mean
        assert abs(exact[t] - mc_mean[t]) <= 3.0 * mc_se[t], (t, exact[t], mc_mean[t], mc_se[t])


def test_momentum_zero_is_sgd_and_closed_forms_match_recurrence() -> None:
    nqm = make_nqm(d=30, seed=1, **PAPER)
    m, v = initial_state(nqm)
    mean, second = initial_state(nqm, momentum=0.5)
    for _ in range(5):
        m, v = sgd_moments(nqm, m, v, 0.7)
        mean, second = momentum_moments(nqm, mean, second, 0.7, 0.0)
    # heavy ball with μ = 0 has E[θ²] = S₁₁ equal to SGD's m² + v
    assert np.allclose(second[:, 0, 0], m**2 + v)
    m_n, v_n = sgd_moments_n(nqm, *initial_state(nqm), 0.7, 5)
    # the closed-form n-step SGD map equals 5 single steps
    assert np.allclose(m_n, m) and np.allclose(v_n, v)
    rates = np.array([0.05, 0.4, 1.5])
    for mu in (0.0, 0.8):
        state = initial_state(nqm, mu)
        ahead = lookahead_loss(nqm, state, rates, 37, mu)
        by_steps = [expected_loss_curve(nqm, np.full(37, r), mu)[-1] for r in rates]
        # the O(log H) look-ahead loss (geometric sums / squaring) equals the step recurrence
        assert np.allclose(ahead, by_steps, rtol=1e-10)


def test_greedy_lr_is_argmin_of_one_step_loss() -> None:
    nqm = make_nqm(d=200, seed=2, **PAPER)
    rng = np.random.default_rng(0)
    m = rng.standard_normal(nqm.d) * 0.3
    v = rng.uniform(0.0, 0.2, nqm.d)
    alpha = greedy_lr(nqm, m, v)
    ratio = 1.0005  # grid spacing: consecutive grid rates differ by this factor
    grid = alpha * ratio ** np.arange(-5000, 5001) * np.exp(0.37 * math.log(ratio))  # off-centre
    losses = [expected_loss(nqm, *sgd_moments(nqm, m, v, a)) for a in grid]
    best = grid[int(np.argmin(losses))]
    # the closed-form greedy rate is within one grid step of the grid argmin of the one-step loss
    assert abs(best / alpha - 1.0) <= ratio - 1.0
    # and the closed form is not worse than any grid point
    assert expected_loss(nqm, *sgd_moments(nqm, m, v, alpha)) <= min(losses) + 1e-15


def test_online_horizon_one_agrees_with_greedy() -> None:
    nqm = make_nqm(d=100, seed=0, **PAPER)
    online = online_lookahead(nqm, horizon=1, total_steps=500, every=50, momentum=0.0)
    greedy = greedy_schedule(nqm, total_steps=500, every=50)
    # the numerical H = 1 look-ahead search finds the closed-form greedy rates
    assert np.allclose(online["lrs"], greedy["lrs"], rtol=1e-5)


@pytest.fixture(scope="module")
def default_online_runs() -> dict[int, dict]:
    nqm = make_nqm(d=1000, seed=0, **PAPER)  # the paper's NQM, as configs/nqm.yaml
    return {
        h: online_lookahead(nqm, horizon=h, total_steps=10_000, every=100, momentum=0.0)
        for h in (1, 10, 10_000)
    }


@pytest.mark.parametrize("short", [1, 10])
def test_short_horizon_bias_online_default_nqm(default_online_runs: dict, short: int) -> None:
    runs = default_online_runs
    mid = 5_000
    lr_short = runs[short]["lr_per_step"][mid]
    lr_long = runs[10_000]["lr_per_step"][mid]
    # the rate chosen mid-run with a short horizon is at least 5× below the H = 10,000 one
    assert lr_short * 5.0 <= lr_long, (short, lr_short, lr_long)
    # and the short horizon ends at a higher expected loss after 10,000 steps
    assert runs[short]["final_loss"] > runs[10_000]["final_loss"], (
        short, runs[short]["final_loss"], runs[10_000]["final_loss"])


def test_long_horizon_optimal_schedule_beats_greedy() -> None:
    nqm = make_nqm(d=100, seed=0, **PAPER)
    horizon = 300
    greedy = greedy_schedule(nqm, total_steps=horizon)  # horizon-1 rate re-chosen every step
    opt = optimal_schedule(nqm, horizon=horizon, iters=150, momentum=0.0, n_pieces=10)
    # the reported final loss is the exact recurrence's loss at T for the returned schedule
    assert math.isclose(opt["final_loss"], expected_loss_curve(nqm, opt["lrs"])[-1])
    # the horizon-T optimal schedule ends lower at T than the greedy schedule (short-horizon bias)
    assert opt["final_loss"] < greedy["final_loss"]
    # the greedy schedule decays its rate: it ends far below the optimal schedule's early rates
    assert greedy["lrs"][-1] < 0.1 * opt["lrs"][0]


SMALL = {"d": 50, "total_steps": 300, "every": 30}
KEYS = {"nqm/final_loss", "nqm/initial_loss", "nqm/lr_first", "nqm/lr_mid", "nqm/lr_last",
        "lr_chosen", "nqm/lrs", "nqm/loss_curve", "seconds"}


@pytest.mark.parametrize(
    "extra",
    [{}, {"method": "greedy"}, {"momentum": 0.5},
     {"method": "optimal_schedule", "iters": 20, "n_pieces": 5}],
    ids=["online", "greedy", "online-momentum", "optimal"],
)
def test_run_nqm_keys_finite_deterministic(extra: dict) -> None:
    cfg = NQMConfig.model_validate({**SMALL, **extra})
    a, b = (run_nqm(cfg, seed=4, meta_horizon=20) for _ in range(2))
    # the documented metric keys are all there
    assert set(a) >= KEYS
    # lr_chosen is the mid-run rate
    assert a["lr_chosen"] == a["nqm/lr_mid"]
    # the output is JSON-able
    json.dumps(a)
    scalars = [v for k, v in a.items() if not isinstance(v, list)]
    flat = scalars + a["nqm/lrs"] + [x for pair in a["nqm/loss_curve"] for x in pair]
    # every value is finite
    assert all(math.isfinite(x) for x in flat)
    # the loss curve is short and starts at step 0
    assert len(a["nqm/loss_curve"]) <= 50 and a["nqm/loss_curve"][0][0] == 0
    # same cfg, same metrics (seconds aside)
    assert {k: v for k, v in a.items() if k != "seconds"} == {
        k: v for k, v in b.items() if k != "seconds"}


def test_run_nqm_seed_changes_theta0() -> None:
    cfg = NQMConfig.model_validate(SMALL)
    a = run_nqm(cfg, seed=4, meta_horizon=20)["nqm/initial_loss"]
    # a different seed draws a different θ₀, hence a different initial loss
    assert a != run_nqm(cfg, seed=5, meta_horizon=20)["nqm/initial_loss"]


def test_nqm_holds_no_second_copy_of_a_config_default() -> None:
    params = inspect.signature(make_nqm).parameters
    # the NQM's shape comes from the caller (a validated NQMConfig), never from a default here
    for name in ("d", "spectrum_power", "noise_scale", "theta0_std", "seed"):
        assert params[name].default is inspect.Parameter.empty, name
    # nor do the methods default what the config sets (iterations, momentum, horizon, K)
    for fn, names in ((optimal_schedule, ("horizon", "iters", "momentum")),
                      (online_lookahead, ("horizon", "total_steps", "every", "momentum"))):
        params = inspect.signature(fn).parameters
        assert all(params[n].default is inspect.Parameter.empty for n in names), fn.__name__
    # and run_nqm takes the config's fields as they are: no defaults table of its own
    assert not hasattr(nqm_module, "_DEFAULTS")
    assert set(inspect.signature(run_nqm).parameters) == {"nqm", "seed", "meta_horizon"}


def test_the_default_config_reaches_run_nqm_unchanged(monkeypatch) -> None:
    seen = {}

    def fake_make_nqm(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(nqm_module, "make_nqm", fake_make_nqm)
    with pytest.raises(RuntimeError, match="stop"):
        run_nqm(NQMConfig(), seed=0, meta_horizon=1)
    default = ExperimentConfig(kind="nqm", meta_horizon=1).nqm
    # the NQM built is the schema's default one, key for key
    assert seen == {"d": default.d, "spectrum_power": default.spectrum_power,
                    "noise_scale": default.noise_scale, "theta0_std": default.theta0_std,
                    "seed": 0}


@pytest.mark.parametrize(
    ("call", "name"),
    [(lambda: make_nqm(d=0, seed=0, **PAPER), "d"),
     (lambda: make_nqm(d=3, seed=0, **{**PAPER, "noise_scale": -1.0}), "noise_scale"),
     (lambda: optimal_schedule(make_nqm(d=3, seed=0, **PAPER), horizon=5, iters=1,
                               momentum=0.0, lr_init=10.0), "lr_init"),
     (lambda: online_lookahead(make_nqm(d=3, seed=0, **PAPER), horizon=0, total_steps=5,
                               every=1, momentum=0.0), "horizon")],
    ids=["d", "noise_scale", "lr_init", "horizon"],
)
def test_library_misuse_is_a_value_error_naming_the_argument(call, name) -> None:
    # a wrong argument from a library caller is a programming error (ValueError), not user input
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        call()
