"""Import real photographs into a dataset directory.

`import_pairs`: SGIT-R style pairs — two photos of the same view before and after an edit,
matched by file stem. `import_singles`: SGIT-C style — one image and optionally a target
saliency map, no ground-truth Y.

Imports read exactly or refuse (`datagen.photo_sources`): file names are listed as bytes and one
that is not UTF-8 is refused by name; a damaged or truncated image is refused by name. Nothing is
written when anything is refused, and a crash at any point leaves the old dataset or the new one
(`datagen.photo_staging`).

Ids: a photo's pair id depends only on its file stem (`photo_pair_id`, never the same for two
stems), and no two ids of a dataset may differ only in case (they would be one file on macOS or
Windows): such a photo is refused. Each row records the names of the files it came from
(pairs.csv `x_source_file`, `y_source_file`) and the SHA-256 of their bytes (`x_source_sha256`,
`y_source_sha256`). A re-import skips a photo whose stem is recorded and whose content is the
same, and refuses one whose content changed.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from datadir import MAP_SUFFIXES, Dataset, to_density
from datadir.schema import PAIR_ID_PATTERN
from datagen.photo_sources import MAX_NAMES_SHOWN, FolderScan, file_sha256, read_map, read_photo, scan_folder
from datagen.photo_staging import import_target
from datagen.splits import assign_split, parse_splits

log = logging.getLogger(__name__)

# A derived id ends in '-h' and 10 hex digits of the stem's SHA-256; a stem that itself ends so is
# derived too, so no stem kept as it is can equal another stem's derived id.
_DERIVED_SUFFIX = re.compile(r"-h[0-9a-f]{10}$")
MAX_KEPT_STEM = 100  # characters; longer stems are cut (and hashed) to keep file names short


@dataclass
class ImportSummary:
    imported: int
    skipped: int  # already in the dataset, with the same content
    path: Path
    hidden: list[str] = field(default_factory=list)  # hidden files left out
    outside_links: list[str] = field(default_factory=list)  # symlinks leading out of a source folder
    followed_links: bool = False  # whether those symlinks were read

    def lines(self, what: str = "pairs") -> list[str]:
        """What the import did, for the command line: the counts, then what it left out."""
        lines = [f"imported {self.imported} {what} ({self.skipped} already there) into {self.path}"]
        if self.hidden:
            lines.append(f"left out {len(self.hidden)} hidden file(s): {', '.join(self.hidden[:MAX_NAMES_SHOWN])}")
        if self.outside_links:
            done = "read" if self.followed_links else "left out (--follow-symlinks reads them)"
            lines.append(f"{done} {len(self.outside_links)} symlink(s) leading out of the source folder:"
                         f" {', '.join(self.outside_links[:MAX_NAMES_SHOWN])}")
        return lines


def import_pairs(x_dir, y_dir, out, splits="0.94,0.03,0.03", seed: int = 0, name: str | None = None,
                 follow_symlinks: bool = False) -> ImportSummary:
    """Copy photo pairs (X in x_dir, Y in y_dir, same stem, same size) into dataset `out` as PNGs."""
    scans = [scan_folder(x_dir, "--x-dir", follow_symlinks=follow_symlinks),
             scan_folder(y_dir, "--y-dir", follow_symlinks=follow_symlinks)]
    x_files, y_files = scans[0].files, scans[1].files
    unmatched = sorted(set(x_files) ^ set(y_files))
    if unmatched:
        raise ValueError(f"photos without a counterpart (matched by file stem): {', '.join(unmatched[:10])}")
    fractions = parse_splits(splits)
    sources = {stem: (x_files[stem], y_files[stem]) for stem in x_files}
    with import_target(out, name or Path(out).name, source="photo", seed=seed, splits=list(fractions)) as target:
        todo, skipped = plan_import(target.dataset, sources)
        rows = [_stage_pair(target, stem, pair_id, *sources[stem], split=assign_split(seed, stem, fractions))
                for stem, pair_id in tqdm(todo.items(), desc="importing", unit="pair", disable=None)]
        target.commit(rows)
    return _summary(len(rows), skipped, out, scans, follow_symlinks)


def import_singles(images, out, target_maps=None, splits="0,0,1", seed: int = 0, name: str | None = None,
                   follow_symlinks: bool = False) -> ImportSummary:
    """Copy single images (and target maps, matched by stem, stored as densities) into dataset `out`."""
    scans = [scan_folder(images, "--images", follow_symlinks=follow_symlinks)]
    if target_maps:
        scans.append(scan_folder(target_maps, "--target-maps", MAP_SUFFIXES, follow_symlinks=follow_symlinks))
        lacking = sorted(set(scans[0].files) - set(scans[1].files))
        if lacking:
            raise ValueError(f"no target map for images {', '.join(lacking[:10])} in {target_maps}")
    map_files = scans[1].files if target_maps else {}
    fractions = parse_splits(splits)
    sources = {stem: (path, map_files.get(stem)) for stem, path in scans[0].files.items()}
    with import_target(out, name or Path(out).name, source="single", seed=seed, splits=list(fractions)) as target:
        todo, skipped = plan_import(target.dataset, sources)
        rows = [_stage_single(target, stem, pair_id, *sources[stem], split=assign_split(seed, stem, fractions))
                for stem, pair_id in tqdm(todo.items(), desc="importing", unit="image", disable=None)]
        target.commit(rows)
    return _summary(len(rows), skipped, out, scans, follow_symlinks)


def photo_pair_id(stem: str) -> str:
    """The pair id of the photo with file stem `stem`, the same in every import.

    The stem itself where it is file-name safe (letters, digits, _ . -, first a letter or digit,
    at most MAX_KEPT_STEM characters); otherwise the stem cleaned to those characters, then '-h'
    and 10 hex digits of the stem's SHA-256. Kept stems never end in '-h' + 10 hex digits (such a
    stem is derived too), so two stems share an id only if their hashes do, which
    `new_pair_ids` refuses rather than merge.
    """
    if PAIR_ID_PATTERN.match(stem) and len(stem) <= MAX_KEPT_STEM and not _DERIVED_SUFFIX.search(stem):
        return stem
    base = _clean(stem)[:MAX_KEPT_STEM] or "photo"
    digest = hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{base}-h{digest[:10]}"


def plan_import(dataset: Dataset, sources: dict[str, tuple[Path, Path | None]]) -> tuple[dict[str, str], int]:
    """{stem: pair id} of the photos to import, and how many `dataset` already holds.

    `sources` maps each stem to its (X or image file, Y or target map file or None). A stem a
    row holds is skipped if the files' SHA-256 equal the recorded ones (rows recorded without
    them: by name only), and refused with a ValueError if the content changed; see `new_pair_ids`
    for the ids of the rest.
    """
    _refuse_changed(dataset, sources)
    return new_pair_ids(dataset, list(sources))


def new_pair_ids(dataset: Dataset, stems: list[str]) -> tuple[dict[str, str], int]:
    """{stem: pair id} of the stems `dataset` does not hold yet, and how many it holds.

    A stem is held when a row's `x_source_file` has that stem. Rows imported before sources
    were recorded (no `x_source_file`) hold the stem equal to their pair id; a stem that such a
    row might hold under the old id scheme (cleaned, then `_2`, `_3`, … on a clash) is refused
    with a ValueError rather than guessed. So is an id that two stems would share, and one that
    differs from another id of the dataset only in case.
    """
    table = dataset.pairs
    held = _held_rows(table)
    legacy = set(table["pair_id"][_recorded(table, "x_source_file") == ""])
    by_old_base: dict[str, list[str]] = {}  # legacy ids no stem claims, by the cleaned stem they may come from
    for pid in legacy - set(stems):
        for base in {pid, re.sub(r"_([2-9]|[1-9]\d+)$", "", pid)}:  # the old scheme's clash suffixes _2, _3, …
            by_old_base.setdefault(base, []).append(pid)
    owner = {row["pair_id"]: stem for stem, row in held.items()} | {pid: None for pid in legacy}
    folded = {pid.casefold(): pid for pid in owner}
    todo: dict[str, str] = {}
    case_clashes = []
    for stem in stems:
        if stem in held or stem in legacy:
            continue
        suspects = sorted(by_old_base.get(_clean(stem) or "pair", []))
        if suspects:
            raise ValueError(
                f"photo {stem!r} may already be pair {', '.join(suspects)} of {dataset.path}, which was imported"
                " before source file names were recorded; import into a new dataset instead"
            )
        pair_id = photo_pair_id(stem)
        if pair_id in owner:
            raise ValueError(f"photo {stem!r} would get pair id {pair_id}, which {_holder(owner[pair_id])} has;"
                             " rename the photo")
        twin = folded.get(pair_id.casefold())
        if twin is not None:
            case_clashes.append(f"photo {stem!r} (id {pair_id}) against {_holder(owner[twin])} (id {twin})")
        owner[pair_id], folded[pair_id.casefold()], todo[stem] = stem, pair_id, pair_id
    if case_clashes:
        raise ValueError(f"pair ids that differ only in case would be one file on macOS or Windows:"
                         f" {'; '.join(case_clashes[:MAX_NAMES_SHOWN])}; rename the photos")
    return todo, len(stems) - len(todo)


def _refuse_changed(dataset: Dataset, sources: dict[str, tuple[Path, Path | None]]) -> None:
    """ValueError naming every photo held by a row whose recorded SHA-256 differ from its files now."""
    held = _held_rows(dataset.pairs)
    changed, unverified = [], 0
    for stem in sorted(set(sources) & set(held)):
        row = held[stem]
        if not row.get("x_source_sha256"):
            unverified += 1
            continue
        for side, path in zip(("x", "y"), sources[stem]):
            if path is not None and file_sha256(path) != row.get(f"{side}_source_sha256"):
                was = row.get(f"{side}_source_file")
                changed.append(f"{path.name} (pair {row['pair_id']}, " + (f"imported from {was!r})" if was else
                                                                           "imported without it)"))
    if unverified:
        log.warning("%d photo(s) already in %s were imported before content hashes were recorded; they are"
                    " matched by file name only", unverified, dataset.path)
    if changed:
        raise ValueError(f"{len(changed)} file(s) differ from what {dataset.path} imported under their stem:"
                         f" {'; '.join(changed[:MAX_NAMES_SHOWN])}; restore them, or rename them to import them"
                         " as new pairs")


def _stage_pair(target, stem: str, pair_id: str, x_path: Path, y_path: Path, split: str) -> dict:
    """Read one photo pair, write its PNGs where `target` stages them, and return its row."""
    (x_image, x_sha), (y_image, y_sha) = read_photo(x_path), read_photo(y_path)
    if x_image.shape != y_image.shape:
        raise ValueError(
            f"pair {stem}: X {x_path.name} is {x_image.shape[1]}x{x_image.shape[0]} but"
            f" Y {y_path.name} is {y_image.shape[1]}x{y_image.shape[0]}; a pair needs one size"
        )
    return {
        "pair_id": pair_id, "split": split, "source": "photo", "edit_type": "none",
        "x_image": target.writer.image(pair_id, "x", x_image), "y_image": target.writer.image(pair_id, "y", y_image),
        "x_source_file": x_path.name, "y_source_file": y_path.name,
        "x_source_sha256": x_sha, "y_source_sha256": y_sha,
    }


def _stage_single(target, stem: str, pair_id: str, image_path: Path, map_path: Path | None, split: str) -> dict:
    """Read one image (and its target map), write them where `target` stages them, return the row."""
    image, x_sha = read_photo(image_path)
    row = {"pair_id": pair_id, "split": split, "source": "single", "edit_type": "none",
           "x_source_file": image_path.name, "x_source_sha256": x_sha}
    if map_path is not None:
        target_map, y_sha = read_map(map_path)
        if target_map.shape != image.shape[:2]:
            raise ValueError(
                f"target map {map_path.name} is {target_map.shape[1]}x{target_map.shape[0]} but image"
                f" {image_path.name} is {image.shape[1]}x{image.shape[0]}"
            )
        try:
            density = to_density(target_map)
        except ValueError as exc:
            raise ValueError(f"target map {map_path}: {exc}") from exc
        row.update(y_map=target.writer.map(pair_id, "y", density), y_source_file=map_path.name, y_source_sha256=y_sha)
    row["x_image"] = target.writer.image(pair_id, "x", image)
    return row


def _held_rows(table: pd.DataFrame) -> dict[str, dict]:
    """{file stem: row} of the rows that record the file they were imported from."""
    return {Path(row["x_source_file"]).stem: row for row in table.to_dict("records") if row.get("x_source_file")}


def _recorded(table: pd.DataFrame, column: str) -> pd.Series:
    return table[column] if column in table.columns else pd.Series("", index=table.index)


def _holder(stem: str | None) -> str:
    return f"photo {stem!r}" if stem is not None else "a row imported before source files were recorded"


def _summary(imported: int, skipped: int, out, scans: list[FolderScan], follow_symlinks: bool) -> ImportSummary:
    return ImportSummary(imported, skipped, Path(out), hidden=[name for scan in scans for name in scan.hidden],
                         outside_links=[name for scan in scans for name in scan.outside_links],
                         followed_links=follow_symlinks)


def _clean(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-")
