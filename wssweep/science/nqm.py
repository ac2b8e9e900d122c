"""The noisy quadratic model (NQM) of short-horizon bias (Wu, Ren, Liao, Grosse, ICLR 2018).

"Understanding Short-Horizon Bias in Stochastic Meta-Optimization", arXiv 1803.02021, §3 and
Theorems 1–2. The loss is

    L(θ) = ½ Σ_i h_i (θ_i − c_i)²,   c_i ~ N(0, σ_i²) redrawn at every step (θ* = 0),

so E[L] = ½ Σ_i h_i (E[θ_i²] + σ_i²). Everything here is exact and deterministic: the first two
moments of θ evolve by closed-form recurrences, and the Monte Carlo simulator exists only to check
them.

State conventions:

* SGD: per coordinate ``m = E[θ_i]`` and ``v = Var[θ_i]`` (arrays of shape ``(d,)``).
* Heavy-ball momentum: ``x_t = (θ_t, θ_{t−1})`` per coordinate, with ``mean`` of shape ``(d, 2)``
  and the **second moment** (not the covariance) ``second = E[x xᵀ]`` of shape ``(d, 2, 2)``, so
  E[θ_i²] = ``second[i, 0, 0]``. The start is at rest: θ_{−1} = θ_0.
* The start θ_0 is a fixed sample (drawn once with the NQM's seed), so m_0 = θ_0 and v_0 = 0.
* Step counting: a rate sequence ``lrs`` of length T gives T steps; a loss curve has T entries,
  entry t being E[L] **after** step t + 1 (the initial loss is reported separately).

Example:
    >>> nqm = make_nqm(d=100, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
    >>> out = online_lookahead(nqm, horizon=1, total_steps=200, every=50, momentum=0.0)
    >>> len(out["lrs"]), out["final_loss"] < out["initial_loss"]
    (4, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from wssweep.config import NQMConfig

__all__ = [
    "NQM",
    "expected_loss",
    "expected_loss_curve",
    "greedy_lr",
    "greedy_schedule",
    "initial_state",
    "lookahead_loss",
    "lookahead_lr",
    "make_nqm",
    "momentum_loss",
    "momentum_moments",
    "online_lookahead",
    "optimal_schedule",
    "run_nqm",
    "sgd_moments",
    "sgd_moments_n",
    "simulate_monte_carlo",
]

#: Points of the log-spaced rate grid the look-ahead search scans before refining.
LOOKAHEAD_GRID_POINTS = 121
#: The grid spans [stable limit · LOOKAHEAD_GRID_DECADES⁻¹⁰, stable limit) (decades of rate).
LOOKAHEAD_GRID_DECADES = 9.0
#: Largest rate considered, as a fraction of the stability limit 2(1 + μ)/max h.
STABLE_FRACTION = 1.0 - 1e-9
#: Tolerance on log(rate) of the bounded scalar refinement (relative precision of the rate).
LOOKAHEAD_XATOL = 1e-7
#: Most [step, loss] points ``run_nqm`` reports in ``nqm/loss_curve``.
LOSS_CURVE_POINTS = 50

State = tuple[np.ndarray, np.ndarray]


def _bad(name: str, expected: str, given: object) -> ValueError:
    # A library caller's mistake: a validated config (wssweep.config.NQMConfig) never gets here.
    return ValueError(f"{name}: expected {expected}, got {given!r}")


@dataclass
class NQM:
    """A noisy quadratic: curvatures ``h`` (> 0), target noise ``sigma2`` (≥ 0), start ``theta0``.

    All three are 1-D float64 arrays of the same length d.

    Example:
        >>> nqm = NQM(h=np.array([1.0, 0.5]), sigma2=np.array([1.0, 0.5]), theta0=np.zeros(2))
        >>> nqm.d, nqm.max_lr()
        (2, 2.0)
    """

    h: np.ndarray
    sigma2: np.ndarray
    theta0: np.ndarray

    def __post_init__(self) -> None:
        self.h = np.asarray(self.h, dtype=np.float64)
        self.sigma2 = np.asarray(self.sigma2, dtype=np.float64)
        self.theta0 = np.asarray(self.theta0, dtype=np.float64)
        if self.h.ndim != 1 or self.h.size == 0:
            raise _bad("h", "a non-empty 1-D array of curvatures", self.h.shape)
        for name, arr in (("sigma2", self.sigma2), ("theta0", self.theta0)):
            if arr.shape != self.h.shape:
                raise _bad(name, f"an array of shape {self.h.shape} like h", arr.shape)
        if not (np.all(np.isfinite(self.h)) and np.all(self.h > 0)):
            raise _bad("h", "finite curvatures > 0", self.h)
        if not (np.all(np.isfinite(self.sigma2)) and np.all(self.sigma2 >= 0)):
            raise _bad("sigma2", "finite noise variances >= 0", self.sigma2)
        if not np.all(np.isfinite(self.theta0)):
            raise _bad("theta0", "a finite start", self.theta0)

    @property
    def d(self) -> int:
        """Number of coordinates."""
        return int(self.h.size)

    def max_lr(self, momentum: float = 0.0) -> float:
        """Stability limit of a constant rate: heavy ball is stable iff 0 < α h < 2(1 + μ) ∀ h."""
        return 2.0 * (1.0 + momentum) / float(self.h.max())


def make_nqm(
    *, d: int, spectrum_power: float, noise_scale: float, theta0_std: float, seed: int
) -> NQM:
    """The standard NQM: h_i = i^−power, σ_i² = noise_scale · h_i, θ_0 ~ N(0, theta0_std² I).

    ``d`` is the dimension, ``seed`` draws θ_0 (NumPy ``default_rng``).

    Example:
        >>> nqm = make_nqm(d=3, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=1)
        >>> nqm.h.tolist(), nqm.sigma2.tolist()
        ([1.0, 0.5, 0.3333333333333333], [1.0, 0.5, 0.3333333333333333])
    """
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise _bad("d", "an integer >= 1", d)
    if not math.isfinite(spectrum_power):
        raise _bad("spectrum_power", "a finite number", spectrum_power)
    if not (math.isfinite(noise_scale) and noise_scale >= 0):
        raise _bad("noise_scale", "a finite number >= 0", noise_scale)
    if not (math.isfinite(theta0_std) and theta0_std >= 0):
        raise _bad("theta0_std", "a finite number >= 0", theta0_std)
    i = np.arange(1, d + 1, dtype=np.float64)
    h = i ** (-float(spectrum_power))
    theta0 = float(theta0_std) * np.random.default_rng(seed).standard_normal(d)
    return NQM(h=h, sigma2=float(noise_scale) * h, theta0=theta0)


# ----------------------------------------------------------------------------------------------
# Exact moment recurrences
# ----------------------------------------------------------------------------------------------


def expected_loss(nqm: NQM, m: np.ndarray, v: np.ndarray) -> float:
    """E[L] = ½ Σ h (m² + v + σ²) for mean ``m`` and variance ``v`` of θ.

    Example:
        >>> nqm = make_nqm(d=2, spectrum_power=1.0, noise_scale=1.0, theta0_std=0.0, seed=0)
        >>> expected_loss(nqm, np.zeros(2), np.zeros(2))  # only the target noise: ½(1 + ¼)
        0.625
    """
    return float(0.5 * np.sum(nqm.h * (m * m + v + nqm.sigma2)))


def sgd_moments(nqm: NQM, m: np.ndarray, v: np.ndarray, lr: float) -> State:
    """One SGD step with rate ``lr``: m ← (1 − α h) m, v ← (1 − α h)² v + α² h² σ².

    Example:
        >>> nqm = make_nqm(d=2, spectrum_power=1.0, noise_scale=1.0, theta0_std=0.0, seed=0)
        >>> m, v = sgd_moments(nqm, np.ones(2), np.zeros(2), 1.0)
        >>> m.tolist(), v.tolist()
        ([0.0, 0.5], [1.0, 0.125])
    """
    r = 1.0 - lr * nqm.h
    return r * m, r * r * v + (lr * nqm.h) ** 2 * nqm.sigma2


def _sgd_factors(h: np.ndarray, sigma2: np.ndarray, lr: np.ndarray, steps: int) -> State:
    """(r^{2n}, noise added in n steps from v = 0) for constant rates ``lr`` (broadcast with h).

    Geometric sum: Σ_{k<n} r^{2k} α²h²σ² = (1 − r^{2n}) α h σ² / (2 − α h), written with
    log1p/expm1 so tiny rates keep full precision; α h = 2 (r² = 1) gives n α² h² σ².
    """
    ah = lr * h
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_r2 = 2.0 * np.where(ah < 1.0, np.log1p(-np.minimum(ah, 1.0)), np.log(np.abs(1.0 - ah)))
        r2n = np.exp(steps * log_r2)
        one_minus = -np.expm1(steps * log_r2)
        floor = ah * sigma2 / (2.0 - ah)
        added = np.where(np.abs(2.0 - ah) < 1e-12, steps * ah * ah * sigma2, one_minus * floor)
    return r2n, added


def sgd_moments_n(nqm: NQM, m: np.ndarray, v: np.ndarray, lr: float, steps: int) -> State:
    """``steps`` SGD steps with a constant rate, in closed form (geometric sums; O(d) for any n).

    Example:
        >>> nqm = make_nqm(d=5, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> m, v = nqm.theta0, np.zeros(5)
        >>> a = sgd_moments_n(nqm, m, v, 0.3, 3)
        >>> b = sgd_moments(nqm, *sgd_moments(nqm, *sgd_moments(nqm, m, v, 0.3), 0.3), 0.3)
        >>> bool(np.allclose(a[0], b[0]) and np.allclose(a[1], b[1]))
        True
    """
    if steps < 0:
        raise _bad("steps", "an integer >= 0", steps)
    if steps == 0:
        return m.copy(), v.copy()
    r2n, added = _sgd_factors(nqm.h, nqm.sigma2, np.float64(lr), steps)
    rn = (1.0 - lr * nqm.h) ** steps
    return rn * m, r2n * v + added


def initial_state(nqm: NQM, momentum: float = 0.0) -> State:
    """The exact start: (m, v) = (θ_0, 0) for SGD; (mean, second) with θ_{−1} = θ_0 for momentum.

    ``momentum == 0`` gives the SGD state, otherwise the heavy-ball state (module docstring).

    Example:
        >>> nqm = make_nqm(d=2, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> mean, second = initial_state(nqm, momentum=0.9)
        >>> mean.shape, second.shape
        ((2, 2), (2, 2, 2))
    """
    if momentum == 0.0:
        return nqm.theta0.copy(), np.zeros(nqm.d)
    mean = np.stack([nqm.theta0, nqm.theta0], axis=1)
    return mean, mean[:, :, None] * mean[:, None, :]


def momentum_loss(nqm: NQM, second: np.ndarray) -> float:
    """E[L] = ½ Σ h (S₁₁ + σ²) from the heavy-ball second moment ``second`` (shape (d, 2, 2)).

    Example:
        >>> nqm = make_nqm(d=3, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> mean, second = initial_state(nqm, momentum=0.5)
        >>> bool(np.isclose(momentum_loss(nqm, second), expected_loss(nqm, nqm.theta0, 0.0)))
        True
    """
    return float(0.5 * np.sum(nqm.h * (second[:, 0, 0] + nqm.sigma2)))


def momentum_moments(
    nqm: NQM, mean: np.ndarray, second: np.ndarray, lr: float, momentum: float
) -> State:
    """One heavy-ball step θ' = θ − α h (θ − c) + μ (θ − θ₋₁) on the state x = (θ, θ₋₁).

    With A = [[1 − α h + μ, −μ], [1, 0]]: mean ← A mean, second ← A S Aᵀ + α² h² σ² e₁e₁ᵀ
    (``second`` is E[x xᵀ], not the covariance).

    Example:
        >>> nqm = make_nqm(d=4, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> m, v = initial_state(nqm)
        >>> mean, second = momentum_moments(nqm, *initial_state(nqm, 0.5), 0.1, 0.0)
        >>> m1, v1 = sgd_moments(nqm, m, v, 0.1)  # μ = 0 is plain SGD
        >>> bool(np.allclose(second[:, 0, 0], m1**2 + v1))
        True
    """
    a = 1.0 - lr * nqm.h + momentum
    q = (lr * nqm.h) ** 2 * nqm.sigma2
    m0, m1 = mean[:, 0], mean[:, 1]
    s00, s01, s11 = second[:, 0, 0], second[:, 0, 1], second[:, 1, 1]
    new_mean = np.stack([a * m0 - momentum * m1, m0], axis=1)
    n00 = a * a * s00 - 2.0 * a * momentum * s01 + momentum * momentum * s11 + q
    n01 = a * s00 - momentum * s01
    new_second = np.empty_like(second)
    new_second[:, 0, 0] = n00
    new_second[:, 0, 1] = n01
    new_second[:, 1, 0] = n01
    new_second[:, 1, 1] = s00
    return new_mean, new_second


def _state_loss(nqm: NQM, state: State, momentum: float) -> float:
    if momentum == 0.0:
        return expected_loss(nqm, state[0], state[1])
    return momentum_loss(nqm, state[1])


def _step(nqm: NQM, state: State, lr: float, momentum: float) -> State:
    if momentum == 0.0:
        return sgd_moments(nqm, state[0], state[1], lr)
    return momentum_moments(nqm, state[0], state[1], lr, momentum)


def _run(nqm: NQM, state: State, lrs: np.ndarray, momentum: float) -> tuple[State, np.ndarray]:
    """Apply the rates ``lrs`` one step each; return the new state and E[L] after each step."""
    losses = np.empty(len(lrs))
    for t, lr in enumerate(lrs):
        state = _step(nqm, state, float(lr), momentum)
        losses[t] = _state_loss(nqm, state, momentum)
    return state, losses


def expected_loss_curve(nqm: NQM, lrs: np.ndarray, momentum: float = 0.0) -> np.ndarray:
    """Exact E[L] after each step of the rate sequence ``lrs`` (entry t: after step t + 1).

    ``momentum`` is the heavy-ball coefficient μ (0 = plain SGD).

    Example:
        >>> nqm = make_nqm(d=50, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> curve = expected_loss_curve(nqm, np.full(100, 0.5))
        >>> curve.shape, bool(curve[-1] < curve[0])
        ((100,), True)
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    _, losses = _run(nqm, initial_state(nqm, momentum), lrs, momentum)
    return losses


# ----------------------------------------------------------------------------------------------
# Monte Carlo check
# ----------------------------------------------------------------------------------------------


def simulate_monte_carlo(
    nqm: NQM,
    lrs: np.ndarray,
    momentum: float = 0.0,
    n_runs: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n_runs`` actual SGD / heavy-ball trajectories from θ_0, sampling c ~ N(0, σ²) per step.

    Each step uses the stochastic gradient g = h (θ − c) with a fresh c, and
    θ' = θ − α g + μ (θ − θ₋₁) (θ₋₁ = θ_0). The per-run loss after a step is
    E_c[L(θ)] = ½ Σ h (θ² + σ²) — the loss averaged over a fresh target, an unbiased,
    lower-variance estimate of E[L] than one sampled L. Returns the mean over runs and its standard
    error (std / √n_runs), one entry per step (after step t + 1).

    Example:
        >>> nqm = make_nqm(d=10, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> mean, se = simulate_monte_carlo(nqm, np.full(20, 0.5), n_runs=200)
        >>> mean.shape, bool(np.all(se > 0))
        ((20,), True)
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(nqm.sigma2)
    theta = np.tile(nqm.theta0, (n_runs, 1))
    prev = theta.copy()
    mean = np.empty(len(lrs))
    stderr = np.empty(len(lrs))
    for t, lr in enumerate(lrs):
        c = sigma * rng.standard_normal(theta.shape)
        new = theta - lr * nqm.h * (theta - c) + momentum * (theta - prev)
        prev, theta = theta, new
        per_run = 0.5 * (theta * theta + nqm.sigma2) @ nqm.h
        mean[t] = per_run.mean()
        stderr[t] = per_run.std(ddof=1) / math.sqrt(n_runs)
    return mean, stderr


# ----------------------------------------------------------------------------------------------
# Greedy and look-ahead rates
# ----------------------------------------------------------------------------------------------


def greedy_lr(nqm: NQM, m: np.ndarray, v: np.ndarray) -> float:
    """Closed-form horizon-1 SGD rate: α* = Σ h² s / Σ h³ (s + σ²), s = m² + v.

    It minimises the expected loss after one SGD step (it is not restricted to the stable range).

    Example:
        >>> nqm = make_nqm(d=1, spectrum_power=1.0, noise_scale=1.0, theta0_std=0.0, seed=0)
        >>> greedy_lr(nqm, np.array([1.0]), np.array([0.0]))  # 1 / (1 + σ²) with h = σ² = 1
        0.5
    """
    s = m * m + v
    h2 = nqm.h * nqm.h
    return float(np.sum(h2 * s) / np.sum(h2 * nqm.h * (s + nqm.sigma2)))


def _sgd_lookahead(nqm: NQM, s: np.ndarray, lrs: np.ndarray, horizon: int) -> np.ndarray:
    """E[L] after ``horizon`` SGD steps at each constant rate in ``lrs``, from E[θ²] = ``s``."""
    lrs = np.asarray(lrs, dtype=np.float64)[:, None]
    r2n, added = _sgd_factors(nqm.h[None, :], nqm.sigma2[None, :], lrs, horizon)
    with np.errstate(over="ignore", invalid="ignore"):
        s_h = r2n * s[None, :] + added
        return 0.5 * (s_h + nqm.sigma2[None, :]) @ nqm.h


Mat = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # 2×2 entries (00, 01, 10, 11)
Sym = tuple[np.ndarray, np.ndarray, np.ndarray]  # symmetric 2×2 entries (00, 01, 11)


def _compose(p1: Mat, n1: Sym, p2: Mat, n2: Sym) -> tuple[Mat, Sym]:
    """Affine second-moment maps S ↦ P S Pᵀ + N: first (p1, n1), then (p2, n2), entrywise."""
    a00, a01, a10, a11 = p2
    b00, b01, b10, b11 = p1
    p = (a00 * b00 + a01 * b10, a00 * b01 + a01 * b11,
         a10 * b00 + a11 * b10, a10 * b01 + a11 * b11)
    s00, s01, s11 = n1
    m00, m01 = a00 * s00 + a01 * s01, a00 * s01 + a01 * s11  # rows of P2 · N1
    m10, m11 = a10 * s00 + a11 * s01, a10 * s01 + a11 * s11
    n = (m00 * a00 + m01 * a01 + n2[0], m00 * a10 + m01 * a11 + n2[1],
         m10 * a10 + m11 * a11 + n2[2])
    return p, n


def _momentum_lookahead(
    nqm: NQM, second: np.ndarray, lrs: np.ndarray, horizon: int, momentum: float
) -> np.ndarray:
    """E[L] after ``horizon`` heavy-ball steps at each constant rate in ``lrs`` (O(log horizon)).

    The n-step map S ↦ Aⁿ S Aⁿᵀ + Σ_{k<n} Aᵏ Q Aᵏᵀ is built by repeated squaring.
    """
    ah = np.asarray(lrs, dtype=np.float64)[:, None] * nqm.h[None, :]
    zero, one = np.zeros_like(ah), np.ones_like(ah)
    base_p: Mat = (1.0 - ah + momentum, np.full_like(ah, -momentum), one, zero)
    base_n: Sym = (ah * ah * nqm.sigma2[None, :], zero, zero)
    res_p: Mat = (one, zero, zero, one)
    res_n: Sym = (zero, zero, zero)
    n = horizon
    with np.errstate(over="ignore", invalid="ignore"):
        while n:
            if n & 1:
                res_p, res_n = _compose(res_p, res_n, base_p, base_n)
            n >>= 1
            if n:
                base_p, base_n = _compose(base_p, base_n, base_p, base_n)
        r0, r1 = res_p[0], res_p[1]  # first row of Aⁿ: θ_n = r0 θ_0 + r1 θ_{−1} (+ noise)
        s00 = (r0 * r0 * second[:, 0, 0] + 2.0 * r0 * r1 * second[:, 0, 1]
               + r1 * r1 * second[:, 1, 1] + res_n[0])
        return 0.5 * (s00 + nqm.sigma2[None, :]) @ nqm.h


def lookahead_loss(
    nqm: NQM, state: State, lrs: np.ndarray, horizon: int, momentum: float = 0.0
) -> np.ndarray:
    """Exact E[L] ``horizon`` steps ahead of ``state`` for each constant rate in ``lrs``.

    SGD uses the closed form (geometric sums), heavy ball the repeated-squaring map; both cost
    O(d · log horizon) at most, so horizon 10,000 is cheap.

    Example:
        >>> nqm = make_nqm(d=20, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> state = initial_state(nqm)
        >>> exact = expected_loss_curve(nqm, np.full(30, 0.4))[-1]
        >>> bool(np.isclose(lookahead_loss(nqm, state, np.array([0.4]), 30)[0], exact))
        True
    """
    if horizon < 1:
        raise _bad("horizon", "an integer >= 1", horizon)
    if momentum == 0.0:
        m, v = state
        return _sgd_lookahead(nqm, m * m + v, lrs, horizon)
    return _momentum_lookahead(nqm, state[1], lrs, horizon, momentum)


def _minimize_log_rate(
    fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, n_grid: int
) -> tuple[float, float]:
    """Minimum of a vectorised ``fn(rates)`` on [lo, hi]: log grid, then bounded refinement."""
    grid = np.geomspace(lo, hi, n_grid)
    vals = np.asarray(fn(grid), dtype=np.float64)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = int(np.argmin(vals))
    best_lr, best_val = float(grid[i]), float(vals[i])
    a, b = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, n_grid - 1)])

    def scalar(z: float) -> float:
        val = float(fn(np.array([math.exp(z)]))[0])
        return val if math.isfinite(val) else math.inf

    # Imported here: scipy.optimize costs ~0.4 s, paid by every Ray worker that imports the science.
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(scalar, bounds=(a, b), method="bounded",
                          options={"xatol": LOOKAHEAD_XATOL})
    if res.fun < best_val:
        best_lr, best_val = math.exp(float(res.x)), float(res.fun)
    return best_lr, best_val


def lookahead_lr(
    nqm: NQM,
    state: State,
    horizon: int,
    momentum: float = 0.0,
    n_grid: int = LOOKAHEAD_GRID_POINTS,
) -> tuple[float, float]:
    """The constant rate minimising the exact E[L] ``horizon`` steps ahead of ``state``.

    The search runs over log α on [limit · 10⁻⁹, limit), limit = 2(1 + μ)/max h (the stable
    range): a log grid of ``n_grid`` points, then bounded golden-section/Brent refinement between
    the best point's neighbours. Returns (rate, look-ahead loss).

    Example:
        >>> nqm = make_nqm(d=50, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> m, v = initial_state(nqm)
        >>> lr, _ = lookahead_lr(nqm, (m, v), horizon=1)
        >>> bool(np.isclose(lr, greedy_lr(nqm, m, v), rtol=1e-5))
        True
    """
    hi = nqm.max_lr(momentum) * STABLE_FRACTION
    lo = hi * 10.0 ** (-LOOKAHEAD_GRID_DECADES)
    return _minimize_log_rate(
        lambda lrs: lookahead_loss(nqm, state, lrs, horizon, momentum), lo, hi, n_grid
    )


def _schedule_loop(
    nqm: NQM,
    total_steps: int,
    every: int,
    momentum: float,
    choose: Callable[[State], float],
) -> dict[str, Any]:
    """Every ``every`` steps pick a rate with ``choose(state)``, then train that many steps."""
    if total_steps < 1:
        raise _bad("total_steps", "an integer >= 1", total_steps)
    if every < 1:
        raise _bad("every", "an integer >= 1", every)
    state = initial_state(nqm, momentum)
    initial = _state_loss(nqm, state, momentum)
    lrs: list[float] = []
    starts: list[int] = []
    losses = np.empty(total_steps)
    for start in range(0, total_steps, every):
        n = min(every, total_steps - start)
        lr = float(choose(state))
        lrs.append(lr)
        starts.append(start)
        state, losses[start : start + n] = _run(nqm, state, np.full(n, lr), momentum)
    lrs_arr = np.asarray(lrs)
    return {
        "lrs": lrs_arr,
        "choice_steps": np.asarray(starts),
        "lr_per_step": np.repeat(lrs_arr, every)[:total_steps],
        "losses": losses,
        "initial_loss": initial,
        "final_loss": float(losses[-1]),
    }


def online_lookahead(
    nqm: NQM, *, horizon: int, total_steps: int, every: int, momentum: float
) -> dict[str, Any]:
    """Online short-horizon meta-optimization of the rate on the NQM.

    Every ``every`` (K) steps, choose the constant rate that minimises the exact E[L] ``horizon``
    (H) steps ahead of the current state (:func:`lookahead_lr`), then train K steps with it.
    ``momentum`` is the heavy-ball μ (fixed; only the rate is meta-optimized).

    Returns a dict: ``lrs`` (one rate per re-choice), ``choice_steps`` (the step at which each was
    chosen), ``lr_per_step`` (length ``total_steps``), ``losses`` (exact E[L] after each step),
    ``initial_loss`` and ``final_loss`` (E[L] after ``total_steps`` steps).

    Example:
        >>> nqm = make_nqm(d=100, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> short = online_lookahead(nqm, horizon=1, total_steps=1000, every=100, momentum=0.0)
        >>> long = online_lookahead(nqm, horizon=1000, total_steps=1000, every=100, momentum=0.0)
        >>> bool(long["lrs"][5] > short["lrs"][5])
        True
    """
    if horizon < 1:
        raise _bad("horizon", "an integer >= 1", horizon)
    return _schedule_loop(
        nqm, total_steps, every, momentum,
        lambda state: lookahead_lr(nqm, state, horizon, momentum)[0],
    )


def greedy_schedule(nqm: NQM, *, total_steps: int, every: int = 1) -> dict[str, Any]:
    """SGD with the closed-form greedy rate (:func:`greedy_lr`) re-chosen every ``every`` steps.

    Returns the same dict as :func:`online_lookahead`.

    Example:
        >>> nqm = make_nqm(d=50, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> out = greedy_schedule(nqm, total_steps=100)
        >>> len(out["lrs"]), bool(out["lrs"][-1] < out["lrs"][0])
        (100, True)
    """
    return _schedule_loop(nqm, total_steps, every, 0.0, lambda state: greedy_lr(nqm, *state))


# ----------------------------------------------------------------------------------------------
# Horizon-T optimal schedule (gradient descent through the recurrence)
# ----------------------------------------------------------------------------------------------


def _piece_bounds(horizon: int, n_pieces: int | None) -> np.ndarray:
    """Start steps of at most ``n_pieces`` constant pieces, geometrically spaced, plus ``horizon``.

    ``None`` (or ≥ horizon) gives one piece per step.
    """
    if n_pieces is None or n_pieces >= horizon:
        return np.arange(horizon + 1)
    inner = np.round(np.geomspace(1, horizon, n_pieces)).astype(int)
    return np.unique(np.concatenate([[0], inner[:-1], [horizon]]))


def optimal_schedule(
    nqm: NQM,
    *,
    horizon: int,
    iters: int,
    momentum: float,
    n_pieces: int | None = None,
    lr_init: float | None = None,
    meta_lr: float = 0.05,
) -> dict[str, Any]:
    """The rate schedule minimising E[L(θ_T)] at T = ``horizon``, by Adam on log-rates.

    Parametrisation: piecewise-constant rates on at most ``n_pieces`` pieces whose start steps are
    geometrically spaced in [0, T) (``None``: one rate per step). Each piece's rate is
    α = limit · sigmoid(z), limit = 2(1 + μ)/max h, so log α ≈ z for α well below the limit and
    every constant piece stays in the stable range. Adam (step ``meta_lr`` on z, ``iters``
    iterations) minimises log E[L(θ_T)] through the exact recurrence in float64 autograd: SGD pieces
    use the closed form (cost per iteration ∝ number of pieces); heavy ball (``momentum`` μ > 0)
    steps the 2×2 recurrence (cost ∝ T). ``lr_init`` (default: limit / 4) is the starting constant.

    Returns a dict: ``lrs`` (per step, length T), ``piece_lrs``, ``piece_starts``, ``losses``
    (exact E[L] after each step), ``initial_loss``, ``final_loss`` (E[L] at T, best iterate),
    ``meta_losses`` (E[L(θ_T)] at each iteration).

    Example:
        >>> nqm = make_nqm(d=20, spectrum_power=1.0, noise_scale=1.0, theta0_std=1.0, seed=0)
        >>> out = optimal_schedule(nqm, horizon=50, iters=50, momentum=0.0, n_pieces=5)
        >>> len(out["lrs"]), bool(out["final_loss"] <= out["meta_losses"][0])
        (50, True)
    """
    import torch

    if horizon < 1:
        raise _bad("horizon", "an integer >= 1", horizon)
    if iters < 0:
        raise _bad("iters", "an integer >= 0", iters)
    if n_pieces is not None and n_pieces < 1:
        raise _bad("n_pieces", "an integer >= 1 or None", n_pieces)
    bounds = _piece_bounds(horizon, n_pieces)
    lengths = np.diff(bounds)
    limit = nqm.max_lr(momentum)
    init = limit / 4.0 if lr_init is None else float(lr_init)
    if not 0.0 < init < limit:
        raise _bad("lr_init", f"a rate in (0, {limit:g}) (the stable range)", lr_init)
    f64 = torch.float64
    h = torch.tensor(nqm.h, dtype=f64)
    sigma2 = torch.tensor(nqm.sigma2, dtype=f64)
    s0 = torch.tensor(nqm.theta0**2, dtype=f64)
    lens = torch.tensor(lengths, dtype=f64)
    steps_idx = torch.tensor(np.repeat(np.arange(len(lengths)), lengths))
    z0 = math.log(init / (limit - init))  # inverse sigmoid of init / limit
    z = torch.full((len(lengths),), z0, dtype=f64, requires_grad=True)

    def rates(zz: torch.Tensor) -> torch.Tensor:
        return limit * torch.sigmoid(zz.clamp(max=30.0))

    def final_loss(zz: torch.Tensor) -> torch.Tensor:
        alpha = rates(zz)
        if momentum == 0.0:
            s = s0
            for k in range(len(lengths)):
                ah = alpha[k] * h
                r2n = ((1.0 - ah) ** 2) ** lens[k]
                s = r2n * s + (1.0 - r2n) * ah * sigma2 / (2.0 - ah)
            return 0.5 * torch.sum(h * (s + sigma2))
        a_steps = alpha[steps_idx]
        s00, s01, s11 = s0, s0, s0
        for t in range(horizon):
            ah = a_steps[t] * h
            a = 1.0 - ah + momentum
            n00 = a * a * s00 - 2.0 * a * momentum * s01 + momentum**2 * s11 + ah * ah * sigma2
            s00, s01, s11 = n00, a * s00 - momentum * s01, s00
        return 0.5 * torch.sum(h * (s00 + sigma2))

    opt = torch.optim.Adam([z], lr=meta_lr)
    meta_losses: list[float] = []
    best_z, best = z.detach().clone(), math.inf
    for _ in range(iters + 1):
        loss = final_loss(z)
        value = float(loss.detach())
        meta_losses.append(value)
        if math.isfinite(value) and value < best:
            best, best_z = value, z.detach().clone()
        if len(meta_losses) > iters:
            break
        opt.zero_grad()
        torch.log(loss).backward()
        opt.step()
    piece_lrs = rates(best_z).numpy().copy()
    lrs = np.repeat(piece_lrs, lengths)
    losses = expected_loss_curve(nqm, lrs, momentum)
    return {
        "lrs": lrs,
        "piece_lrs": piece_lrs,
        "piece_starts": bounds[:-1],
        "losses": losses,
        "initial_loss": _state_loss(nqm, initial_state(nqm, momentum), momentum),
        "final_loss": float(losses[-1]),
        "meta_losses": np.asarray(meta_losses),
    }


# ----------------------------------------------------------------------------------------------
# Experiment-kind entry point
# ----------------------------------------------------------------------------------------------


def _log_curve(losses: np.ndarray, initial: float) -> list[list[float]]:
    """At most LOSS_CURVE_POINTS [step, loss] pairs: step 0, then log-spaced steps up to the end."""
    total = len(losses)
    steps = np.unique(np.round(np.geomspace(1, total, LOSS_CURVE_POINTS - 1)).astype(int))
    return [[0, float(initial)]] + [[int(s), float(losses[s - 1])] for s in steps]


def run_nqm(nqm: NQMConfig, *, seed: int, meta_horizon: int) -> dict[str, Any]:
    """Run one NQM meta-optimization experiment (``kind: nqm``) and return flat JSON-able metrics.

    ``nqm`` is the validated ``nqm:`` section of the experiment (``wssweep.config.NQMConfig``, which
    documents every key and holds the defaults), ``seed`` draws θ₀ and ``meta_horizon`` is H; the
    schema guarantees H >= 1 where the method reads it. ``nqm.method``: ``online`` (the rate
    minimising E[L] H steps ahead, re-chosen every ``every`` steps), ``greedy`` (the closed-form
    horizon-1 SGD rate, re-chosen every ``every`` steps; H unused) or ``optimal_schedule`` (the
    schedule minimising E[L] at step H, ``iters`` Adam iterations on ``n_pieces`` pieces, its last
    rate held after step H and the run cut at ``total_steps``).

    Metrics: ``nqm/final_loss`` (exact E[L] after ``total_steps``), ``nqm/initial_loss``,
    ``nqm/lr_first``, ``nqm/lr_mid`` (rate in force at step total_steps // 2), ``nqm/lr_last``,
    ``lr_chosen`` (= ``nqm/lr_mid``), ``nqm/lrs`` (one rate per re-choice or schedule piece),
    ``nqm/loss_curve`` (≤ 50 log-spaced [step, E[L]] pairs from step 0) and ``seconds`` (wall time).

    Example:
        >>> from wssweep.config import NQMConfig
        >>> cfg = NQMConfig.model_validate({"d": 50, "total_steps": 200, "every": 20})
        >>> out = run_nqm(cfg, seed=0, meta_horizon=5)
        >>> len(out["nqm/lrs"]), out["lr_chosen"] == out["nqm/lr_mid"]
        (10, True)
    """
    start = time.perf_counter()
    model = make_nqm(d=nqm.d, spectrum_power=nqm.spectrum_power, noise_scale=nqm.noise_scale,
                     theta0_std=nqm.theta0_std, seed=seed)
    total, momentum = nqm.total_steps, nqm.momentum
    if nqm.method == "online":
        out = online_lookahead(model, horizon=meta_horizon, total_steps=total, every=nqm.every,
                               momentum=momentum)
        lrs, lr_per_step, losses = out["lrs"], out["lr_per_step"], out["losses"]
    elif nqm.method == "greedy":
        out = greedy_schedule(model, total_steps=total, every=nqm.every)
        lrs, lr_per_step, losses = out["lrs"], out["lr_per_step"], out["losses"]
    else:
        out = optimal_schedule(model, horizon=meta_horizon, iters=nqm.iters, momentum=momentum,
                               n_pieces=nqm.n_pieces)
        lrs = out["piece_lrs"]
        lr_per_step = out["lrs"][:total]
        if total > meta_horizon:
            lr_per_step = np.concatenate(
                [lr_per_step, np.full(total - meta_horizon, lr_per_step[-1])])
        losses = expected_loss_curve(model, lr_per_step, momentum)
    lr_mid = float(lr_per_step[total // 2])
    return {
        "nqm/final_loss": float(losses[-1]),
        "nqm/initial_loss": float(out["initial_loss"]),
        "nqm/lr_first": float(lr_per_step[0]),
        "nqm/lr_mid": lr_mid,
        "nqm/lr_last": float(lr_per_step[-1]),
        "lr_chosen": lr_mid,
        "nqm/lrs": [float(x) for x in lrs],
        "nqm/loss_curve": _log_curve(losses, out["initial_loss"]),
        "seconds": time.perf_counter() - start,
    }
