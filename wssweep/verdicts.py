"""The map's verdicts as hypothesis tests with stated error rates, corrected across a sweep.

For one setting, ``diffs`` are the per-seed paired differences *reference cold − warm* final test
accuracy, in points (the reference cold start of the sweep, paired on the seed). With μ their
mean and δ the spec's ``gap_tolerance`` (points), each setting gets three one-sided one-sample
t-tests (``scipy.stats.ttest_1samp``):

- *closed*: H0 μ ≥ δ against μ < δ — warm starting is non-inferior within the tolerance;
- *better*: H0 μ ≥ 0 against μ < 0 — warm starting beats the reference;
- *open*: H0 μ ≤ δ against μ > δ — warm starting is worse than the tolerance allows.

Each family's p-values (one per judged setting) are corrected across the settings of the sweep
with ``statsmodels.stats.multitest.multipletests``: Holm (``holm``, the default) bounds the
family-wise error rate — the chance that *any* setting of the sweep is called ``closed`` while
its true gap is at least δ is at most ``alpha``; Benjamini–Hochberg (``bh``) bounds the expected
share of false discoveries among the settings called ``closed`` instead; ``none`` tests each
setting at ``alpha`` alone. ``tests/test_verdicts.py`` checks these rates by simulation.

The verdicts, in this order: ``failed`` (most seeds did not train), ``unconverged`` (the compared
arms did not stop on the same criterion for most seeds: an under-trained arm makes any gap
meaningless), ``better`` (closed and better rejected), ``closed``, ``open``, ``inconclusive``.

Example:
    >>> close = Evidence(diffs=(0.1, -0.2, 0.0, 0.1, -0.1, 0.05))
    >>> far = Evidence(diffs=(3.1, 2.8, 3.3, 2.9, 3.0, 3.2))
    >>> [j.verdict for j in judge([close, far], tolerance=0.5)]
    ['closed', 'open']
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

# scipy.stats and statsmodels are imported where they are used: the spec reads this module's
# names, and validating a spec should not wait for them.

#: The verdicts a setting can get, best first.
VERDICTS = ("better", "closed", "open", "inconclusive", "unconverged", "failed")
#: Corrections across the settings of a sweep: the spec's ``verdict.correction``.
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}
Correction = Literal["holm", "bh", "none"]
#: Their names as the map and validate state them.
CORRECTION_NAMES = {"holm": "Holm (family-wise error rate)",
                    "bh": "Benjamini–Hochberg (false discovery rate)",
                    "none": "none (each setting at alpha alone)"}
DEFAULT_ALPHA = 0.05  # each family's error rate
DEFAULT_CORRECTION: Correction = "holm"
TEST_NAME = "one-sided paired t-test"


@dataclass(frozen=True)
class Evidence:
    """One setting's input to the verdict."""

    diffs: tuple[float, ...]  # per seed: reference cold − warm test accuracy, points
    n_failed: int = 0  # seeds whose compared arms did not train
    n_unconverged: int = 0  # valid seeds whose compared arms stopped on different criteria


@dataclass(frozen=True)
class Judgement:
    """A setting's verdict and the corrected p-values it rests on (NaN where not tested)."""

    verdict: str
    p_closed: float
    p_better: float
    p_open: float


def one_sided_p(diffs: Sequence[float], null: float,
                alternative: Literal["less", "greater"]) -> float:
    """The one-sided t-test's p-value of H0 (μ on the far side of ``null``); NaN below 2 seeds.

    Identical values have no spread: the p-value is then 0 when they lie strictly on the
    alternative's side of ``null`` and 1 otherwise (the limit of the t statistic).

    Example:
        >>> round(one_sided_p([0.1, 0.3, 0.2, 0.0], 0.5, "less"), 4)
        0.0062
    """
    arr = np.asarray(diffs, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return math.nan
    if np.all(arr == arr[0]):
        beyond = arr[0] < null if alternative == "less" else arr[0] > null
        return 0.0 if beyond else 1.0
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-identical values: precision loss
        return float(stats.ttest_1samp(arr, null, alternative=alternative).pvalue)


def pvalues(samples: Sequence[Sequence[float]], null: float,
            alternative: Literal["less", "greater"]) -> list[float]:
    """``one_sided_p`` of each sample; samples of one size are tested in one vectorized call."""
    from scipy import stats

    clean = [np.asarray(x, dtype=float) for x in samples]
    clean = [x[np.isfinite(x)] for x in clean]
    out = [math.nan] * len(clean)
    by_size: dict[int, list[int]] = {}
    for i, x in enumerate(clean):
        if x.size >= 2 and not np.all(x == x[0]):
            by_size.setdefault(x.size, []).append(i)
        else:
            out[i] = one_sided_p(x, null, alternative)
    for rows in by_size.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ps = stats.ttest_1samp(np.stack([clean[i] for i in rows]), null, axis=1,
                                   alternative=alternative).pvalue
        for i, p in zip(rows, ps, strict=True):
            out[i] = float(p)
    return out


def corrected(ps: Sequence[float], correction: Correction) -> list[float]:
    """The p-values adjusted across a family (Holm or Benjamini–Hochberg); NaN stays NaN.

    A hypothesis is rejected at level ``alpha`` exactly when its adjusted p-value is ≤ ``alpha``.

    Example:
        >>> [round(p, 3) for p in corrected([0.01, 0.04, 0.03], "holm")]
        [0.03, 0.06, 0.06]
    """
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, p in enumerate(ps) if math.isfinite(p)]
    out = [math.nan] * len(ps)
    method = CORRECTIONS[correction]
    if not tested:
        return out
    values = [ps[i] for i in tested]
    # statsmodels' Holm calls gc.collect() on every call: 60 ms in a process holding a map's
    # figures, seconds for a results page. Frozen objects are not collected, so it costs ~0.
    gc.freeze()
    try:
        adjusted = values if method is None else list(multipletests(values, method=method)[1])
    finally:
        gc.unfreeze()
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = float(p)
    return out


def judge(settings: Sequence[Evidence], tolerance: float, alpha: float = DEFAULT_ALPHA,
          correction: Correction = DEFAULT_CORRECTION) -> list[Judgement]:
    """The verdict of every setting of a sweep, its tests corrected across them (see module)."""
    status: list[str | None] = []
    for ev in settings:
        valid = sum(math.isfinite(d) for d in ev.diffs)
        if (valid == 0 and ev.n_failed > 0) or ev.n_failed > valid:
            status.append("failed")
        elif valid > 0 and 2 * ev.n_unconverged > valid:
            status.append("unconverged")
        else:
            status.append(None)
    judged = [i for i, s in enumerate(status) if s is None]

    def family(null: float, alternative: Literal["less", "greater"]) -> list[float]:
        return corrected(pvalues([settings[i].diffs for i in judged], null, alternative),
                         correction)

    p_closed, p_better, p_open = (family(tolerance, "less"), family(0.0, "less"),
                                  family(tolerance, "greater"))
    at = {i: k for k, i in enumerate(judged)}
    result = []
    for i, fixed in enumerate(status):
        if fixed is not None:
            result.append(Judgement(fixed, math.nan, math.nan, math.nan))
            continue
        k = at[i]
        closed, better, worse = (p_closed[k] <= alpha, p_better[k] <= alpha,
                                 p_open[k] <= alpha)
        verdict = ("better" if closed and better else "closed" if closed
                   else "open" if worse else "inconclusive")
        result.append(Judgement(verdict, p_closed[k], p_better[k], p_open[k]))
    return result


#: The power ``seeds_to_decide`` plans for: the chance of deciding when the gap is as observed.
PLANNING_POWER = 0.8
#: Beyond this many seeds a setting is reported as out of reach rather than by a number.
MAX_PLANNED_SEEDS = 10_000


def seeds_to_decide(diffs: Sequence[float], tolerance: float, level: float,
                    power: float = PLANNING_POWER) -> float:
    """How many seeds an undecided setting would need: the sample size at which its one-sided
    t-test (closed if its mean gap is below ``tolerance``, open if above) at ``level`` rejects
    with probability ``power``, were the true gap and spread those observed in ``diffs``
    (``statsmodels``' ``TTestPower``). A planning estimate: the observed gap is itself noisy,
    and a group-sequential design spends its level over several looks, so it needs somewhat
    more. ``inf`` when the observed gap sits on the tolerance, when beyond
    ``MAX_PLANNED_SEEDS``, or below 2 seeds; NaN when the diffs have no spread.

    Example:
        >>> seeds_to_decide([1.2, 0.4, 2.1, 1.6, 0.9, 1.7], tolerance=0.5, level=0.05)
        6
    """
    from statsmodels.stats.power import TTestPower

    x = np.asarray(diffs, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.inf
    sd = float(np.std(x, ddof=1))
    if sd == 0:
        return math.nan
    effect = abs(float(np.mean(x)) - tolerance) / sd
    if effect * math.sqrt(MAX_PLANNED_SEEDS) < 1:  # would need far more than the cap
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter at the extremes
        n = TTestPower().solve_power(effect_size=effect, alpha=level, power=power,
                                     alternative="larger")
    n = float(np.ravel(n)[0])
    return math.ceil(n) if math.isfinite(n) and n <= MAX_PLANNED_SEEDS else math.inf
