"""The vocabulary of a dataset directory (DESIGN.md §2): pairs.csv's columns and their values,
and `Problem`, one way a dataset breaks the contract."""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_VERSION = 1
PAIR_COLUMNS = [
    "pair_id", "split", "source", "edit_type", "n_edited",
    "x_image", "y_image", "x_mask", "y_mask", "scene",
    "x_map", "y_map", "n_observers_x", "n_observers_y", "kl_xy",
]
# Written only by datasets that use them (after PAIR_COLUMNS); readers of §2 columns ignore them.
# A photo import's record of what it read: the source file names (no folder) and the SHA-256
# (hex) of their bytes, so a re-import knows a photo by name and content (datagen.photos).
OPTIONAL_COLUMNS = ["x_source_file", "y_source_file", "x_source_sha256", "y_source_sha256"]
NUMERIC_COLUMNS = {"n_edited": "Int64", "n_observers_x": "Int64", "n_observers_y": "Int64", "kl_xy": "float64"}
SPLITS = ("train", "val", "test")
SOURCES = ("clevr", "photo", "single")
EDIT_TYPES = ("add", "remove", "move", "recolor", "rematerial", "resize", "reshape", "none")
# A pair id is a file-name stem on every file system.
PAIR_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: which pair (or '' for the dataset), what kind, details."""

    pair_id: str
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"pair {self.pair_id}" if self.pair_id else "dataset"
        return f"{where}: {self.kind}: {self.message}"
