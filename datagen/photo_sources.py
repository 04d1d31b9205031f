"""What a photo import reads: the files of a source folder, and their bytes decoded exactly.

`scan_folder` lists a folder with bytes names (os.scandir on a bytes path), so a name that is
not valid UTF-8 is seen as it is and refused by name (ids and pairs.csv cells are UTF-8 text),
never handed on escaped. Hidden files and symlinks that lead out of the folder are reported,
never skipped silently. `read_photo` and `read_map` decode a file's bytes (cv2.imdecode; no path
is ever handed to OpenCV) after checking that a JPEG or PNG is whole: one cut short or failing a
checksum is refused by name, whatever the decoder would make of it.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datadir import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

MAX_NAMES_SHOWN = 10  # files named in one error line; the rest are counted
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8\xff"
# A JPEG marker: 0xFF (fill bytes may repeat it), then a code that is not 0x00 (a stuffed 0xFF).
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xff])")
# The end of a scan's entropy-coded data: a marker other than the restarts RST0-RST7.
_SCAN_END = re.compile(rb"\xff+([^\x00\xff\xd0-\xd7])")
_EOI, _SOS = 0xD9, 0xDA


@dataclass
class FolderScan:
    """The image files of one source folder by file stem, and the files left out that the user
    should hear about (as 'folder/name' text)."""

    files: dict[str, Path] = field(default_factory=dict)
    hidden: list[str] = field(default_factory=list)  # names starting with '.': always left out
    outside_links: list[str] = field(default_factory=list)  # symlinks whose target is outside the folder


def scan_folder(folder, option: str, suffixes=IMAGE_SUFFIXES, follow_symlinks: bool = False) -> FolderScan:
    """The files of `folder` (not recursive) whose suffix (any case) is in `suffixes`, by stem.

    Refused with a ValueError naming `option` and the files: names that are not valid UTF-8, two
    files of one stem, stems that differ only in case or Unicode normalisation (one file on
    macOS or Windows), a folder without images. Reported with a warning each: hidden files (left
    out), symlinks whose target is outside `folder` (left out unless `follow_symlinks`), other
    files. Sub-folders are not looked into.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{option} {folder} is not a directory")
    root = os.path.realpath(folder)
    scan, undecodable = FolderScan(), []
    wanted = {os.fsencode(suffix) for suffix in suffixes}
    with os.scandir(os.fsencode(folder)) as entries:
        listing = sorted(entries, key=lambda entry: entry.name)
    for entry in listing:
        shown = f"{folder}/{_shown(entry.name)}"
        if entry.name.startswith(b"."):
            if entry.is_file():
                scan.hidden.append(shown)
                log.warning("leaving out %s: a hidden file", shown)
            continue
        if os.path.splitext(entry.name)[1].lower() not in wanted:
            if entry.is_file():
                log.warning("skipping %s: not an image (%s)", shown, ", ".join(suffixes))
            continue
        name = _text(entry.name)
        if name is None:
            undecodable.append(entry.name)
            continue
        path = folder / name
        if entry.is_symlink() and not _link_is_followed(path, root, follow_symlinks, scan):
            continue
        if entry.is_file():
            _add(scan.files, path, option)
    if undecodable:
        raise ValueError(f"{option} {folder} holds {len(undecodable)} image(s) whose names are not valid UTF-8:"
                         f" {_listed([repr(name) for name in undecodable])}; ids and pairs.csv are text, so rename"
                         " them (e.g. convmv -f latin1 -t utf8) and import again")
    _refuse_case_twins(scan.files, option, folder)
    if not scan.files:
        raise ValueError(f"{option} {folder} holds no images ({', '.join(suffixes)})")
    return scan


def read_photo(path) -> tuple[np.ndarray, str]:
    """The image file `path` as (H, W, 3) uint8 RGB (alpha dropped, grey expanded, 16-bit scaled
    to 8 as OpenCV does), and the SHA-256 (hex) of its bytes. ValueError naming the file if it
    is damaged or not a decodable image."""
    data = Path(path).read_bytes()
    image = _decoded(data, path, cv2.IMREAD_COLOR, f"{path} is not a readable image")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{path} decodes to a {image.shape} {image.dtype} array; expected 8-bit colour")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), hashlib.sha256(data).hexdigest()


def read_map(path) -> tuple[np.ndarray, str]:
    """A target map: `.npy` as stored, an image as grey values, both float32 (H, W); and the
    SHA-256 of the file's bytes. ValueError naming the file if unreadable, damaged or not 2-D."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"map file {path} is not a readable .npy array: {exc}") from exc
    else:
        values = _decoded(data, path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH,
                          f"map file {path} is not a readable image")
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"map file {path} holds an array of shape {values.shape}; expected 2-D")
    return values.astype(np.float32), hashlib.sha256(data).hexdigest()


def file_sha256(path) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def damage(data: bytes) -> str | None:
    """Why `data` is not a whole JPEG or PNG file (cut short, or a PNG chunk failing its CRC), or
    None. Other formats are left to their decoder, which refuses a file cut short."""
    if data.startswith(_JPEG_START):
        return _jpeg_damage(data)
    if data.startswith(_PNG_SIGNATURE):
        return _png_damage(data)
    return None


def fold(stem: str) -> str:
    """A stem as case-insensitive file systems compare names (case and Unicode form ignored)."""
    return unicodedata.normalize("NFC", stem).casefold()


def _decoded(data: bytes, path, flags: int, unreadable: str) -> np.ndarray:
    if not data:
        raise ValueError(f"{unreadable}: the file is empty")
    problem = damage(data)
    if problem is not None:
        raise ValueError(f"{path} is damaged: {problem}; refusing to import it")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise ValueError(f"{unreadable}: {' '.join(str(exc).split())}") from exc
    if image is None or image.size == 0:
        raise ValueError(unreadable)
    return image


def _jpeg_damage(data: bytes) -> str | None:
    """Walk a JPEG's segments and scans to its end-of-image marker (bytes after it are allowed)."""
    cut_short = "its JPEG data stops before the end-of-image marker (the file is cut short)"
    position = len(_JPEG_START) - 1
    while True:
        marker = _JPEG_MARKER.search(data, position)
        if marker is None:
            return cut_short
        code, position = marker.group(1)[0], marker.end()
        if code == _EOI:
            return None
        if 0xD0 <= code <= 0xD8 or code == 0x01:  # RSTn, SOI, TEM: markers without a segment
            continue
        position += int.from_bytes(data[position:position + 2], "big")
        if position > len(data):
            return cut_short
        if code == _SOS:
            scan_end = _SCAN_END.search(data, position)
            if scan_end is None:
                return cut_short
            position = scan_end.start()


def _png_damage(data: bytes) -> str | None:
    """Walk a PNG's chunks to IEND, checking each chunk's CRC."""
    view = memoryview(data)
    position = len(_PNG_SIGNATURE)
    while position + 12 <= len(data):
        length = int.from_bytes(view[position:position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            break
        kind = bytes(view[position + 4:position + 8])
        if zlib.crc32(view[position + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return f"its PNG chunk {kind.decode('latin-1')!r} at byte {position} fails its CRC check"
        if kind == b"IEND":
            return None
        position = end
    return "its PNG data stops before the IEND chunk (the file is cut short)"


def _link_is_followed(path: Path, root: str, follow_symlinks: bool, scan: FolderScan) -> bool:
    """Whether to read the symlink `path`: yes if its target is inside the folder `root`;
    otherwise it is reported, and read only with `follow_symlinks`."""
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) == root:
        return True
    scan.outside_links.append(str(path))
    if not os.path.exists(target):
        log.warning("leaving out %s: a symlink to %s, which does not exist", path, target)
        return False
    if follow_symlinks:
        log.info("following %s: a symlink to %s, outside %s", path, target, path.parent)
        return True
    log.warning("leaving out %s: a symlink to %s, outside %s (--follow-symlinks reads it)", path, target, path.parent)
    return False


def _add(files: dict[str, Path], path: Path, option: str) -> None:
    if path.stem in files:
        raise ValueError(f"{option} has two files with stem {path.stem!r}: {files[path.stem].name}, {path.name}")
    files[path.stem] = path


def _refuse_case_twins(files: dict[str, Path], option: str, folder: Path) -> None:
    by_folded: dict[str, list[str]] = {}
    for stem, path in files.items():
        by_folded.setdefault(fold(stem), []).append(path.name)
    twins = [" / ".join(names) for names in by_folded.values() if len(names) > 1]
    if twins:
        raise ValueError(f"{option} {folder} holds files whose names differ only in case (or Unicode form), which"
                         f" would be one file on macOS or Windows: {_listed(twins, '; ')}; rename all but one of each")


def _text(name: bytes) -> str | None:
    """A file name from the OS as text, or None if it is not valid UTF-8."""
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shown(name: bytes) -> str:
    text = _text(name)
    return text if text is not None else repr(name)


def _listed(names: list[str], separator: str = ", ") -> str:
    more = f"{separator}and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return separator.join(names[:MAX_NAMES_SHOWN]) + more
