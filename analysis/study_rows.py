"""Which rows of a study export (DESIGN.md §2: responses.csv) a statistic uses, and the keys it
groups them by: one experiment at a time, no catch, practice or invalid rows, CodeCharts /
BubbleView points only on images (sentinels and tutorials left out), an image keyed by its pair
and side, methods in a given order.
"""
from __future__ import annotations

import pandas as pd

ATTENTION_TASKS = ("codecharts", "bubbleview")
CATCH_QUESTION = "catch"


def task_rows(responses: pd.DataFrame, task: str, columns: list[str]) -> pd.DataFrame:
    """The rows of `task` that are not catch, practice or invalid, block '' where empty;
    ValueError when there are none, a column is missing or the rows come from several experiments."""
    require(responses, ["task", "question", "block", "trial_id", *columns], "responses")
    if "experiment" in responses.columns:
        one_experiment(responses, None, "responses")
    keep = responses["task"].eq(task) & responses["question"].ne(CATCH_QUESTION)
    keep &= ~flag(responses, "is_catch") & ~flag(responses, "is_practice")
    if "valid" in responses.columns:
        keep &= ~responses["valid"].isin([False])
    rows = responses[keep]
    if rows.empty:
        raise ValueError(f"no valid {task} responses (tasks present: {sorted(set(responses['task']))})")
    return rows.assign(block=rows["block"].fillna("").astype(str))


def image_clicks(responses: pd.DataFrame) -> pd.DataFrame:
    """The CodeCharts / BubbleView points on images that statistics use: valid, with x and y,
    on an image (a pair_id; sentinels have none and are in display pixels, as are rows with
    coord_space 'display'), not practice (is_practice; in a design with conditions, a row
    without one is a tutorial row) and not catch (is_catch, question 'catch'). condition,
    method and side are '' where empty."""
    require(responses, ["task", "participant_id", "pair_id", "side", "condition", "method", "x", "y"], "responses")
    keep = (responses["task"].isin(ATTENTION_TASKS) & responses[["x", "y"]].notna().all(axis=1)
            & filled(responses["pair_id"]))
    keep &= ~flag(responses, "is_practice") & ~flag(responses, "is_catch")
    if "valid" in responses.columns:
        keep &= ~responses["valid"].isin([False])
    if "question" in responses.columns:
        keep &= responses["question"] != CATCH_QUESTION
    if "coord_space" in responses.columns:
        keep &= responses["coord_space"].fillna("") != "display"
    rows = responses[keep]
    rows = rows.assign(**{c: rows[c].fillna("").astype(str) for c in ("condition", "method", "side")})
    if (rows["condition"] != "").any():  # the tutorial's rows carry no condition (studyweb.assignment)
        rows = rows[rows["condition"] != ""]
    return rows


def one_experiment(responses: pd.DataFrame, experiment: str | None, where) -> tuple[pd.DataFrame, str | None]:
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


def image_keys(rows: pd.DataFrame) -> pd.Series:
    """An image's key per row: pair_id, and _side where the row names one."""
    side = rows["side"].fillna("").astype(str) if "side" in rows.columns else pd.Series("", index=rows.index)
    pair = rows["pair_id"].astype(str)
    return pair.where(side.eq(""), pair + "_" + side)


def ordered(values, preferred=None) -> list[str]:
    """The distinct `values`: those in `preferred` first, in its order, then in order of appearance."""
    seen = list(dict.fromkeys(str(v) for v in values))
    first = [m for m in dict.fromkeys(preferred or []) if m in seen]
    return first + [m for m in seen if m not in first]


def require(table: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(table.columns)}")


def flag(table: pd.DataFrame, column: str) -> pd.Series:
    """Whether each row's True/False `column` is True (False where the column is absent)."""
    return table[column].isin([True]) if column in table.columns else pd.Series(False, index=table.index)


def filled(values: pd.Series) -> pd.Series:
    """Whether each cell holds something (not NaN, not '')."""
    return values.notna() & values.astype(str).str.strip().ne("")
