"""Where a trainer's progress goes: its log file, stderr, and Dagster Pipes when launched by Dagster."""

from __future__ import annotations

import logging
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

log = logging.getLogger("llm_twin.training")


class Reporter(AbstractContextManager["Reporter"]):
    def __init__(self, log_file: Path, pipes: Any = None) -> None:
        self.pipes = pipes  # an open Dagster Pipes context, or None
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers: list[logging.Handler] = [logging.FileHandler(log_file), logging.StreamHandler(sys.stderr)]
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        for handler in handlers:
            handler.setFormatter(formatter)
            log.addHandler(handler)
        log.setLevel(logging.INFO)
        self._handlers = handlers
        # Library warnings (deprecations) go to the log file only, and dataset progress bars nowhere:
        # the person watching the run sees one line per step.
        self._warnings_file = logging.FileHandler(log_file)
        self._warnings_file.setFormatter(formatter)
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").addHandler(self._warnings_file)
        logging.getLogger("py.warnings").propagate = False
        try:
            from datasets.utils.logging import disable_progress_bar

            disable_progress_bar()
        except ImportError:  # pragma: no cover - datasets comes with TRL
            pass

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        for handler in self._handlers:
            log.removeHandler(handler)
            handler.close()
        logging.getLogger("py.warnings").removeHandler(self._warnings_file)
        self._warnings_file.close()
        logging.captureWarnings(False)

    def info(self, message: str) -> None:
        log.info(message)
        if self.pipes is not None:
            self.pipes.log.info(message)

    def materialized(self, metadata: dict[str, Any]) -> None:
        if self.pipes is not None:
            self.pipes.report_asset_materialization(metadata=metadata)
