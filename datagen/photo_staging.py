"""Where a photo import writes, so that a crash at any point (SIGKILL included) leaves the old
dataset or the new one.

A new dataset is built whole in a hidden folder beside its destination (`.NAME.import-XXXXXXXX`)
and renamed into place at the end: one rename, so a refused or killed import leaves no dataset
folder. An existing dataset is locked for the import (flock on its folder: one import at a time),
its new files are staged in `DATASET/.import-XXXXXXXX/`, and they are committed through a journal:
the rows and the files to move go into the staging folder (`journal.json`, written atomically),
then the files are moved into place and pairs.csv is rewritten (atomic replace). An import killed
before the journal leaves the dataset as it was; one killed after it is completed by the next
import. The next import tells a leftover staging folder from a live one by its lock: an existing
dataset's lock is held by at most one import, a new dataset's staging folder by its own import.
An import that fails with an exception removes what it staged, and moved files whose rows did not
make it into pairs.csv.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from datadir import KINDS, SIDES, Dataset, PairWriter, relative_path
from datadir.files import atomic_write_text
from datadir.layout import META_FILE

try:
    import fcntl
except ImportError:  # Windows: no flock; one import at a time is then up to the user
    fcntl = None

log = logging.getLogger(__name__)

STAGING_PREFIX = ".import-"
JOURNAL = "journal.json"


@contextmanager
def import_target(out, name: str, **settings) -> Iterator["NewDataset | ExistingDataset"]:
    """The dataset folder `out` opened for one import: a `NewDataset` if it holds no dataset yet
    (`settings` go to its dataset.json), else an `ExistingDataset` whose settings' source must
    match. Anything raised inside the block undoes the import."""
    out = Path(out)
    target = ExistingDataset(out, settings["source"]) if (out / META_FILE).exists() else NewDataset(out, name, settings)
    try:
        yield target
    except BaseException:
        target.abort()
        raise
    finally:
        target.release()


class NewDataset:
    """A dataset built in `.NAME.import-XXXXXXXX` beside `out`, renamed to `out` by `commit`."""

    def __init__(self, out: Path, name: str, settings: dict[str, Any]):
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"{out} is neither a dataset (it has no {META_FILE}) nor an empty folder;"
                             " give a new or empty folder, or an existing dataset")
        self.out = Path(os.path.abspath(out))
        self.staging: Path | None = None
        self.lock: int | None = None
        self.committed = False
        self.made = _make_folders(self.out.parent)
        try:
            _discard_stale_siblings(self.out)
            self.staging = self.out.parent / f".{self.out.name}{STAGING_PREFIX}{secrets.token_hex(4)}"
            self.staging.mkdir()
            self.lock = _try_lock(self.staging)
            self.dataset = Dataset.create(self.staging, name, **settings)
            self.writer = PairWriter(self.staging)  # where the import writes its pairs' files
        except BaseException:
            self.abort()
            self.release()
            raise

    def commit(self, rows: list[dict[str, Any]]) -> None:
        """Add `rows` to the staged dataset and rename it to `out`."""
        self.dataset.add_pairs(rows)
        for folder in [self.staging, *(p for p in self.staging.iterdir() if p.is_dir())]:
            _sync_folder(folder)
        try:
            os.rename(self.staging, self.out)
        except OSError as exc:
            raise ValueError(f"{self.out} appeared during the import (another import into it?); nothing was"
                             " written: run the import again to add to it") from exc
        self.committed = True
        _sync_folder(self.out.parent)

    def abort(self) -> None:
        if self.committed:  # a failure after the rename: the dataset is complete
            return
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
        for folder in self.made:  # deepest first; stops at one that is no longer empty
            try:
                folder.rmdir()
            except OSError:
                break

    def release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


class ExistingDataset:
    """An existing dataset, locked; new files are staged in `out/.import-XXXXXXXX/`."""

    def __init__(self, out: Path, source: str):
        self.out = out
        self.lock = _try_lock(out)
        if self.lock is None:
            raise ValueError(f"another import into {out} is running; wait for it to end")
        try:
            recover_interrupted_imports(out)
            self.dataset = Dataset.open(out)
            if self.dataset.settings.get("source") != source:
                raise ValueError(f"{out} holds a {self.dataset.settings.get('source')!r} dataset;"
                                 f" refusing to add {source!r} pairs")
            self.staging = out / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
            self.staging.mkdir()
            self.writer = PairWriter(self.staging)  # where the import writes its pairs' files
        except BaseException:
            self.release()
            raise

    def commit(self, rows: list[dict[str, Any]]) -> None:
        """Journal `rows` and the files staged for them, then move the files in and add the rows."""
        paths = {(row["pair_id"], relative_path(row["pair_id"], kind, side)) for row in rows for kind in KINDS
                 for side in SIDES}
        staged = sorted((pair_id, relative) for pair_id, relative in paths if (self.staging / relative).is_file())
        for folder in [p for p in self.staging.iterdir() if p.is_dir()]:
            _sync_folder(folder)
        atomic_write_text(self.staging / JOURNAL, json.dumps({"rows": rows, "files": staged}),
                          sync_folder=True)
        _apply_journal(self.out, self.staging)

    def abort(self) -> None:
        if (self.staging / JOURNAL).is_file():
            _remove_unlisted(self.out, json.loads((self.staging / JOURNAL).read_text(encoding="utf-8"))["files"])
        shutil.rmtree(self.staging, ignore_errors=True)

    def release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def recover_interrupted_imports(root: Path) -> None:
    """Complete or discard the staging folders that killed imports left in dataset `root`: one
    with a journal is completed (its rows were decided), one without is deleted. The caller
    holds `root`'s import lock, so no live import owns them."""
    for staging in sorted(p for p in root.glob(f"{STAGING_PREFIX}*") if p.is_dir()):
        if (staging / JOURNAL).is_file():
            log.warning("completing an import into %s that was interrupted while it moved its files in (%s)",
                        root, staging.name)
            _apply_journal(root, staging)
        else:
            log.warning("discarding %s: an import into %s that was interrupted before it committed", staging.name, root)
            shutil.rmtree(staging)


def _apply_journal(root: Path, staging: Path) -> None:
    """Move the journal's files that are still staged into place, add its rows that pairs.csv
    lacks, and delete the staging folder. Safe to repeat after a crash at any point."""
    journal = json.loads((staging / JOURNAL).read_text(encoding="utf-8"))
    for _, relative in journal["files"]:
        staged = staging / relative
        if staged.exists():
            os.replace(staged, root / relative)
    for folder in {Path(relative).parent for _, relative in journal["files"]}:
        _sync_folder(root / folder)
    dataset = Dataset.open(root)
    listed = set(dataset.pairs["pair_id"])
    rows = [row for row in journal["rows"] if row["pair_id"] not in listed]
    if rows:
        dataset.add_pairs(rows)
    shutil.rmtree(staging)


def _remove_unlisted(root: Path, files: list[tuple[str, str]]) -> None:
    """Delete the moved-in files of pairs that pairs.csv on disk does not list (an import that
    failed between moving its files and writing pairs.csv)."""
    try:
        listed = set(Dataset.open(root).pairs["pair_id"])
    except ValueError as exc:  # cannot tell what is listed: keep the files, `dataset validate` names them
        log.warning("could not read %s back (%s); files of the failed import are left in place", root, exc)
        return
    for pair_id, relative in files:
        if pair_id not in listed:
            (root / relative).unlink(missing_ok=True)


def _discard_stale_siblings(out: Path) -> None:
    """Delete the staging folders of earlier imports into the new dataset `out` that were killed
    (their lock is free)."""
    prefix = f".{out.name}{STAGING_PREFIX}"
    for staging in sorted(p for p in out.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()):
        lock = _try_lock(staging)
        if lock is None:  # a live import into the same folder; the later rename decides
            continue
        try:
            log.warning("discarding %s: an import into %s that was interrupted", staging, out)
            shutil.rmtree(staging)
        finally:
            os.close(lock)


def _try_lock(folder: Path) -> int | None:
    """An open descriptor of `folder` holding an exclusive flock on it, or None if another
    process holds it. The kernel releases the lock when its holder dies, however it dies."""
    fd = os.open(folder, os.O_RDONLY)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            return None
        log.warning("cannot lock %s (%s); two imports into it at once would not be stopped", folder, exc)
    return fd


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns the ones created, deepest first."""
    made = []
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    for missing in reversed(made):
        missing.mkdir(exist_ok=True)
    return made


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that the names created or renamed in it survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
