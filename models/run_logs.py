"""A training run's logs: append-only CSV files (log.csv, val.csv) and TensorBoard scalars."""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["RunLogs"]

_TB_NOTICE_GIVEN = False


class RunLogs:
    """The CSV logs `out_dir/<name>.csv` and, with `tensorboard` where the tensorboard package is
    installed, `out_dir/tensorboard/`. Rows after `resumed_step` (left by a crashed run) are dropped on open."""

    def __init__(self, out_dir: Path, resumed_step: int, tensorboard: bool = True):
        global _TB_NOTICE_GIVEN
        self.out_dir, self.resumed_step = Path(out_dir), resumed_step
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, _CsvLog] = {}
        self._tb = None
        if not tensorboard:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if not _TB_NOTICE_GIVEN:
                logger.warning("TensorBoard logs off: the tensorboard package is not installed, so the logs are CSV "
                               "only (log.csv, val.csv); `pip install tensorboard` (in gazelab's `models` extra) "
                               "adds them")
                _TB_NOTICE_GIVEN = True
            return
        self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=resumed_step + 1)

    def write_row(self, log: str, row: dict[str, Any]) -> None:
        """Append `row` to out_dir/<log>.csv and its numbers to TensorBoard (`train/` for log.csv)."""
        writer = self._writers.get(log)
        if writer is None:
            writer = self._writers[log] = _CsvLog(self.out_dir / f"{log}.csv", self.resumed_step)
        writer.write(row)
        if self._tb is not None:
            prefix = "train" if log == "log" else log
            for key, value in row.items():
                if key not in ("step", "seconds") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{key}", value, row["step"])

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class _CsvLog:
    """An append-only CSV; on resume, rows after the resumed step (from a crashed run) are dropped."""

    def __init__(self, path: Path, resumed_step: int):
        self.path, self.columns = path, None
        if path.is_file() and path.stat().st_size > 0:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
                columns = list(rows[0].keys()) if rows else None
            if columns:
                self.columns = columns
                kept = [r for r in rows if int(float(r["step"])) <= resumed_step]
                with open(path, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, columns)
                    writer.writeheader()
                    writer.writerows(kept)
            else:
                path.unlink()
        self._handle = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._handle, self.columns, extrasaction="ignore", restval="") if self.columns else None

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self.columns = list(row)
            self._writer = csv.DictWriter(self._handle, self.columns, extrasaction="ignore", restval="")
            self._writer.writeheader()
        self._writer.writerow(row)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
