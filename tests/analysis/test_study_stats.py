"""analysis.study_stats: statistics checked against scipy's own functions on fixed data, and the
export's refusals (missing columns, two experiments, mixed sources)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.study_stats import (RESPONSE_COLUMNS, attention_change, fixations_by_participant, has_flattened, holm,
                                  preference_shares, qc_summary, rating_summary, read_export, split_half_consistency)
from studyweb.export import write_csv

PARTICIPANT_COLUMNS = ["participant_id", "source", "status", "qc_status", "qc_reason"]
EXCLUSION = "1 catch trial(s) failed > max 0"


def _response(**values) -> dict:
    row = dict.fromkeys(RESPONSE_COLUMNS)
    row.update(experiment="study", source="human", valid=True, rt_ms=1000.0, block="preference", task="choose_best",
               question="realism", trial_id=1)
    row.update(values)
    return row


def _write_export(folder, responses: list[dict], participants: list[list], drop: str | None = None):
    columns = [c for c in RESPONSE_COLUMNS if c != drop]
    write_csv(folder / "responses.csv", columns, [[r[c] for c in columns] for r in responses])
    write_csv(folder / "participants.csv", PARTICIPANT_COLUMNS, participants)
    return folder


@pytest.fixture
def export_folder(tmp_path):
    """Participants 1, 2 kept, 3 excluded (failed a catch trial), 4 never decided; choose_best
    answers, a describe answer that needs the spreadsheet escape, rate answers and 3 catch trials."""
    shown = "salggan|hag|cyclegan"
    rows = [_response(participant_id=p, trial_id=10 * p + t, pair_id=f"p{t}", side="x", shown_methods=shown,
                      choice=choice)
            for p, choices in ((1, ["salggan", "salggan"]), (2, ["hag", "salggan"]), (3, ["cyclegan", "cyclegan"]))
            for t, choice in enumerate(choices)]
    rows += [_response(participant_id=1, trial_id=19, task="describe", block="words", question="describe",
                       text="=HYPERLINK(\"x\")", x=-3.5, method="salggan"),
             _response(participant_id=2, trial_id=29, task="describe", block="words", question="describe",
                       text="'quoted", method="salggan"),
             _response(participant_id=1, trial_id=18, task="rate", block="fidelity", question="score", method="hag",
                       rating=3.0),
             _response(participant_id=2, trial_id=28, task="rate", block="fidelity", question="score", method="hag",
                       rating=1.0),
             _response(participant_id=1, trial_id=17, question="catch", shown_methods="original|hag", choice="original"),
             _response(participant_id=3, trial_id=37, question="catch", shown_methods="original|hag", choice="hag"),
             _response(participant_id=2, trial_id=27, task="rate", block="fidelity", question="catch",
                       method="original", rating=3.0)]
    participants = [[1, "human", "complete", "kept", ""], [2, "human", "complete", "kept", ""],
                    [3, "human", "complete", "excluded", EXCLUSION], [4, "human", "returned", "", ""]]
    return _write_export(tmp_path, rows, participants)


def test_read_export_keeps_qc_kept_participants_and_unescapes_text(export_folder):
    export = read_export(export_folder)
    assert export.experiment == "study"
    assert set(export.responses["participant_id"]) == {1, 2}
    assert not (export.responses["question"] == "catch").any()
    texts = export.responses.set_index("trial_id")["text"]
    assert texts[19] == "=HYPERLINK(\"x\")" and texts[29] == "'quoted"  # one ' dropped, not both
    assert export.responses.set_index("trial_id").loc[19, "x"] == -3.5
    assert export.dropped.to_dict("records") == [{"participant_id": 3, "qc_status": "excluded",
                                                  "qc_reason": EXCLUSION, "responses": 2}]
    assert export.dropped_summary == f"dropped 2 responses: 1 participant(s) excluded ({EXCLUSION}), 2 responses"
    assert sorted(export.catch["participant_id"]) == [1, 2, 3]
    assert dict(zip(export.catch["participant_id"], export.catch["passed"])) == {1: True, 2: True, 3: False}
    everyone = read_export(export_folder, only_kept=False)
    assert set(everyone.responses["participant_id"]) == {1, 2, 3} and everyone.dropped.empty


def test_qc_summary_counts_participants_reasons_and_catch_trials(export_folder):
    summary = qc_summary(read_export(export_folder))
    assert summary["participants"] == {"human": {"excluded": 1, "kept": 2, "undecided": 1}}
    assert summary["exclusion_reasons"] == {EXCLUSION: 1}
    assert summary["dropped_responses"] == 2
    assert summary["catch"] == {"trials": 3, "passed": 2, "pass_rate": pytest.approx(2 / 3)}


def test_a_missing_column_is_named_with_its_file(tmp_path):
    _write_export(tmp_path, [_response(participant_id=1, choice="a", shown_methods="a|b")],
                  [[1, "human", "complete", "kept", ""]], drop="shown_methods")
    with pytest.raises(ValueError, match=r"responses\.csv lacks the column\(s\) \['shown_methods'\]"):
        read_export(tmp_path)


def test_two_experiments_are_refused_unless_one_is_named(tmp_path):
    rows = [_response(experiment=name, participant_id=p, choice="a", shown_methods="a|b")
            for name, p in (("alpha", 1), ("beta", 2), ("beta", 3))]
    people = [[p, "human", "complete", "kept", ""] for p in (1, 2, 3)]
    _write_export(tmp_path, rows, people)
    with pytest.raises(ValueError, match=r"mixes responses of 2 experiments: 'beta' \(2 rows\), 'alpha' \(1 rows\)"):
        read_export(tmp_path)
    beta = read_export(tmp_path, experiment="beta")
    assert beta.experiment == "beta" and set(beta.responses["participant_id"]) == {2, 3}
    with pytest.raises(ValueError, match="no responses of experiment 'gamma'"):
        read_export(tmp_path, experiment="gamma")
    with pytest.raises(ValueError, match="mixes responses of 2 experiments"):
        preference_shares(pd.concat([read_export(tmp_path, experiment="alpha").responses, beta.responses]))


def test_simulated_mixed_with_human_responses_is_refused_unless_sources_say(tmp_path):
    rows = [_response(participant_id=1, source="human", choice="a", shown_methods="a|b"),
            _response(participant_id=2, source="simulated", choice="b", shown_methods="a|b")]
    _write_export(tmp_path, rows, [[1, "human", "complete", "kept", ""], [2, "simulated", "complete", "kept", ""]])
    with pytest.raises(ValueError, match=r"mixes simulated responses with \['human'\]"):
        read_export(tmp_path)
    assert set(read_export(tmp_path, sources=["human"]).responses["participant_id"]) == {1}


def test_responses_of_unknown_participants_are_refused(tmp_path):
    _write_export(tmp_path, [_response(participant_id=7, choice="a", shown_methods="a|b")],
                  [[1, "human", "complete", "kept", ""]])
    with pytest.raises(ValueError, match=r"participant\(s\) \[7\] that are not in"):
        read_export(tmp_path)


def test_participants_without_a_qc_decision_are_left_out_and_the_log_says_how_to_decide(tmp_path, caplog):
    rows = [_response(participant_id=p, trial_id=p, choice="a", shown_methods="a|b") for p in (1, 2)]
    _write_export(tmp_path, rows, [[1, "human", "complete", "kept", ""], [2, "human", "complete", "", ""]])
    with caplog.at_level("WARNING", logger="analysis.study_stats"):
        export = read_export(tmp_path)
    assert set(export.responses["participant_id"]) == {1}
    assert export.dropped_summary == "dropped 1 responses: 1 participant(s) undecided, 1 responses"
    assert "gazelab study build-maps" in caplog.text
    _write_export(tmp_path, rows, [[1, "real", "complete", "kept", ""], [2, "human", "complete", "kept", ""]])
    with pytest.raises(ValueError, match=r"participants\.csv column source has \['real'\]"):
        read_export(tmp_path)  # the export's vocabulary is human | simulated | imported in both files


def test_catch_rows_pass_by_the_servers_correct_where_the_export_has_it(tmp_path):
    rows = [_response(participant_id=1, trial_id=1, choice="a", shown_methods="a|b"),
            _response(participant_id=1, trial_id=2, task="codecharts", question="code", block="", x=10.0, y=20.0,
                      is_catch=True, correct=True),
            _response(participant_id=1, trial_id=3, task="codecharts", question="code", block="", x=1.0, y=2.0,
                      is_catch=True, correct=False)]
    columns = RESPONSE_COLUMNS + ["is_catch", "correct"]
    write_csv(tmp_path / "responses.csv", columns, [[r.get(c) for c in columns] for r in rows])
    write_csv(tmp_path / "participants.csv", PARTICIPANT_COLUMNS, [[1, "human", "complete", "kept", ""]])
    export = read_export(tmp_path)
    assert list(export.catch["passed"]) == [True, False]  # sentinels: a known answer, right or not
    assert list(export.responses["trial_id"]) == [1]


def test_screened_out_participants_are_read_and_left_out_with_their_reason(tmp_path):
    """The server stores qc_status "screened_out" when screening ends a session (studyweb.screening)."""
    rows = [_response(participant_id=1, trial_id=1, choice="a", shown_methods="a|b"),
            _response(participant_id=2, trial_id=2, choice="b", shown_methods="a|b")]
    write_csv(tmp_path / "responses.csv", RESPONSE_COLUMNS, [[r.get(c) for c in RESPONSE_COLUMNS] for r in rows])
    write_csv(tmp_path / "participants.csv", PARTICIPANT_COLUMNS,
              [[1, "human", "complete", "kept", ""], [2, "human", "screened_out", "screened_out", "device: phone"]])
    export = read_export(tmp_path)
    assert list(export.responses["participant_id"]) == [1]
    assert export.dropped.to_dict("records") == [{"participant_id": 2, "qc_status": "screened_out",
                                                  "qc_reason": "device: phone", "responses": 1}]
    assert "screened_out (device: phone)" in export.dropped_summary


def _choices(question: str, counts: dict[str, int], shown: str, block: str = "preference") -> list[dict]:
    picks = [m for m, n in counts.items() for _ in range(n)]
    return [_response(participant_id=i, trial_id=i, question=question, block=block, shown_methods=shown, choice=m)
            for i, m in enumerate(picks)]


def test_expected_counts_follow_how_often_each_method_was_shown():
    rows = _choices("saliency", {"a": 5, "b": 1}, "a|b|c") + _choices("saliency", {"a": 1, "b": 3}, "b|a")
    table = preference_shares(pd.DataFrame(rows), seed=3, n_draws=5000, n_resamples=200).set_index("method")
    # 6 trials of 3 candidates and 4 of 2: expected a = 6/3 + 4/2 = 4, b = 4, c = 2.
    assert table["n_shown"].to_dict() == {"a": 10, "b": 10, "c": 6}
    assert table["chance"].to_dict() == pytest.approx({"a": 0.4, "b": 0.4, "c": 1 / 3})
    assert table["statistic"].iloc[0] == pytest.approx(stats.chisquare([6, 4, 0], [4, 4, 2]).statistic)
    assert table["test"].iloc[0].startswith("Monte Carlo conditional test")
    assert "5000 draws, seed 3" in table["test"].iloc[0]
    again = preference_shares(pd.DataFrame(rows), seed=3, n_draws=5000, n_resamples=200)
    assert again["p"].iloc[0] == table["p"].iloc[0] and again["ci_low"].equals(table.reset_index()["ci_low"])


def test_a_choice_that_was_not_shown_is_refused():
    rows = [_response(participant_id=1, shown_methods="a|b", choice="c")]
    with pytest.raises(ValueError, match="choice that is not among shown_methods"):
        preference_shares(pd.DataFrame(rows))


RATINGS = {"gazeshiftnet": [3, 3, 2, 3, 1, 2, 3, 2], "hag": [1, 0, 2, 1, 0, 1], "pix2pix": [2, 1, 3, 0, 1]}


def _ratings() -> pd.DataFrame:
    rows = [_response(participant_id=i, trial_id=i, task="rate", block=block, question="score", method=m,
                      pair_id=f"p{i}", side="x", rating=float(r))
            for block in ("fidelity", "realism") for m, values in RATINGS.items()
            for i, r in enumerate(values if block == "fidelity" else values[::-1][:3])]
    return pd.DataFrame(rows)


def test_rating_summary_keeps_each_block_and_describes_the_ratings_as_numpy_does():
    per_method, pairwise, models = rating_summary(_ratings())
    fidelity = per_method[per_method["block"] == "fidelity"].set_index("method")
    for method, values in RATINGS.items():
        assert fidelity.loc[method, ["n", "mean", "median"]].tolist() == [len(values), np.mean(values),
                                                                          np.median(values)]
        assert fidelity.loc[method, ["q1", "q3"]].tolist() == pytest.approx(np.percentile(values, [25, 75]))
    assert len(per_method) == 6 and len(models) == 2  # two blocks ask the same question id: never pooled
    pairs = pairwise[pairwise["block"] == "fidelity"]
    assert [tuple(r) for r in pairs[["method_a", "method_b"]].to_numpy()] == list(itertools.combinations(RATINGS, 2))
    assert pairs["p_holm"].to_numpy() == pytest.approx(holm(pairs["p"]))


def test_holm_matches_published_values():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") and p.adjust(c(0.01, ..., 0.05), "holm")
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="p-values must be in"):
        holm([0.2, 1.5])


PER_IMAGE = pd.DataFrame({"method": ["ours"] * 8 + ["baseline"] * 6 + ["single"],
                          "pair_id": [f"p{i}" for i in range(8)] + [f"p{i}" for i in range(6)] + ["p0"],
                          "value": [0.12, 0.30, 0.08, 0.22, 0.15, 0.41, 0.05, 0.19,
                                    0.02, -0.05, 0.10, 0.01, 0.04, -0.02, 0.3]})


def test_attention_change_bootstrap_matches_scipy_and_is_reproducible():
    table = attention_change(PER_IMAGE, seed=4).set_index("method")
    ours = PER_IMAGE[PER_IMAGE["method"] == "ours"]["value"].to_numpy()
    direct = stats.bootstrap((ours,), np.mean, method="percentile", confidence_level=0.95, rng=4).confidence_interval
    assert table.loc["ours", ["ci_low", "ci_high"]].tolist() == pytest.approx([direct.low, direct.high])
    for method in ("ours", "baseline"):
        assert table.loc[method, "ci_low"] < table.loc[method, "mean"] < table.loc[method, "ci_high"]
    assert table.loc["ours", "mean"] == pytest.approx(ours.mean())
    assert attention_change(PER_IMAGE, seed=4).equals(attention_change(PER_IMAGE, seed=4))
    assert not attention_change(PER_IMAGE, seed=5).equals(attention_change(PER_IMAGE, seed=4))
    assert table.loc["single", "n"] == 1 and np.isnan(table.loc["single", "ci_low"])


def test_attention_change_refuses_an_image_given_twice():
    with pytest.raises(ValueError, match=r"\(method, pair_id\) \['ours', 'p0'\] more than once"):
        attention_change(pd.concat([PER_IMAGE, PER_IMAGE.iloc[:1]]))


SHAPE = (60, 80)  # height, width


def _observers(draw, n: int = 16, seed: int = 1) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p: draw(rng) for p in range(n)}


def _from_density(rng) -> np.ndarray:
    centres = np.array([[20.0, 20.0], [60.0, 40.0]])
    return centres[rng.integers(0, 2, 3)] + rng.normal(0, 5, (3, 2))


def test_split_half_cc_grows_with_observers_drawn_from_one_density():
    curve = split_half_consistency(_observers(_from_density), SHAPE, sigma_px=3.0, n_splits=30, seed=0)
    assert curve["n_per_half"].tolist() == list(range(1, 9)) and curve["n_observers"].tolist() == list(range(2, 17, 2))
    assert curve["cc_mean"].iloc[-1] > curve["cc_mean"].iloc[0] + 0.3
    assert curve["cc_mean"].iloc[-1] > 0.6 and (curve["nss_mean"] > 1).all()
    again = split_half_consistency(_observers(_from_density), SHAPE, sigma_px=3.0, n_splits=30, seed=0)
    assert curve.equals(again)


def test_split_half_cc_is_near_zero_for_unrelated_uniform_noise():
    noise = _observers(lambda rng: rng.uniform([0, 0], [SHAPE[1], SHAPE[0]], (3, 2)))
    curve = split_half_consistency(noise, SHAPE, sigma_px=3.0, n_splits=30, seed=0)
    assert curve["cc_mean"].abs().max() < 0.15 and curve["nss_mean"].abs().max() < 0.3


def test_split_half_consistency_needs_two_participants_with_points_in_the_image():
    with pytest.raises(ValueError, match="at least 2 participants"):
        split_half_consistency({1: [[5, 5]], 2: [[500, 5]]}, SHAPE, sigma_px=3.0)


def test_has_flattened_reads_the_last_step_of_the_curve():
    curve = pd.DataFrame({"n_per_half": [1, 2, 3], "cc_mean": [0.3, 0.5, 0.505]})
    flat, why = has_flattened(curve)
    assert flat and why.startswith("flattened: going from 2 to 3 observers per half") and "+0.005" in why
    rising, why = has_flattened(curve.iloc[:2])
    assert not rising and why.startswith("still rising") and "+0.200" in why
    assert not has_flattened(curve.iloc[:1])[0]


def test_fixations_by_participant_reads_valid_points_of_one_image():
    rows = [_response(participant_id=1, task="codecharts", question="code", pair_id="p0", side="x", x=4.0, y=5.0),
            _response(participant_id=1, task="codecharts", question="code", pair_id="p0", side="x", x=6.0, y=7.0),
            _response(participant_id=2, task="codecharts", question="code", pair_id="p0", side="x", x=1.0, y=1.0,
                      valid=False),
            _response(participant_id=2, task="codecharts", question="code", pair_id="p0", side="y", x=2.0, y=2.0),
            _response(participant_id=3, task="codecharts", question="code", pair_id=None, side=None, x=9.0, y=9.0)]
    points = fixations_by_participant(pd.DataFrame(rows), "p0", "x")
    assert list(points) == [1] and points[1].tolist() == [[4.0, 5.0], [6.0, 7.0]]
