"""Statistics of a user study from studyweb's export (DESIGN.md §2: responses.csv, participants.csv).

`read_export` reads one experiment's export and keeps the responses the statistics use (QC-kept
participants, no catch questions); `preference_shares` (choose_best: SalG-GAN Table 2),
`rating_summary` (rate: GazeShiftNet Fig. 5), `attention_change` (per-method bootstrap means),
`split_half_consistency` (were enough people asked?) and `qc_summary` work on it. Questions are
grouped by (block, question): a design's blocks may ask the same question id (GazeShiftNet's
fidelity and realism blocks both ask "score"). Rows with valid == False are left out.

A table from more than one experiment is refused, never averaged over. The tests come from the
libraries that already do them: Wilson intervals and the chi-square from scipy
(`binomtest(...).proportion_ci`, `chisquare`), Mann-Whitney from scipy, Holm's correction from
statsmodels (`multipletests`).
"""
from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

from analysis.fixations import fixation_map
from analysis.metrics import cc, nss

log = logging.getLogger(__name__)

RESPONSE_COLUMNS = ["experiment", "participant_id", "source", "block", "trial_id", "task", "question", "stimulus_id",
                    "pair_id", "side", "condition", "method", "shown_methods", "choice", "rating", "text", "x", "y",
                    "valid", "rt_ms", "created_at"]
PARTICIPANT_COLUMNS = ["id", "source", "status", "qc_status", "qc_reason"]
NUMBER_COLUMNS = {"participant_id", "trial_id", "rating", "x", "y", "rt_ms", "id"}
SOURCES = ("human", "simulated", "imported")
TASKS = ("choose_best", "rate", "pick_region", "describe", "codecharts", "bubbleview")
QC_STATUSES = ("kept", "excluded", "no data")
CATCH_QUESTION = "catch"
# A choose_best catch trial asks for the image identical to the input: its right answer is
# the candidate of method "original" (studyweb.questionnaire_study._catch_spec).
CATCH_ANSWER = "original"
# The exact multinomial test enumerates every outcome up to this many; beyond, Monte Carlo.
MAX_ENUMERATED = 200_000


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
        parts = [f"{n_part} participant(s) {status}" + (f" ({reason})" if reason else "") + f", {n_resp} responses"
                 for (status, reason), (n_part, n_resp) in why.iterrows()]
        return f"dropped {int(self.dropped['responses'].sum())} responses: " + "; ".join(parts)


def read_export(folder, experiment: str | None = None, sources=None, only_kept: bool = True) -> StudyExport:
    """Read `folder`/responses.csv and participants.csv (studyweb.export.export_csv), undoing the
    spreadsheet escape (one leading ' of a text cell). ValueError when a column is missing (named,
    with the file), when the responses come from several experiments and `experiment` is not
    given (or names none of them), when simulated responses are mixed with human or imported ones
    and `sources` (an iterable of source names to keep) does not say which, or when a response's
    participant is not in participants.csv. only_kept: keep only participants whose qc_status is
    "kept" (the others are listed in `dropped`)."""
    folder = Path(folder)
    responses = _read_table(folder / "responses.csv", RESPONSE_COLUMNS)
    participants = _read_table(folder / "participants.csv", PARTICIPANT_COLUMNS)
    where = folder / "responses.csv"
    responses, experiment = _one_experiment(responses, experiment, where)
    for column, allowed in (("source", SOURCES), ("task", TASKS)):
        _check_values(responses[column], allowed, f"{where} column {column}")
    _check_values(participants["qc_status"], QC_STATUSES, f"{folder / 'participants.csv'} column qc_status")
    responses = _chosen_sources(responses, sources, where)
    if participants["id"].duplicated().any():
        raise ValueError(f"{folder / 'participants.csv'} lists participant(s) "
                         f"{sorted(participants['id'][participants['id'].duplicated()].unique())[:10]} more than once")
    unknown = sorted(set(responses["participant_id"]) - set(participants["id"]))
    if unknown:
        raise ValueError(f"{where} has responses of participant(s) {unknown[:10]} that are not in"
                         f" {folder / 'participants.csv'}; are the two files from the same export?")
    qc = participants.set_index("id")[["qc_status", "qc_reason"]]
    is_catch = responses["question"] == CATCH_QUESTION
    catch = _with_pass(responses[is_catch], responses)
    rest = responses[~is_catch]
    keep = rest["participant_id"].map(qc["qc_status"]).eq("kept") if only_kept else pd.Series(True, rest.index)
    dropped = (rest[~keep].groupby("participant_id").size().rename("responses").to_frame()
               .join(qc).reset_index()[["participant_id", "qc_status", "qc_reason", "responses"]])
    export = StudyExport(experiment, folder, rest[keep].reset_index(drop=True), participants,
                         catch.reset_index(drop=True), dropped)
    log.info("%s: %d responses kept; %s", folder, len(export.responses), export.dropped_summary)
    return export


def preference_shares(responses: pd.DataFrame, task: str = "choose_best", seed: int = 0,
                      n_draws: int = 100_000) -> pd.DataFrame:
    """Per (block, question, method) of a choose_best study: n_chosen, n_shown (trials that
    showed it), share = n_chosen / n_shown with its Wilson 95% interval (ci_low, ci_high), and
    chance = its expected share if every shown candidate were equally likely. Per (block,
    question), on each of its rows: n_trials and goodness-of-fit tests of "every method equally
    preferred", expected counts following how often each method was shown (Σ over trials of
    1 / candidates shown): chi2, chi2_p (scipy.stats.chisquare), small_counts (an expected count
    < 5: trust exact_p, not chi2_p), exact_p and exact_method. The exact test enumerates every
    outcome and sums those at most as probable as the one observed (the exact multinomial test)
    when every trial showed the same methods and there are at most MAX_ENUMERATED outcomes;
    otherwise it is Monte Carlo (`n_draws` draws with `seed`, each trial a uniform pick among its
    own candidates; p = share of draws with a chi-square statistic at least the observed)."""
    rows = _task_rows(responses, task, ["shown_methods", "choice"])
    shown = rows["shown_methods"].fillna("").astype(str).str.split("|")
    bad = rows[[not s or "" in s or c not in s for s, c in zip(shown, rows["choice"])]]
    if not bad.empty:
        raise ValueError(f"{len(bad)} {task} response(s) have a choice that is not among shown_methods (e.g."
                         f" trial {bad['trial_id'].iloc[0]}: choice {bad['choice'].iloc[0]!r}, shown"
                         f" {bad['shown_methods'].iloc[0]!r}); expected the chosen method and the |-joined candidates")
    out = []
    for (block, question), group in rows.groupby(["block", "question"], sort=True):
        sets = [frozenset(shown[i]) for i in group.index]
        methods = sorted(set().union(*sets))
        n_shown = np.array([sum(m in s for s in sets) for m in methods])
        expected = np.array([sum(1 / len(s) for s in sets if m in s) for m in methods])
        chosen = group["choice"].value_counts().reindex(methods, fill_value=0).to_numpy()
        test = _goodness_of_fit(chosen, expected, Counter(sets), methods, seed, n_draws)
        for m, k, n, e in zip(methods, chosen, n_shown, expected):
            low, high = stats.binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson")
            out.append({"block": block, "question": question, "method": m, "n_chosen": int(k), "n_shown": int(n),
                        "share": k / n, "ci_low": low, "ci_high": high, "chance": e / n, "n_trials": len(group),
                        **test})
    return pd.DataFrame(out)


def rating_summary(responses: pd.DataFrame, task: str = "rate") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per_method, pairwise) of a rate study, per (block, question). per_method: n, mean,
    median, q1, q3 (quartiles, linear interpolation) of the rating per method. pairwise: for
    every pair of methods, n_a, n_b, u (Mann-Whitney U of a, scipy.stats.mannwhitneyu, two-sided,
    its default method: exact without ties and small samples, else normal with tie correction),
    prob_a_higher = u / (n_a n_b) = P(a's rating > b's) + ½ P(equal), p, and p_holm (Holm over
    the pairs of that block and question)."""
    rows = _task_rows(responses, task, ["method", "rating"])
    missing = rows[rows["rating"].isna() | rows["method"].isna() | rows["method"].eq("")]
    if not missing.empty:
        raise ValueError(f"{len(missing)} {task} response(s) have no rating or no method (e.g. trial"
                         f" {missing['trial_id'].iloc[0]}); expected a score and the rated method")
    keys = ["block", "question", "method"]
    rating = rows.groupby(keys, sort=True)["rating"]
    per_method = pd.concat({"n": rating.size(), "mean": rating.mean(), "median": rating.median(),
                            "q1": rating.quantile(0.25), "q3": rating.quantile(0.75)}, axis=1).reset_index()
    pairs = []
    for (block, question), group in rows.groupby(["block", "question"], sort=True):
        by_method = {m: g["rating"].to_numpy(float) for m, g in group.groupby("method", sort=True)}
        found = []
        for a, b in itertools.combinations(by_method, 2):
            result = stats.mannwhitneyu(by_method[a], by_method[b], alternative="two-sided")
            n_a, n_b = len(by_method[a]), len(by_method[b])
            found.append({"block": block, "question": question, "method_a": a, "method_b": b, "n_a": n_a,
                          "n_b": n_b, "u": float(result.statistic), "prob_a_higher": result.statistic / (n_a * n_b),
                          "p": float(result.pvalue)})
        for row, adjusted in zip(found, holm([r["p"] for r in found])):
            row["p_holm"] = adjusted
        pairs.extend(found)
    columns = ["block", "question", "method_a", "method_b", "n_a", "n_b", "u", "prob_a_higher", "p", "p_holm"]
    return per_method, pd.DataFrame(pairs, columns=columns)


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


def attention_change(per_image: pd.DataFrame, seed: int = 0, n_resamples: int = 9999) -> pd.DataFrame:
    """Mean per method of per-image values (e.g. Δp_obj of the human maps; columns method,
    pair_id, value) with a percentile bootstrap 95% interval (scipy.stats.bootstrap, `seed`):
    columns method, n, mean, ci_low, ci_high (NaN for a method with a single image: no interval).
    ValueError on a missing column, a NaN value or a (method, pair_id) given twice."""
    _require(per_image, ["method", "pair_id", "value"], "per_image")
    if per_image["value"].isna().any():
        raise ValueError(f"per_image has {int(per_image['value'].isna().sum())} NaN value(s); expected one number"
                         " per (method, pair_id)")
    twice = per_image[per_image.duplicated(["method", "pair_id"], keep=False)]
    if not twice.empty:
        raise ValueError(f"per_image has (method, pair_id) {twice[['method', 'pair_id']].iloc[0].tolist()} more"
                         " than once; expected one value per image and method")
    out = []
    for method, group in per_image.groupby("method", sort=True):
        values = group["value"].to_numpy(float)
        low = high = math.nan
        if len(values) >= 2:
            result = stats.bootstrap((values,), np.mean, method="percentile", confidence_level=0.95,
                                     n_resamples=n_resamples, rng=seed)
            low, high = result.confidence_interval
        out.append({"method": method, "n": len(values), "mean": values.mean(), "ci_low": low, "ci_high": high})
    return pd.DataFrame(out, columns=["method", "n", "mean", "ci_low", "ci_high"])


def split_half_consistency(points_by_participant: dict, shape: tuple[int, int], sigma_px: float,
                           n_splits: int = 20, seed: int = 0, counts=None) -> pd.DataFrame:
    """Inter-observer consistency of one image: for n observers per half (`counts`, default
    1 … half of those available), `n_splits` random pairs of disjoint halves; a fixation map of
    each half (analysis.fixations.fixation_map, `sigma_px` pixels, `shape` (height, width)) and
    cc(map_a, map_b) and the NSS of one half's map at the other half's points (both ways,
    averaged). points_by_participant: {participant: (N, 2) (x, y) image pixels}; points outside
    the image are dropped and a participant left with none is not counted (logged). Columns
    n_per_half, n_observers (= 2 n), cc_mean, cc_std, nss_mean, nss_std, n_splits."""
    height, width = (int(v) for v in shape)
    points = {}
    for participant, value in points_by_participant.items():
        array = np.asarray(value, dtype=float).reshape(-1, 2) if np.size(value) else np.empty((0, 2))
        inside = (array[:, 0] >= 0) & (array[:, 0] < width) & (array[:, 1] >= 0) & (array[:, 1] < height)
        if inside.any():
            points[participant] = array[inside]
    if len(points) < len(points_by_participant):
        log.warning("%d participant(s) have no point in the %dx%d image and are not counted",
                    len(points_by_participant) - len(points), width, height)
    if len(points) < 2:
        raise ValueError(f"split-half consistency needs at least 2 participants with points in the image, got"
                         f" {len(points)}")
    ids = list(points)
    counts = list(range(1, len(ids) // 2 + 1)) if counts is None else [int(n) for n in counts]
    if not counts or min(counts) < 1 or max(counts) > len(ids) // 2:
        raise ValueError(f"counts must be observers per half in 1..{len(ids) // 2} ({len(ids)} participants), got"
                         f" {counts}")
    rng = np.random.default_rng(seed)
    out = []
    for n in counts:
        ccs, nsss = [], []
        for _ in range(n_splits):
            order = rng.permutation(len(ids))
            half_a = np.concatenate([points[ids[i]] for i in order[:n]])
            half_b = np.concatenate([points[ids[i]] for i in order[n:2 * n]])
            map_a, map_b = fixation_map(half_a, shape, sigma_px), fixation_map(half_b, shape, sigma_px)
            ccs.append(cc(map_a, map_b))
            nsss.append((nss(map_a, half_b) + nss(map_b, half_a)) / 2)
        out.append({"n_per_half": n, "n_observers": 2 * n, "cc_mean": np.mean(ccs), "cc_std": np.std(ccs),
                    "nss_mean": np.mean(nsss), "nss_std": np.std(nsss), "n_splits": n_splits})
    return pd.DataFrame(out)


def has_flattened(curve: pd.DataFrame, min_gain: float = 0.01) -> tuple[bool, str]:
    """(whether the split-half CC curve has flattened, the reason in words): flattened when its
    last step (between the last two observer counts) adds less than `min_gain` CC."""
    if len(curve) < 2:
        return False, (f"only {len(curve)} observer count(s) on the curve: too few participants to tell whether"
                       " it has flattened; ask more people")
    (n0, cc0), (n1, cc1) = curve[["n_per_half", "cc_mean"]].iloc[-2:].itertuples(index=False)
    gain = cc1 - cc0
    step = f"going from {n0} to {n1} observers per half changed the split-half CC by {gain:+.3f}"
    if gain < min_gain:
        return True, f"flattened: {step} (< {min_gain}); more observers would change the map little"
    return False, f"still rising: {step} (>= {min_gain}); more observers would still change the map"


def fixations_by_participant(responses: pd.DataFrame, pair_id: str, side: str, method: str | None = None,
                             condition: str | None = None) -> dict:
    """{participant_id: (N, 2) (x, y) image pixels} of the valid codecharts / bubbleview responses
    on one image (pair_id, side, and where given its method and condition), for
    `split_half_consistency`."""
    _require(responses, ["task", "participant_id", "pair_id", "side", "method", "condition", "x", "y", "valid"],
             "responses")
    _one_experiment(responses, None, "responses")
    keep = (responses["task"].isin(["codecharts", "bubbleview"]) & ~responses["valid"].isin([False])
            & responses["pair_id"].eq(pair_id) & responses["side"].eq(side) & responses[["x", "y"]].notna().all(axis=1))
    for column, value in (("method", method), ("condition", condition)):
        if value is not None:
            keep &= responses[column].eq(value)
    rows = responses[keep]
    return {p: g[["x", "y"]].to_numpy(float) for p, g in rows.groupby("participant_id", sort=True)}


def qc_summary(export: StudyExport) -> dict:
    """{"experiment", "participants": {source: {qc_status: count}}, "exclusion_reasons": {reason:
    participants excluded for it} (reasons as QC wrote them), "dropped_responses": responses left
    out of the statistics, "catch": {"trials", "passed", "pass_rate" (None without catch trials)}}."""
    people = export.participants
    by_source = people.groupby(["source", "qc_status"]).size()
    excluded = people[people["qc_status"] == "excluded"]["qc_reason"].replace("", "(no reason given)")
    trials, passed = len(export.catch), int(export.catch["passed"].sum()) if len(export.catch) else 0
    return {"experiment": export.experiment,
            "participants": {s: {q: int(n) for q, n in g.droplevel(0).items()} for s, g in by_source.groupby(level=0)},
            "exclusion_reasons": {r: int(n) for r, n in excluded.value_counts().items()},
            "dropped_responses": int(export.dropped["responses"].sum()),
            "catch": {"trials": trials, "passed": passed, "pass_rate": passed / trials if trials else None}}


def _read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """A CSV of studyweb's export: text unescaped (one leading '), numbers as floats, valid as
    True/False/None, empty text cells as ''."""
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
    if "valid" in table.columns:
        flags = {"True": True, "False": False, "": None}
        _check_values(table["valid"], tuple(flags), f"{path} column valid")
        table["valid"] = table["valid"].map(flags).astype(object)
    for column in ("participant_id", "id"):
        if column in table.columns:
            if table[column].isna().any():
                raise ValueError(f"{path} column {column} has empty cells; expected a participant id on every row")
            table[column] = table[column].astype(np.int64)
    return table


def _one_experiment(responses: pd.DataFrame, experiment: str | None, where) -> tuple[pd.DataFrame, str | None]:
    """The rows of one experiment; ValueError when several are there and `experiment` names none."""
    counts = responses["experiment"].value_counts(dropna=False)
    if experiment is not None:
        if experiment not in counts.index:
            raise ValueError(f"{where} has no responses of experiment {experiment!r}; it has {sorted(counts.index)}")
        return responses[responses["experiment"] == experiment], experiment
    if len(counts) > 1:
        listed = ", ".join(f"{name!r} ({n} rows)" for name, n in counts.items())
        raise ValueError(f"{where} mixes responses of {len(counts)} experiments: {listed}; statistics are per"
                         " experiment, so say which one (experiment=...)")
    return responses, (counts.index[0] if len(counts) else None)


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
    """Catch rows with `passed`: a choose_best catch passes when the chosen method is "original";
    a rate catch when the rating is the scale's top score, which the export does not carry: taken
    as the highest rating given in that block (catch rows included)."""
    top = responses[responses["task"] == "rate"].groupby("block")["rating"].max()
    passed = np.where(catch["task"] == "choose_best", catch["choice"] == CATCH_ANSWER,
                      catch["rating"].notna() & catch["rating"].eq(catch["block"].map(top)))
    return catch.assign(passed=passed.astype(bool))


def _task_rows(responses: pd.DataFrame, task: str, columns: list[str]) -> pd.DataFrame:
    """The non-catch, not-invalid rows of `task`, block '' where empty; ValueError when there are
    none, a column is missing or the rows come from several experiments."""
    _require(responses, ["task", "question", "block", "trial_id", *columns], "responses")
    if "experiment" in responses.columns:
        _one_experiment(responses, None, "responses")
    rows = responses[(responses["task"] == task) & (responses["question"] != CATCH_QUESTION)]
    if "valid" in rows.columns:
        rows = rows[~rows["valid"].isin([False])]
    if rows.empty:
        raise ValueError(f"no valid {task} responses (tasks present: {sorted(set(responses['task']))})")
    return rows.assign(block=rows["block"].fillna("").astype(str))


def _goodness_of_fit(chosen: np.ndarray, expected: np.ndarray, sets: Counter, methods: list[str], seed: int,
                     n_draws: int) -> dict:
    """chi2, chi2_p, small_counts, exact_p, exact_method of `chosen` against `expected` counts."""
    if len(methods) < 2:
        return {"chi2": math.nan, "chi2_p": math.nan, "small_counts": False, "exact_p": math.nan,
                "exact_method": "one method shown: nothing to compare"}
    chi = stats.chisquare(chosen, expected)
    n, k = int(chosen.sum()), len(methods)
    outcomes = math.comb(n + k - 1, k - 1)
    if len(sets) == 1 and outcomes <= MAX_ENUMERATED:
        exact_p, how = _enumerated_p(chosen, expected / n), f"enumerated ({outcomes} outcomes)"
    else:
        exact_p = _monte_carlo_p(float(chi.statistic), expected, sets, methods, seed, n_draws)
        how = f"Monte Carlo ({n_draws} draws, seed {seed})"
    return {"chi2": float(chi.statistic), "chi2_p": float(chi.pvalue), "small_counts": bool((expected < 5).any()),
            "exact_p": exact_p, "exact_method": how}


def _enumerated_p(chosen: np.ndarray, probs: np.ndarray) -> float:
    """Exact multinomial test: the total probability of the outcomes no more probable than `chosen`."""
    n, k = int(chosen.sum()), len(chosen)
    bars = np.array(list(itertools.combinations(range(n + k - 1), k - 1)), dtype=np.int64).reshape(-1, k - 1)
    edges = np.column_stack([np.full(len(bars), -1), bars, np.full(len(bars), n + k - 1)])
    outcomes = np.diff(edges, axis=1) - 1  # stars and bars: every way to split n choices over k methods

    def log_pmf(x):
        return gammaln(n + 1) - gammaln(x + 1).sum(axis=-1) + (x * np.log(probs)).sum(axis=-1)

    observed = log_pmf(chosen.astype(float))
    logs = log_pmf(outcomes.astype(float))
    return float(min(1.0, np.exp(logs[logs <= observed + 1e-9]).sum()))


def _monte_carlo_p(statistic: float, expected: np.ndarray, sets: Counter, methods: list[str], seed: int,
                   n_draws: int) -> float:
    """Share of simulated studies (each trial a uniform pick among its candidates) whose chi-square
    statistic is at least `statistic`, with the observed study counted among them."""
    rng = np.random.default_rng(seed)
    index = {m: i for i, m in enumerate(methods)}
    simulated = np.zeros((n_draws, len(methods)))
    for members, count in sorted(sets.items(), key=lambda item: sorted(item[0])):
        members = sorted(members)
        simulated[:, [index[m] for m in members]] += rng.multinomial(count, np.full(len(members), 1 / len(members)),
                                                                     size=n_draws)
    drawn = ((simulated - expected) ** 2 / expected).sum(axis=1)
    return float((1 + np.sum(drawn >= statistic - 1e-9)) / (n_draws + 1))


def _require(table: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(table.columns)}")


def _check_values(values: pd.Series, allowed, where: str) -> None:
    unknown = sorted(set(values) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"{where} has {unknown[:5]}; expected one of {list(allowed)}")
