"""Writes that a crash cannot leave half done: a hidden temporary file beside the target, then
a rename. Files get the mode open() gives a new file (0666 & ~umask), like every dataset file."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def temp_file_beside(path: Path) -> tuple[int, Path]:
    """A new hidden file in `path`'s folder for write-then-rename: (its descriptor, open for
    writing, and its path). Its mode is what open() gives a new file, 0666 & ~umask, so the
    renamed file has the dataset's usual permissions (tempfile.mkstemp would make it 0600)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp


def atomic_write_bytes(path, data: bytes, *, sync: bool = True, sync_folder: bool = False) -> None:
    """Write `data` to `path` through a temporary file and rename it into place: a crashed process
    never leaves half a file. `sync`: fsync the data first, so a power cut cannot either (tables and
    scene files; images skip it: a render or import rerun redoes a pair whose files are lost)."""
    path = Path(path)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path, text: str, *, sync_folder: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), sync_folder=sync_folder)


def write_json(path, data: dict[str, Any]) -> None:
    """A JSON file (indented, keys sorted), written atomically."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def write_png(path, image: np.ndarray, *, rgb: bool = True) -> None:
    """An 8-bit PNG written atomically. `image`: (H, W, 3) RGB when `rgb` (else BGR as OpenCV
    keeps it) or (H, W) grey / labels."""
    array = np.asarray(image)
    if array.ndim == 3 and rgb:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"cannot encode a {array.shape} {array.dtype} array as PNG for {path}")
    atomic_write_bytes(path, encoded.tobytes(), sync=False)


def read_image(path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """An image read through its bytes (so any file name works), as OpenCV decodes it; None if
    the file is not a decodable image."""
    try:
        data = np.fromfile(Path(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, flags)
