"""The run's per-epoch CSV log, kept whole across resumes."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


def rows_up_to_step(metrics_csv: str | os.PathLike, step: int) -> list[dict[str, Any]]:
    """The rows of a Lightning metrics CSV logged at or before ``step`` (empty cells dropped)."""
    if not Path(metrics_csv).is_file():
        return []
    with open(metrics_csv, newline="") as handle:
        rows = [{key: value for key, value in row.items() if value not in ("", None)} for row in csv.DictReader(handle)]
    return [row for row in rows if int(float(row.get("step", step + 1))) <= step]


class RunCSVLogger(CSVLogger):
    """Lightning's CSV logger in ``run_dir/logs``; on resume it keeps the rows logged up to the checkpoint's step.

    Lightning's writer deletes an existing metrics.csv when it starts, so a resumed run's log (and its curves) would
    otherwise begin at the resumed epoch.
    """

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None) -> None:
        super().__init__(run_dir, name="", version="logs")
        self._earlier_rows = [] if resume_step is None else rows_up_to_step(self.metrics_file, resume_step)

    @property
    def metrics_file(self) -> Path:
        return Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE

    @property
    def experiment(self) -> Any:
        writer = super().experiment
        if self._earlier_rows and isinstance(writer, ExperimentWriter):  # rank 0, once: written with the next save
            writer.metrics[:0] = self._earlier_rows
            self._earlier_rows = []
        return writer
