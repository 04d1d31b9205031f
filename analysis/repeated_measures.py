"""Tests for user studies with repeated measures: every participant answers on many images and
every image is answered by many participants, so answers are not independent.

Ratings: `compare_per_image` compares two methods on per-image means (each image's ratings of a
method averaged first, the unit GazeShiftNet's paper used) — Wilcoxon signed-rank paired by image
when both methods were rated on the same images, else Mann-Whitney U; `mixed_model` fits
rating ~ method with crossed random intercepts for participant and image (statsmodels MixedLM:
one group, the two factors as variance components) and gives every pairwise contrast.

Choices: `cluster_bootstrap_shares` gives percentile intervals of preference shares that resample
participants and images with replacement (a two-way "pigeonhole" bootstrap: a trial weighs the
product of its participant's and its image's draw counts); `choice_test` tests "each trial's
pick is uniform among the candidates it showed" — the exact multinomial test only where it is
exact (every trial showed the same set and the outcomes can be enumerated), else a Monte Carlo
conditional test that draws each trial's pick among its own candidates. `holm` adjusts p-values.

Attention change (Gatys et al.): `attention_change` bootstraps the mean of per-image values over
images, per condition and method.
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

# The exact multinomial test enumerates every outcome up to this many; beyond, Monte Carlo.
MAX_ENUMERATED = 200_000
PAIRED_TEST = "Wilcoxon signed-rank on per-image means, paired by image"
UNPAIRED_TEST = "Mann-Whitney U on per-image means (the methods were rated on different images)"


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1) in the input's order:
    statsmodels' multipletests(method="holm"), the same as R's p.adjust(method="holm");
    ValueError for a p-value outside [0, 1]."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must be in [0, 1], got {p.tolist()[:10]}")
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, method="holm")[1]


def compare_per_image(means_a: pd.Series, means_b: pd.Series) -> dict:
    """Two methods' per-image mean ratings (Series indexed by image) compared two-sided:
    scipy.stats.wilcoxon on the differences when both cover the same images, else
    scipy.stats.mannwhitneyu. Returns test (its name), n_images_a, n_images_b, mean_a, mean_b
    (means over images), prob_a_higher (paired: share of images where a's mean is higher, ties
    ½; unpaired: U / (n_a n_b)), statistic and p. Every difference zero: p = 1, statistic NaN."""
    a, b = means_a.astype(float), means_b.astype(float)
    if a.empty or b.empty:
        raise ValueError(f"per-image comparison needs images of both methods, got {len(a)} and {len(b)}")
    out = {"n_images_a": len(a), "n_images_b": len(b), "mean_a": float(a.mean()), "mean_b": float(b.mean())}
    if set(a.index) == set(b.index):
        diff = (a - b.reindex(a.index)).to_numpy()
        prob = (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / len(diff)
        if np.all(diff == 0):
            return {**out, "test": PAIRED_TEST, "prob_a_higher": float(prob), "statistic": math.nan, "p": 1.0}
        result = stats.wilcoxon(diff, alternative="two-sided")
        return {**out, "test": PAIRED_TEST, "prob_a_higher": float(prob), "statistic": float(result.statistic),
                "p": float(result.pvalue)}
    result = stats.mannwhitneyu(a.to_numpy(), b.to_numpy(), alternative="two-sided")
    return {**out, "test": UNPAIRED_TEST, "prob_a_higher": float(result.statistic) / (len(a) * len(b)),
            "statistic": float(result.statistic), "p": float(result.pvalue)}


def attention_change(per_image: pd.DataFrame, seed: int = 0, n_resamples: int = 9999, by=None) -> pd.DataFrame:
    """Mean per group of per-image values (e.g. Δp_obj of the human maps; columns pair_id, value
    and the `by` columns, default those of condition and method that are there: a design with
    conditions puts its versions in `condition`) with a percentile bootstrap 95% interval over
    images (scipy.stats.bootstrap, `seed`): columns *by, n, mean, ci_low, ci_high (NaN for a
    group with a single image: no interval). ValueError on a missing column, a NaN value or an
    image given twice in a group."""
    by = [c for c in ("condition", "method") if c in per_image.columns] if by is None else list(by)
    if not by:
        raise ValueError(f"per_image needs a condition or method column to group by; it has {list(per_image.columns)}")
    missing = [c for c in [*by, "pair_id", "value"] if c not in per_image.columns]
    if missing:
        raise ValueError(f"per_image lacks the column(s) {missing}; it has {list(per_image.columns)}")
    if per_image["value"].isna().any():
        raise ValueError(f"per_image has {int(per_image['value'].isna().sum())} NaN value(s); expected one number"
                         f" per ({', '.join(by)}, pair_id)")
    keys = [*by, "pair_id"] + (["side"] if "side" in per_image.columns else [])
    per_image = per_image.assign(**{c: per_image[c].fillna("") for c in by})
    twice = per_image[per_image.duplicated(keys, keep=False)]
    if not twice.empty:
        raise ValueError(f"per_image has ({', '.join(keys)}) {twice[keys].iloc[0].tolist()} more than once; expected"
                         " one value per image and group")
    out = []
    for group_key, group in per_image.groupby(by, sort=True):
        values = group["value"].to_numpy(float)
        low = high = np.nan
        if len(values) >= 2 and np.ptp(values) == 0:
            low = high = values[0]  # every image alike: every resample too (scipy would warn, degenerate)
        elif len(values) >= 2:
            result = stats.bootstrap((values,), np.mean, method="percentile", confidence_level=0.95,
                                     n_resamples=n_resamples, rng=seed)
            low, high = result.confidence_interval
        out.append({**dict(zip(by, group_key)), "n": len(values), "mean": values.mean(), "ci_low": low,
                    "ci_high": high})
    return pd.DataFrame(out, columns=[*by, "n", "mean", "ci_low", "ci_high"])


@dataclass
class MixedModel:
    """A fitted rating ~ method model with crossed random intercepts. contrasts: one row per pair
    of methods (method_a, method_b, estimate = a − b in rating units, se, p: Wald z, two-sided);
    variances of the participant and image intercepts and of the residual; converged; note: what
    statsmodels warned, or why no model was fitted (then contrasts is empty)."""

    contrasts: pd.DataFrame
    var_participant: float = math.nan
    var_image: float = math.nan
    var_residual: float = math.nan
    converged: bool = False
    note: str = ""


CONTRAST_COLUMNS = ["method_a", "method_b", "estimate", "se", "p"]


def mixed_model(rows: pd.DataFrame, methods: list[str]) -> MixedModel:
    """rows: columns value, method, participant, image. Fits value ~ C(method) (treatment coding,
    `methods[0]` the reference) by REML with statsmodels MixedLM, the usual recipe for crossed
    random effects: a single group, vc_formula {participant: 0 + C(participant), image: 0 +
    C(image)}, optimizer lbfgs. ConvergenceWarnings are caught and written in the note (with
    converged False when the optimizer failed), never raised or hidden. Too little data (fewer
    than 2 methods, participants or images, or no more ratings than parameters) gives a note and
    no contrasts."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    empty = pd.DataFrame(columns=CONTRAST_COLUMNS)
    missing = sorted(set(rows["method"]) - set(methods))
    if missing:
        raise ValueError(f"ratings of method(s) {missing} are not among the methods to compare {methods}")
    levels = {"methods": rows["method"].nunique(), "participants": rows["participant"].nunique(),
              "images": rows["image"].nunique()}
    few = [f"{n} {name}" for name, n in levels.items() if n < 2]
    if few or len(rows) <= levels["methods"] + 3:
        why = ", ".join(few) if few else f"{len(rows)} ratings for {levels['methods'] + 3} parameters"
        return MixedModel(empty, note=f"mixed model not fitted: {why}")
    present = [m for m in methods if m in set(rows["method"])]
    code = {m: f"m{i:04d}" for i, m in enumerate(present)}  # level names patsy sorts in the methods' order
    data = pd.DataFrame({"value": rows["value"].astype(float).to_numpy(),
                         "version": rows["method"].map(code).to_numpy(),
                         "participant": rows["participant"].astype(str).to_numpy(),
                         "image": rows["image"].astype(str).to_numpy(), "group": 1})
    vc = {"participant": "0 + C(participant)", "image": "0 + C(image)"}
    model = sm.MixedLM.from_formula("value ~ C(version)", groups="group", vc_formula=vc, data=data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            result = model.fit(reml=True, method="lbfgs")
        except np.linalg.LinAlgError as exc:
            result, failure = None, exc
    for w in caught:  # anything else statsmodels warned goes on to the caller's filters
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    said = list(dict.fromkeys(str(w.message).split("\n")[0] for w in caught
                              if issubclass(w.category, ConvergenceWarning)))
    if result is None:
        return MixedModel(empty, note=f"mixed model could not be fitted: {failure}")
    k = len(present)
    coef = np.concatenate([[0.0], result.fe_params.to_numpy()[1:k]])
    cov = np.zeros((k, k))
    cov[1:, 1:] = result.cov_params().to_numpy()[1:k, 1:k]
    contrasts = []
    for i, j in itertools.combinations(range(k), 2):
        estimate = coef[i] - coef[j]
        se = math.sqrt(max(cov[i, i] + cov[j, j] - 2 * cov[i, j], 0.0))
        p = 2 * stats.norm.sf(abs(estimate) / se) if se > 0 else math.nan
        contrasts.append({"method_a": present[i], "method_b": present[j], "estimate": estimate, "se": se, "p": p})
    converged = bool(result.converged)
    note = ("mixed model did not converge: " if not converged else "") + "; ".join(said)
    vcomp = dict(zip(model.exog_vc.names, np.asarray(result.vcomp, dtype=float)))
    return MixedModel(pd.DataFrame(contrasts, columns=CONTRAST_COLUMNS), vcomp.get("participant", math.nan),
                      vcomp.get("image", math.nan), float(result.scale), converged, note.rstrip(": "))


def cluster_bootstrap_shares(chosen: np.ndarray, shown: np.ndarray, clusters: list[np.ndarray],
                             n_resamples: int = 2000, seed: int = 0,
                             confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals (low, high), one per method, of share = Σ chosen / Σ shown. chosen,
    shown: (trials, methods) 0/1 arrays (picked / shown on the trial); clusters: one integer
    code per trial for each clustering factor (e.g. participant, image). Each resample draws
    every factor's levels with replacement (`seed`); a trial weighs the product of its levels'
    draw counts. A resample in which a method was never shown is left out of that method's
    interval."""
    chosen, shown = np.asarray(chosen, float), np.asarray(shown, float)
    rng = np.random.default_rng(seed)
    shares = np.empty((n_resamples, chosen.shape[1]))
    for start in range(0, n_resamples, 256):  # bounded memory: (chunk, trials) weights at a time
        size = min(256, n_resamples - start)
        weights = np.ones((size, len(chosen)))
        for codes in clusters:
            n_levels = int(codes.max()) + 1
            counts = rng.multinomial(n_levels, np.full(n_levels, 1 / n_levels), size=size)
            weights *= counts[:, codes]
        numerator, denominator = weights @ chosen, weights @ shown
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[start:start + size] = np.where(denominator > 0, numerator / denominator, np.nan)
    alpha = (1 - confidence) / 2
    low, high = np.full(chosen.shape[1], np.nan), np.full(chosen.shape[1], np.nan)
    for m in range(chosen.shape[1]):
        values = shares[:, m][~np.isnan(shares[:, m])]
        if len(values):
            low[m], high[m] = np.quantile(values, [alpha, 1 - alpha])
    return low, high


def choice_test(chosen: np.ndarray, shown_sets: Counter, methods: list[str], seed: int = 0,
                n_draws: int = 100_000) -> dict:
    """Test of "each trial's pick is uniform among the candidates it showed". chosen: picks per
    method (in `methods`' order); shown_sets: {frozenset of methods shown: trials}. Returns
    statistic (the chi-square discrepancy Σ (picked − expected)² / expected, expected = Σ over
    trials of 1 / candidates shown), p, test (its name) and exact (bool). Exact multinomial
    (outcomes no more probable than the observed one) when one set was shown and it has at most
    MAX_ENUMERATED outcomes; otherwise the Monte Carlo conditional test: `n_draws` simulated
    studies (`seed`), each trial's pick drawn uniformly among its own candidates, p = share at
    least as discrepant, the observed study counted among them."""
    chosen = np.asarray(chosen, dtype=float)
    expected = np.array([sum(n / len(s) for s, n in shown_sets.items() if m in s) for m in methods])
    if len(methods) < 2:
        return {"statistic": math.nan, "p": math.nan, "test": "one method shown: nothing to compare", "exact": False}
    statistic = float(((chosen - expected) ** 2 / expected).sum())
    n, k = int(chosen.sum()), len(methods)
    outcomes = math.comb(n + k - 1, k - 1)
    if len(shown_sets) == 1 and outcomes <= MAX_ENUMERATED:
        return {"statistic": statistic, "p": exact_multinomial_p(chosen, expected / n),
                "test": f"exact multinomial test ({outcomes} outcomes enumerated)", "exact": True}
    p = _conditional_p(statistic, expected, shown_sets, methods, seed, n_draws)
    return {"statistic": statistic, "p": p, "exact": False,
            "test": f"Monte Carlo conditional test (each trial's pick drawn among its own candidates; chi-square "
                    f"discrepancy; {n_draws} draws, seed {seed})"}


def exact_multinomial_p(chosen: np.ndarray, probs: np.ndarray) -> float:
    """Exact multinomial test: the total probability of the outcomes no more probable than `chosen`."""
    n, k = int(np.sum(chosen)), len(chosen)
    bars = np.array(list(itertools.combinations(range(n + k - 1), k - 1)), dtype=np.int64).reshape(-1, k - 1)
    edges = np.column_stack([np.full(len(bars), -1), bars, np.full(len(bars), n + k - 1)])
    outcomes = np.diff(edges, axis=1) - 1  # stars and bars: every way to split n choices over k methods

    def log_pmf(x):
        return gammaln(n + 1) - gammaln(x + 1).sum(axis=-1) + (x * np.log(probs)).sum(axis=-1)

    observed = log_pmf(np.asarray(chosen, dtype=float))
    logs = log_pmf(outcomes.astype(float))
    return float(min(1.0, np.exp(logs[logs <= observed + 1e-9]).sum()))


def _conditional_p(statistic: float, expected: np.ndarray, shown_sets: Counter, methods: list[str], seed: int,
                   n_draws: int) -> float:
    rng = np.random.default_rng(seed)
    index = {m: i for i, m in enumerate(methods)}
    simulated = np.zeros((n_draws, len(methods)))
    for members, count in sorted(shown_sets.items(), key=lambda item: sorted(item[0])):
        members = sorted(members)
        simulated[:, [index[m] for m in members]] += rng.multinomial(count, np.full(len(members), 1 / len(members)),
                                                                     size=n_draws)
    drawn = ((simulated - expected) ** 2 / expected).sum(axis=1)
    return float((1 + np.sum(drawn >= statistic - 1e-9)) / (n_draws + 1))
