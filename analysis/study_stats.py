"""Statistics of a user study from studyweb's export (DESIGN.md §2: responses.csv, participants.csv).

`read_export` reads one experiment's export and keeps the responses the statistics use (QC-kept
participants, no catch questions); `preference_shares` (choose_best: SalG-GAN Table 2),
`rating_summary` (rate: GazeShiftNet Fig. 5), `attention_change` (bootstrap means over images),
`fixations_by_participant` (one image's CodeCharts / BubbleView points, for
`split_half_consistency`) and `qc_summary` work on it; `analysis.study_rows` chooses the rows.
Questions are grouped by (block, question): a design's blocks may ask the same question id
(GazeShiftNet's fidelity and realism blocks both ask "score"). Invalid, practice and catch rows
are left out.

Every participant answers on many images and every image is answered by many participants, so
answers are not independent: the tests come from `analysis.repeated_measures` (per-image means,
a mixed model with participant and image as random effects, cluster-bootstrap intervals, a
conditional test of preferences) and from scipy and statsmodels underneath. A table from more
than one experiment is refused, never averaged over.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.observer_consistency import has_flattened, spearman_brown, split_half_consistency
from analysis.repeated_measures import (attention_change, choice_test, cluster_bootstrap_shares, compare_per_image,
                                        holm, mixed_model)
from analysis.study_rows import (CATCH_QUESTION, filled, flag, image_clicks, image_keys, one_experiment, ordered,
                                 task_rows)

__all__ = ["StudyExport", "read_export", "preference_shares", "rating_summary", "per_image_ratings",
           "attention_change", "image_clicks", "fixations_by_participant", "qc_summary", "holm",
           "split_half_consistency", "spearman_brown", "has_flattened"]

log = logging.getLogger(__name__)

RESPONSE_COLUMNS = ["experiment", "participant_id", "source", "block", "trial_id", "task", "question", "stimulus_id",
                    "pair_id", "side", "condition", "method", "shown_methods", "choice", "rating", "text", "x", "y",
                    "valid", "rt_ms", "created_at"]
PARTICIPANT_COLUMNS = ["participant_id", "source", "status", "qc_status", "qc_reason"]
NUMBER_COLUMNS = {"participant_id", "trial_id", "rating", "x", "y", "rt_ms"}
# True/False columns of the export (DESIGN.md §2: valid, and the extra is_practice, is_catch, correct).
FLAG_COLUMNS = ("valid", "is_practice", "is_catch", "correct")
SOURCES = ("human", "simulated", "imported")
TASKS = ("choose_best", "rate", "pick_region", "describe", "codecharts", "bubbleview")
# As stored (studyweb): QC's "kept" / "excluded", "screened_out" when the study's screening ended the
# participant's session, "" for a participant never decided.
QC_STATUSES = ("kept", "excluded", "screened_out", "")
# A choose_best catch trial asks for the image identical to the input: its right answer is
# the candidate of method "original" (studyweb.tasks.choose_best: `ChooseBest.catch_spec`).
CATCH_ANSWER = "original"


@dataclass
class StudyExport:
    """One experiment's export. responses: the rows statistics use (participants QC kept unless
    asked otherwise, no catch questions); catch: the catch rows of every participant, with
    `passed`; participants: participants.csv as read; dropped: one row per participant whose
    responses were left out (participant_id, qc_status, qc_reason, responses)."""

    experiment: str | None
    folder: Path
    responses: pd.DataFrame
    participants: pd.DataFrame
    catch: pd.DataFrame
    dropped: pd.DataFrame

    @property
    def dropped_summary(self) -> str:
        """How many responses were left out and why, in words."""
        if self.dropped.empty:
            return "no responses dropped"
        why = self.dropped.groupby(["qc_status", "qc_reason"], sort=True)["responses"].agg(["size", "sum"])
        parts = [f"{n_part} participant(s) {status or 'undecided'}" + (f" ({reason})" if reason else "")
                 + f", {n_resp} responses" for (status, reason), (n_part, n_resp) in why.iterrows()]
        return f"dropped {int(self.dropped['responses'].sum())} responses: " + "; ".join(parts)


def read_export(folder, experiment: str | None = None, sources=None, only_kept: bool = True) -> StudyExport:
    """Read `folder`/responses.csv and participants.csv (studyweb.export.export_csv), undoing the
    spreadsheet escape (one leading ' of a text cell). ValueError when a column is missing (named,
    with the file), when the responses come from several experiments and `experiment` is not
    given (or names none of them), when simulated responses are mixed with human or imported ones
    and `sources` (an iterable of source names to keep) does not say which, or when a response's
    participant is not in participants.csv. only_kept: keep only participants whose qc_status is
    "kept", the decision QC stored (the others, excluded, screened out or undecided, are listed in
    `dropped`)."""
    folder = Path(folder)
    responses = _read_table(folder / "responses.csv", RESPONSE_COLUMNS)
    participants = _read_table(folder / "participants.csv", PARTICIPANT_COLUMNS)
    where = folder / "responses.csv"
    responses, experiment = one_experiment(responses, experiment, where)
    for column, allowed in (("source", SOURCES), ("task", TASKS)):
        _check_values(responses[column], allowed, f"{where} column {column}")
    people = folder / "participants.csv"
    _check_values(participants["source"], SOURCES, f"{people} column source")
    _check_values(participants["qc_status"], QC_STATUSES, f"{people} column qc_status")
    responses = _chosen_sources(responses, sources, where)
    ids = participants["participant_id"]
    if ids.duplicated().any():
        raise ValueError(f"{people} lists participant(s) {sorted(ids[ids.duplicated()].unique())[:10]} more than once")
    unknown = sorted(set(responses["participant_id"]) - set(ids))
    if unknown:
        raise ValueError(f"{where} has responses of participant(s) {unknown[:10]} that are not in"
                         f" {people}; are the two files from the same export?")
    qc = participants.set_index("participant_id")[["qc_status", "qc_reason"]]
    undecided = sorted(set(responses["participant_id"]) & set(ids[participants["qc_status"] == ""]))
    if undecided and only_kept:
        log.warning("%s: %d participant(s) with responses have no QC decision (e.g. %s), so they are left out;"
                    " run `gazelab study build-maps EXPERIMENT` (QC decides and stores) and export again",
                    people, len(undecided), undecided[:5])
    is_catch = responses["question"].eq(CATCH_QUESTION) | flag(responses, "is_catch")
    catch = _with_pass(responses[is_catch], responses)
    rest = responses[~is_catch]
    keep = rest["participant_id"].map(qc["qc_status"]).eq("kept") if only_kept else pd.Series(True, rest.index)
    dropped = (rest[~keep].groupby("participant_id").size().rename("responses").to_frame()
               .join(qc).reset_index()[["participant_id", "qc_status", "qc_reason", "responses"]])
    export = StudyExport(experiment, folder, rest[keep].reset_index(drop=True), participants,
                         catch.reset_index(drop=True), dropped)
    log.info("%s: %d responses kept; %s", folder, len(export.responses), export.dropped_summary)
    return export


def preference_shares(responses: pd.DataFrame, task: str = "choose_best", seed: int = 0, n_draws: int = 100_000,
                      n_resamples: int = 2000, method_order=None) -> pd.DataFrame:
    """Per (block, question, method) of a choose_best study, blocks and questions in the order
    they were answered, methods in `method_order` (then as first shown): n_chosen, n_shown
    (trials that showed it), share = n_chosen / n_shown with a 95% percentile cluster-bootstrap
    interval (ci_low, ci_high; `repeated_measures.cluster_bootstrap_shares` over participants
    and, where every row names its pair_id, images; NaN with fewer than 2 participants), and
    chance = its expected share if every shown candidate were equally likely. On each row of a
    (block, question): n_trials, n_participants, n_images, interval (how the interval was made),
    and the test of "each trial's pick is uniform among the candidates it showed"
    (`repeated_measures.choice_test`): statistic (chi-square discrepancy), p and test (the exact
    multinomial test only where every trial showed the same set; else the Monte Carlo
    conditional test, `n_draws` draws with `seed`)."""
    rows = task_rows(responses, task, ["shown_methods", "choice", "participant_id"])
    shown = rows["shown_methods"].fillna("").astype(str).str.split("|")
    bad = rows[[not s or "" in s or c not in s for s, c in zip(shown, rows["choice"])]]
    if not bad.empty:
        raise ValueError(f"{len(bad)} {task} response(s) have a choice that is not among shown_methods (e.g."
                         f" trial {bad['trial_id'].iloc[0]}: choice {bad['choice'].iloc[0]!r}, shown"
                         f" {bad['shown_methods'].iloc[0]!r}); expected the chosen method and the |-joined candidates")
    images = image_keys(rows) if "pair_id" in rows.columns and filled(rows["pair_id"]).all() else None
    out = []
    for (block, question), group in rows.groupby(["block", "question"], sort=False):
        sets = [frozenset(shown[i]) for i in group.index]
        methods = ordered([m for i in group.index for m in shown[i]], method_order)
        shown_matrix = np.array([[m in s for m in methods] for s in sets], dtype=float)
        chosen_matrix = np.array([[c == m for m in methods] for c in group["choice"]], dtype=float)
        n_shown, chosen = shown_matrix.sum(axis=0), chosen_matrix.sum(axis=0)
        expected = (shown_matrix / shown_matrix.sum(axis=1, keepdims=True)).sum(axis=0)
        test = choice_test(chosen, Counter(sets), methods, seed, n_draws)
        clusters = [pd.factorize(group["participant_id"])[0]]
        n_images = 0
        if images is not None:
            clusters.append(pd.factorize(images[group.index])[0])
            n_images = int(clusters[1].max()) + 1
        over = " over participants" + (" and images" if images is not None else " (no pair_id: images unknown)")
        if clusters[0].max() + 1 < 2:
            low = high = np.full(len(methods), np.nan)
            interval = "no interval: one participant"
        else:
            low, high = cluster_bootstrap_shares(chosen_matrix, shown_matrix, clusters, n_resamples, seed)
            interval = f"95% percentile cluster bootstrap{over} ({n_resamples} resamples, seed {seed})"
        for m, k, n, e, lo, hi in zip(methods, chosen, n_shown, expected, low, high):
            out.append({"block": block, "question": question, "method": m, "n_chosen": int(k), "n_shown": int(n),
                        "share": k / n, "ci_low": lo, "ci_high": hi, "chance": e / n, "n_trials": len(group),
                        "n_participants": int(clusters[0].max()) + 1, "n_images": n_images, "interval": interval,
                        "statistic": test["statistic"], "p": test["p"], "test": test["test"]})
    return pd.DataFrame(out)


def rating_summary(responses: pd.DataFrame, task: str = "rate",
                   method_order=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per_method, pairwise, models) of a rate study, per (block, question) in answer order,
    methods in `method_order` (then as first rated). An image is a (pair_id, side).

    per_method: n (ratings), n_participants, n_images, mean (of the ratings), image_mean (mean of
    the per-image means), median, q1, q3 (of the ratings, linear interpolation).
    pairwise, for every pair of methods: the per-image comparison (`repeated_measures.
    compare_per_image`: test, n_images_a, n_images_b, mean_a, mean_b, prob_a_higher, statistic,
    p, p_holm over the pairs of that block and question) and the mixed model's contrast
    (mixed_estimate = a − b, mixed_se, mixed_p, mixed_p_holm).
    models: one row per (block, question): n_ratings, n_participants, n_images, the mixed model's
    var_participant, var_image, var_residual, converged, note (`repeated_measures.mixed_model`).
    ValueError naming the trial when a rating, its method or its pair_id is missing."""
    rows = task_rows(responses, task, ["method", "rating", "participant_id", "pair_id"])
    for column, what in (("rating", "a score"), ("method", "the rated method"), ("pair_id", "the rated image")):
        missing = rows[~filled(rows[column])]
        if not missing.empty:
            raise ValueError(f"{len(missing)} {task} response(s) have no {column} (e.g. block"
                             f" {missing['block'].iloc[0]!r}, question {missing['question'].iloc[0]!r}, trial"
                             f" {missing['trial_id'].iloc[0]}); expected {what} on every rating")
    rows = rows.assign(image=image_keys(rows))
    keys = ["block", "question", "method"]
    rating = rows.groupby(keys, sort=False)["rating"]
    image_means = rows.groupby([*keys, "image"], sort=False)["rating"].mean()
    per_method = pd.concat({"n": rating.size(), "n_participants": rows.groupby(keys, sort=False)["participant_id"]
                            .nunique(), "n_images": rows.groupby(keys, sort=False)["image"].nunique(),
                            "mean": rating.mean(), "image_mean": image_means.groupby(level=keys, sort=False).mean(),
                            "median": rating.median(), "q1": rating.quantile(0.25), "q3": rating.quantile(0.75)},
                           axis=1).reset_index()
    group_rank = {key: i for i, key in enumerate(dict.fromkeys(zip(rows["block"], rows["question"])))}
    method_rank = {m: i for i, m in enumerate(ordered(rows["method"], method_order))}
    rank = [(group_rank[b, q], method_rank[m]) for b, q, m in zip(*(per_method[c] for c in keys))]
    per_method = per_method.iloc[sorted(range(len(rank)), key=rank.__getitem__)].reset_index(drop=True)
    pairs, models = [], []
    for (block, question), group in rows.groupby(["block", "question"], sort=False):
        methods = ordered(group["method"], method_order)
        means = {m: g.groupby("image")["rating"].mean() for m, g in group.groupby("method")}
        model = mixed_model(group.rename(columns={"rating": "value", "participant_id": "participant"}), methods)
        contrasts = {(r["method_a"], r["method_b"]): r for r in model.contrasts.to_dict("records")}
        found = []
        for a, b in [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]:
            fit = contrasts.get((a, b), {})
            found.append({"block": block, "question": question, "method_a": a, "method_b": b,
                          **compare_per_image(means[a], means[b]), "mixed_estimate": fit.get("estimate", np.nan),
                          "mixed_se": fit.get("se", np.nan), "mixed_p": fit.get("p", np.nan)})
        _add_holm(found, "p", "p_holm")
        _add_holm(found, "mixed_p", "mixed_p_holm")
        pairs.extend(found)
        models.append({"block": block, "question": question, "n_ratings": len(group),
                       "n_participants": group["participant_id"].nunique(), "n_images": group["image"].nunique(),
                       "var_participant": model.var_participant, "var_image": model.var_image,
                       "var_residual": model.var_residual, "converged": model.converged, "note": model.note})
    columns = ["block", "question", "method_a", "method_b", "test", "n_images_a", "n_images_b", "mean_a", "mean_b",
               "prob_a_higher", "statistic", "p", "p_holm", "mixed_estimate", "mixed_se", "mixed_p", "mixed_p_holm"]
    return per_method, pd.DataFrame(pairs, columns=columns), pd.DataFrame(models)


def per_image_ratings(responses: pd.DataFrame, task: str = "rate") -> pd.DataFrame:
    """The mean rating of each image per (block, question, method): columns block, question,
    method, pair_id, side, rating; catch, practice and invalid rows left out. Empty without
    ratings."""
    columns = ["block", "question", "method", "pair_id", "side", "rating"]
    if not (responses["task"] == task).any():
        return pd.DataFrame(columns=columns)
    rows = task_rows(responses, task, ["method", "rating", "pair_id", "side"]).dropna(subset=["rating"])
    rows = rows.assign(side=rows["side"].fillna("").astype(str))
    return rows.groupby(columns[:-1], sort=False, as_index=False)["rating"].mean()[columns]


def fixations_by_participant(responses: pd.DataFrame, pair_id: str, side: str, method: str | None = None,
                             condition: str | None = None) -> dict:
    """{participant_id: (N, 2) (x, y) image pixels} of the `image_clicks` on one image (pair_id,
    side, and where given its method and condition), for `split_half_consistency`."""
    if "experiment" in responses.columns:
        one_experiment(responses, None, "responses")
    rows = image_clicks(responses)
    keep = rows["pair_id"].eq(pair_id) & rows["side"].eq(side)
    for column, value in (("method", method), ("condition", condition)):
        if value is not None:
            keep &= rows[column].eq(value)
    return {p: g[["x", "y"]].to_numpy(float) for p, g in rows[keep].groupby("participant_id", sort=True)}


def qc_summary(export: StudyExport) -> dict:
    """{"experiment", "participants": {source: {qc_status (undecided: never decided): count}},
    "exclusion_reasons": {reason: participants excluded for it} (reasons as QC wrote them),
    "dropped_responses": responses left out of the statistics, "catch": {"trials", "passed",
    "pass_rate" (None without catch trials)}}."""
    people = export.participants.assign(qc_status=export.participants["qc_status"].replace("", "undecided"))
    by_source = people.groupby(["source", "qc_status"]).size()
    excluded = people[people["qc_status"] == "excluded"]["qc_reason"].replace("", "(no reason given)")
    trials, passed = len(export.catch), int(export.catch["passed"].sum()) if len(export.catch) else 0
    return {"experiment": export.experiment,
            "participants": {s: {q: int(n) for q, n in g.droplevel(0).items()} for s, g in by_source.groupby(level=0)},
            "exclusion_reasons": {r: int(n) for r, n in excluded.value_counts().items()},
            "dropped_responses": int(export.dropped["responses"].sum()),
            "catch": {"trials": trials, "passed": passed, "pass_rate": passed / trials if trials else None}}


def _read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """A CSV of studyweb's export: text unescaped (one leading '), numbers as floats, the
    FLAG_COLUMNS there as True/False/None, empty text cells as ''."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected studyweb's export (responses.csv, participants.csv)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing} of a studyweb export (DESIGN.md §2); it has"
                         f" {list(table.columns)}")
    table = table.apply(lambda column: column.str.replace(r"^'", "", regex=True))
    for column in NUMBER_COLUMNS & set(table.columns):
        values = pd.to_numeric(table[column].replace("", np.nan), errors="coerce")
        bad = values.isna() & table[column].ne("")
        if bad.any():
            raise ValueError(f"{path} column {column} has {table[column][bad].iloc[0]!r} on line"
                             f" {int(np.argmax(bad.to_numpy())) + 2}; expected a number")
        table[column] = values
    flags = {"True": True, "False": False, "": None}
    for column in set(FLAG_COLUMNS) & set(table.columns):
        _check_values(table[column], tuple(flags), f"{path} column {column}")
        table[column] = table[column].map(flags).astype(object)
    if "participant_id" in table.columns:
        if table["participant_id"].isna().any():
            raise ValueError(f"{path} column participant_id has empty cells; expected a participant id on every row")
        table["participant_id"] = table["participant_id"].astype(np.int64)
    return table


def _chosen_sources(responses: pd.DataFrame, sources, where) -> pd.DataFrame:
    present = set(responses["source"])
    if sources is None:
        if "simulated" in present and len(present) > 1:
            raise ValueError(f"{where} mixes simulated responses with {sorted(present - {'simulated'})} ones; say"
                             " which to analyse (sources=('human',) or sources=('human', 'simulated'))")
        return responses
    sources = set(sources)
    _check_values(pd.Series(sorted(sources)), SOURCES, "sources")
    return responses[responses["source"].isin(sources)]


def _with_pass(catch: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Catch rows (catch trials and CodeCharts sentinels) with `passed`: the server's `correct`
    where the export has it; else a choose_best catch passes when the chosen method is
    "original", a rate catch when the rating is the scale's top score, taken as the highest
    rating given in that block (catch rows included)."""
    top = responses[responses["task"] == "rate"].groupby("block")["rating"].max()
    passed = np.where(catch["task"] == "choose_best", catch["choice"] == CATCH_ANSWER,
                      catch["rating"].notna() & catch["rating"].eq(catch["block"].map(top)))
    if "correct" in catch.columns:
        known = catch["correct"].notna().to_numpy()
        passed = np.where(known, catch["correct"].isin([True]).to_numpy(), passed)
    return catch.assign(passed=passed.astype(bool))


def _check_values(values: pd.Series, allowed, where: str) -> None:
    unknown = sorted(set(values) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"{where} has {unknown[:5]}; expected one of {list(allowed)}")


def _add_holm(rows: list[dict], column: str, adjusted: str) -> None:
    """rows[i][adjusted] = Holm over the rows' non-NaN `column` (NaN stays NaN)."""
    present = [i for i, r in enumerate(rows) if not np.isnan(r[column])]
    values = holm([rows[i][column] for i in present])
    for r in rows:
        r[adjusted] = np.nan
    for i, value in zip(present, values):
        rows[i][adjusted] = float(value)
