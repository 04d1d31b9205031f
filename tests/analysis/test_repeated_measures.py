"""Statistics that respect repeated measures (analysis.repeated_measures, through
analysis.study_stats): each compared with scipy or statsmodels called directly on the same data."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis import repeated_measures
from analysis.study_stats import holm, preference_shares, rating_summary, spearman_brown

METHODS = ["gazeshiftnet", "hag", "pix2pix"]
EFFECTS = {"gazeshiftnet": 0.6, "hag": -0.4, "pix2pix": 0.0}


def _ratings(participants: int = 6, images: int = 5, seed: int = 5) -> pd.DataFrame:
    """Every participant rates every method on every image (0..3): participant and image offsets."""
    rng = np.random.default_rng(seed)
    offset_p, offset_i = rng.normal(0, 0.6, participants), rng.normal(0, 0.4, images)
    rows = []
    for p, i, method in itertools.product(range(participants), range(images), METHODS):
        rating = np.clip(np.round(1.5 + EFFECTS[method] + offset_p[p] + offset_i[i] + rng.normal(0, 0.5)), 0, 3)
        rows.append({"participant_id": p, "trial_id": len(rows), "task": "rate", "block": "fidelity",
                     "question": "score", "pair_id": f"p{i}", "side": "x", "method": method, "rating": float(rating),
                     "valid": True})
    return pd.DataFrame(rows)


def test_per_image_means_are_compared_with_scipy_paired_when_images_are_shared():
    responses = _ratings()
    per_method, pairwise, _ = rating_summary(responses, method_order=["pix2pix", "gazeshiftnet", "hag"])
    assert per_method["method"].tolist() == ["pix2pix", "gazeshiftnet", "hag"]  # the given order, not alphabetical
    means = responses.groupby(["method", "pair_id"])["rating"].mean()
    for row in pairwise.to_dict("records"):
        a, b = means[row["method_a"]], means[row["method_b"]]
        direct = stats.wilcoxon(a - b.reindex(a.index))
        assert row["test"].startswith("Wilcoxon signed-rank on per-image means, paired by image")
        assert (row["statistic"], row["p"]) == pytest.approx((direct.statistic, direct.pvalue))
        assert (row["n_images_a"], row["mean_a"]) == (5, pytest.approx(a.mean()))
    assert pairwise["p_holm"].to_numpy() == pytest.approx(holm(pairwise["p"]))
    assert per_method.set_index("method").loc["hag", "image_mean"] == pytest.approx(means["hag"].mean())
    # Raw answers counted as independent would claim 30 observations per method, not 5 images.
    assert per_method.set_index("method").loc["hag", ["n", "n_images", "n_participants"]].tolist() == [30, 5, 6]


def test_methods_rated_on_different_images_are_compared_with_mann_whitney_on_per_image_means():
    responses = _ratings()
    responses = responses[~((responses["method"] == "pix2pix") & responses["pair_id"].isin(["p0", "p1"]))]
    _, pairwise, _ = rating_summary(responses)
    row = pairwise.set_index(["method_a", "method_b"]).loc[("gazeshiftnet", "pix2pix")]
    means = responses.groupby(["method", "pair_id"])["rating"].mean()
    direct = stats.mannwhitneyu(means["gazeshiftnet"], means["pix2pix"], alternative="two-sided")
    assert row["test"].startswith("Mann-Whitney U on per-image means")
    assert (row["statistic"], row["p"]) == pytest.approx((direct.statistic, direct.pvalue))
    assert row["prob_a_higher"] == pytest.approx(direct.statistic / (5 * 3))


def test_the_mixed_model_equals_statsmodels_called_directly():
    responses = _ratings()
    _, pairwise, models = rating_summary(responses)
    data = responses.assign(group=1)
    vc = {"participant": "0 + C(participant_id)", "image": "0 + C(pair_id)"}
    fit = sm.MixedLM.from_formula("rating ~ C(method)", groups="group", vc_formula=vc, data=data).fit(method="lbfgs")
    assert fit.converged
    rows = pairwise.set_index(["method_a", "method_b"])
    ref = rows.loc[("gazeshiftnet", "hag")]  # gazeshiftnet is the reference level: a − b = −coefficient
    assert ref["mixed_estimate"] == pytest.approx(-fit.fe_params["C(method)[T.hag]"])
    assert (ref["mixed_se"], ref["mixed_p"]) == pytest.approx((fit.bse["C(method)[T.hag]"],
                                                              fit.pvalues["C(method)[T.hag]"]))
    other = rows.loc[("hag", "pix2pix")]
    contrast = fit.t_test(np.array([[0.0, 1.0, -1.0]]))
    assert other["mixed_estimate"] == pytest.approx(float(np.squeeze(contrast.effect)))
    assert other["mixed_p"] == pytest.approx(float(np.squeeze(contrast.pvalue)))
    assert pairwise["mixed_p_holm"].to_numpy() == pytest.approx(holm(pairwise["mixed_p"]))
    model = models.iloc[0]
    variances = dict(zip(fit.model.exog_vc.names, fit.vcomp))
    assert (model["var_participant"], model["var_image"], model["var_residual"]) == pytest.approx(
        (variances["participant"], variances["image"], fit.scale))
    assert model["converged"] and model["n_ratings"] == 90


def test_a_mixed_model_that_does_not_converge_says_so_in_its_note(monkeypatch):
    # An optimizer stopped after one iteration cannot converge, whatever the numeric libraries'
    # versions (whether lbfgs converges on a boundary fit differs between them).
    fit = sm.MixedLM.fit
    monkeypatch.setattr(sm.MixedLM, "fit", lambda self, *args, **kw: fit(self, *args, **{**kw, "maxiter": 1}))
    rows = [{"participant_id": p, "trial_id": 6 * p + 2 * i + k, "task": "rate", "block": "realism",
             "question": "score", "pair_id": f"p{i}", "side": "x", "method": m,
             "rating": v + (0.5 if (i + p) % 2 else 0.0) + 0.1 * ((3 * p + i) % 4)}
            for p in range(4) for i in range(3) for k, (m, v) in enumerate((("a", 2.0), ("b", 1.0)))]
    _, pairwise, models = rating_summary(pd.DataFrame(rows))  # filterwarnings=error: nothing may escape
    assert not models["converged"].iloc[0]
    assert models["note"].iloc[0].startswith("mixed model did not converge: ")
    assert len(models["note"].iloc[0]) > len("mixed model did not converge: ")  # statsmodels' own words follow
    assert pairwise["p"].iloc[0] == pytest.approx(stats.wilcoxon([1.0, 1.0, 1.0]).pvalue)  # still the per-image test


def test_a_rating_without_its_image_is_refused_naming_block_and_question():
    responses = _ratings()
    responses.loc[3, "pair_id"] = None
    with pytest.raises(ValueError, match=r"no pair_id \(e\.g\. block 'fidelity', question 'score', trial 3\)"):
        rating_summary(responses)


def _choices(pattern: dict[int, list[str]], shown: str = "a|b", block: str = "preference",
             question: str = "realism") -> list[dict]:
    """Trials of participant p picking pattern[p][i] on image i."""
    return [{"participant_id": p, "trial_id": 100 * p + i, "task": "choose_best", "block": block, "question": question,
             "pair_id": f"p{i}", "side": "x", "shown_methods": shown, "choice": choice, "valid": True}
            for p, picks in pattern.items() for i, choice in enumerate(picks)]


def test_cluster_bootstrap_intervals_are_wider_than_wilson_when_participants_cluster():
    # Four participants always pick a, four always b: 40 of 80 answers, but only 8 independent people.
    table = preference_shares(pd.DataFrame(_choices({p: ["a" if p < 4 else "b"] * 10 for p in range(8)})),
                              n_resamples=2000, n_draws=2000).set_index("method")
    wilson = stats.binomtest(40, 80).proportion_ci(0.95, method="wilson")
    low, high = table.loc["a", ["ci_low", "ci_high"]]
    assert table.loc["a", "share"] == 0.5 and low < 0.5 < high
    assert high - low > 2 * (wilson.high - wilson.low)
    assert table.loc["a", "interval"].startswith("95% percentile cluster bootstrap over participants and images")
    # Over participants alone it is scipy's bootstrap of the pooled share of whole participants.
    no_images = pd.DataFrame(_choices({p: ["a" if p < 4 else "b"] * 10 for p in range(8)})).drop(columns="pair_id")
    alone = preference_shares(no_images, n_resamples=4000, n_draws=2000).set_index("method")
    picked, shown = np.array([10.0] * 4 + [0.0] * 4), np.full(8, 10.0)
    direct = stats.bootstrap((picked, shown), lambda k, n, axis=-1: k.sum(axis=axis) / n.sum(axis=axis), paired=True,
                             method="percentile", n_resamples=4000, rng=1).confidence_interval
    assert alone.loc["a", ["ci_low", "ci_high"]].tolist() == pytest.approx([direct.low, direct.high], abs=0.07)


def test_the_conditional_test_matches_the_enumerated_null_when_trials_show_different_subsets():
    # Six trials show a, b, c and four show a, b: the chi-square null (a multinomial) does not hold.
    picks = ["a", "a", "a", "b", "c", "c"] + ["a", "a", "b", "b"]
    sets = [("a", "b", "c")] * 6 + [("a", "b")] * 4
    rows = [{"participant_id": t, "trial_id": t, "task": "choose_best", "block": "b", "question": "q",
             "pair_id": f"p{t}", "side": "x", "shown_methods": "|".join(s), "choice": c, "valid": True}
            for t, (s, c) in enumerate(zip(sets, picks))]
    table = preference_shares(pd.DataFrame(rows), seed=2, n_draws=20_000, n_resamples=200)
    expected = np.array([6 / 3 + 4 / 2, 6 / 3 + 4 / 2, 6 / 3])

    def statistic(counts):
        return ((np.asarray(counts) - expected) ** 2 / expected).sum()

    observed = statistic([5, 3, 2])
    assert table["statistic"].iloc[0] == pytest.approx(observed)
    # The null by full enumeration: every trial's pick uniform among its own candidates.
    tail = total = 0.0
    for outcome in itertools.product(*[range(len(s)) for s in sets]):
        counts = np.zeros(3)
        for s, k in zip(sets, outcome):
            counts["abc".index(s[k])] += 1
        weight = np.prod([1 / len(s) for s in sets])
        total += weight
        tail += weight * (statistic(counts) >= observed - 1e-9)
    assert total == pytest.approx(1.0)
    assert table["p"].iloc[0] == pytest.approx(tail, abs=4 * np.sqrt(tail * (1 - tail) / 20_000) + 1e-4)
    assert table["test"].iloc[0].startswith("Monte Carlo conditional test")
    assert tail == pytest.approx(0.910, abs=1e-3)  # where the chi-square distribution says 0.779:
    assert stats.chisquare([5, 3, 2], expected).pvalue == pytest.approx(0.779, abs=1e-3)


def test_the_exact_multinomial_is_used_only_when_every_trial_showed_one_set():
    counts = {"a": 6, "b": 3, "c": 2, "d": 1}
    rows = [{"participant_id": i, "trial_id": i, "task": "choose_best", "block": "b", "question": "q",
             "pair_id": f"p{i}", "shown_methods": "a|b|c|d", "choice": m, "valid": True}
            for i, m in enumerate(m for m, n in counts.items() for _ in range(n))]
    table = preference_shares(pd.DataFrame(rows), n_resamples=200)
    pmf = stats.multinomial(12, [0.25] * 4).pmf
    observed = pmf([6, 3, 2, 1])
    exact = sum(pmf(x) for x in itertools.product(range(13), repeat=4)
                if sum(x) == 12 and pmf(x) <= observed * (1 + 1e-9))
    assert table["p"].iloc[0] == pytest.approx(exact, rel=1e-9)
    assert table["test"].iloc[0] == "exact multinomial test (455 outcomes enumerated)"
    mixed = rows + [{**rows[0], "trial_id": 99, "participant_id": 99, "shown_methods": "a|b"}]
    assert pd.DataFrame(preference_shares(pd.DataFrame(mixed), n_draws=500, n_resamples=200))["test"].iloc[0] \
        .startswith("Monte Carlo conditional test")


def test_monte_carlo_agrees_with_the_exact_chi_square_tail(monkeypatch):
    rows = [{"participant_id": i, "trial_id": i, "task": "choose_best", "block": "b", "question": "q",
             "shown_methods": "a|b|c", "choice": m, "valid": True}
            for i, m in enumerate(["a"] * 7 + ["b"] * 2 + ["c"])]
    monkeypatch.setattr(repeated_measures, "MAX_ENUMERATED", 0)
    p = preference_shares(pd.DataFrame(rows), seed=1, n_resamples=200)["p"].iloc[0]
    pmf = stats.multinomial(10, [1 / 3] * 3).pmf
    observed = stats.chisquare([7, 2, 1]).statistic
    tail = sum(pmf(x) for x in itertools.product(range(11), repeat=3)
               if sum(x) == 10 and stats.chisquare(x).statistic >= observed - 1e-9)
    assert p == pytest.approx(tail, abs=0.01)


def test_spearman_brown_projects_a_half_to_the_whole():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.6, 1) == pytest.approx(0.6)
    assert np.isnan(spearman_brown(-0.1, 2))
    with pytest.raises(ValueError, match="r <= 1"):
        spearman_brown(1.5, 2)
