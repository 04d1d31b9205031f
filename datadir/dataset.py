"""The dataset directory: the contract between datagen, studyweb, models and analysis.

Layout (DESIGN.md §2): `datadir.layout`.

`pairs.csv` holds one row per pair, paths relative to DATASET, in the columns of §2
(`PAIR_COLUMNS`), then any of `OPTIONAL_COLUMNS` that the dataset uses: `x_source_file` and
`y_source_file`, the file names (no folder) a photo import read a row's X and Y (or target map)
from, and `x_source_sha256` and `y_source_sha256`, the SHA-256 of those files' bytes — the photo
importers' record of what is already in. It is rewritten atomically
(temp file, fsync, rename) on every change, so a crash leaves the previous complete table.
Files get the mode open() gives a new file (0666 & ~umask), like every other dataset file.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from datadir.files import atomic_write_text
from datadir.layout import SUBDIRS, is_dataset, meta_path, pairs_path, relative_path
from datadir.schema import (EDIT_TYPES, FORMAT_VERSION, NUMERIC_COLUMNS, OPTIONAL_COLUMNS, PAIR_COLUMNS,
                            PAIR_ID_PATTERN, SOURCES, SPLITS, Problem)
from datadir.validation import validate_dataset

__all__ = ["Dataset", "Problem", "PAIR_COLUMNS", "OPTIONAL_COLUMNS", "SPLITS", "SOURCES", "EDIT_TYPES",
           "FORMAT_VERSION"]

class Dataset:
    """A dataset directory. Use `Dataset.create` for a new one and `Dataset.open` for an existing one."""

    def __init__(self, path: Path, meta: dict[str, Any], pairs: pd.DataFrame):
        self.path = path
        self.meta = meta
        self._pairs = pairs

    @classmethod
    def create(cls, path, name: str, **settings) -> "Dataset":
        """Make an empty dataset at `path` (which must not hold one yet); `settings` go to dataset.json."""
        path = Path(path)
        if meta_path(path).exists():
            raise FileExistsError(f"{path} already holds a dataset ({meta_path(path)}); open it instead")
        if path.exists() and not path.is_dir():
            raise ValueError(f"dataset path {path} exists and is not a directory")
        for sub in SUBDIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        meta = {
            "name": str(name),
            "format_version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": settings,
            "splits": {split: 0 for split in SPLITS},
        }
        dataset = cls(path, meta, _empty_pairs())
        dataset._write_pairs(dataset._pairs)
        return dataset

    @classmethod
    def open(cls, path) -> "Dataset":
        """Open an existing dataset; a ValueError says what is missing or malformed."""
        path = Path(path)
        meta_file = meta_path(path)
        if not meta_file.is_file():
            raise ValueError(f"{path} is not a gazelab dataset: {meta_file.name} is missing")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{meta_file} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_file} has format_version {meta.get('format_version') if isinstance(meta, dict) else None!r};"
                f" expected {FORMAT_VERSION}"
            )
        return cls(path, meta, _read_pairs(pairs_path(path)))

    @staticmethod
    def is_dataset(path) -> bool:
        """Whether `path` holds a dataset (dataset.json and pairs.csv), without reading it."""
        return is_dataset(path)

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def settings(self) -> dict[str, Any]:
        return self.meta.get("settings", {})

    @property
    def pairs(self) -> pd.DataFrame:
        """The pairs table (a copy: change it through add_pairs / update_pairs)."""
        return self._pairs.copy()

    def add_pairs(self, rows: Iterable[dict[str, Any]] | pd.DataFrame) -> None:
        """Append new pairs; a pair id already present (or repeated in `rows`) is a ValueError."""
        new = _normalise_rows(rows)
        clash = set(new["pair_id"]) & set(self._pairs["pair_id"])
        repeated = new["pair_id"][new["pair_id"].duplicated()].tolist()
        if clash or repeated:
            raise ValueError(f"pair ids already in {self.path}: {sorted(clash | set(repeated))[:10]}")
        if self._pairs.empty:
            combined = new
        else:  # both with the same columns: concat of an all-NA column is deprecated in pandas
            old = self._pairs.copy()
            for column in _columns_of(old) + _columns_of(new):
                for part in (old, new):
                    if column not in part.columns:
                        part[column] = ""
            combined = pd.concat([old, new[list(old.columns)]], ignore_index=True)
        self._write_pairs(combined)

    def update_pairs(self, rows: Iterable[dict[str, Any]] | pd.DataFrame) -> None:
        """Set the given columns of existing pairs (matched by pair_id), e.g. maps after a study."""
        updates = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
        if "pair_id" not in updates.columns:
            raise ValueError("update rows need a pair_id column")
        _refuse_unknown_columns(updates)
        table = self._pairs.set_index("pair_id", drop=False)
        ids = updates["pair_id"].astype(str)
        missing = sorted(set(ids) - set(table.index))
        if missing:
            raise ValueError(f"pair ids not in {self.path}: {missing[:10]}")
        for column in updates.columns.drop("pair_id"):
            if column not in table.columns:
                table[column] = ""
            # as objects: an empty value (None, NaN) may meet a numeric column; _coerce types it on write
            table[column] = table[column].astype(object)
            table.loc[ids.to_numpy(), column] = updates[column].to_numpy(dtype=object)
        self._write_pairs(_coerce(table.reset_index(drop=True)))

    def path_of(self, pair_id: str, kind: str, side: str = "x") -> Path:
        """Absolute path of one file of a pair in the standard layout.

        kind: image | mask | map (8-bit PNG) | map_npy (float32 density) | fixations | scene;
        side: x | y (ignored for scene).
        """
        return self.path / relative_path(pair_id, kind, side)

    def validate(self, progress: bool = False) -> list[Problem]:
        """Every problem found: files, sizes, mask ids, densities, ids, splits, edit types."""
        return validate_dataset(self, progress=progress)

    def summary(self) -> dict[str, Any]:
        """Counts by split, source and edit type, and how many sides have maps and observers."""
        table = self._pairs
        observers = pd.concat([table["n_observers_x"], table["n_observers_y"]]).dropna()
        return {
            "name": self.name,
            "path": str(self.path),
            "pairs": len(table),
            "splits": _counts(table["split"]),
            "sources": _counts(table["source"]),
            "edit_types": _counts(table["edit_type"]),
            "maps": int((table["x_map"] != "").sum() + (table["y_map"] != "").sum()),
            "observers": {
                "sides_with_observers": int(len(observers)),
                "mean": float(observers.mean()) if len(observers) else 0.0,
                "min": int(observers.min()) if len(observers) else 0,
                "max": int(observers.max()) if len(observers) else 0,
            },
        }

    def _write_pairs(self, table: pd.DataFrame) -> None:
        columns = _columns_of(table)
        atomic_write_text(pairs_path(self.path), table[columns].to_csv(index=False, lineterminator="\n"),
                          sync_folder=True)
        self._pairs = table.reset_index(drop=True)
        self.meta["splits"] = {split: int((table["split"] == split).sum()) for split in SPLITS}
        self.meta["n_pairs"] = int(len(table))
        atomic_write_text(meta_path(self.path), json.dumps(self.meta, indent=2, sort_keys=True) + "\n",
                          sync_folder=True)


def _empty_pairs() -> pd.DataFrame:
    return _coerce(pd.DataFrame({column: pd.Series(dtype=object) for column in PAIR_COLUMNS}))


def _read_pairs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ValueError(f"{path} is missing; a dataset needs a pairs table")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path} is not a readable CSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path} is empty; expected a header row {PAIR_COLUMNS}") from exc
    missing = [c for c in PAIR_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    return _coerce(table[_columns_of(table)])


def _normalise_rows(rows) -> pd.DataFrame:
    table = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if table.empty:
        return _empty_pairs()
    _refuse_unknown_columns(table)
    if "pair_id" not in table.columns:
        raise ValueError("pair rows need a pair_id")
    for column in PAIR_COLUMNS:
        if column not in table.columns:
            table[column] = None
    table = _coerce(table[_columns_of(table)])
    bad = [pid for pid in table["pair_id"] if not PAIR_ID_PATTERN.match(pid)]
    if bad:
        raise ValueError(f"pair ids {bad[:5]} are not file-name safe; expected letters, digits, _ . -")
    return table


def _refuse_unknown_columns(table: pd.DataFrame) -> None:
    unknown = [c for c in table.columns if c not in PAIR_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ValueError(f"unknown pairs.csv columns {unknown}; expected some of {PAIR_COLUMNS + OPTIONAL_COLUMNS}")


def _columns_of(table: pd.DataFrame) -> list[str]:
    """The §2 columns, then the optional ones this table has."""
    return PAIR_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in table.columns]


def _coerce(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns as str ('' for empty), numeric columns as nullable numbers."""
    table = table.copy()
    for column in _columns_of(table):
        if column in NUMERIC_COLUMNS:
            values = pd.to_numeric(table[column].replace("", None), errors="coerce")
            table[column] = values.round() if NUMERIC_COLUMNS[column] == "Int64" else values
            table[column] = table[column].astype(NUMERIC_COLUMNS[column])
        else:
            table[column] = table[column].fillna("").astype(str)
    return table


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}
