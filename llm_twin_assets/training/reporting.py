"""Where a trainer's (or an evaluation's) progress goes: its log file, stderr, and Dagster Pipes when
launched by Dagster; and the entry point both processes share."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from llm_twin_assets.errors import TwinError

Job = TypeVar("Job")

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


def entry_point(
    prog: str,
    argv: list[str] | None,
    load_file: Callable[[Path], Job],
    load_extra: Callable[[Any], Job],
    log_file_of: Callable[[Job], Path],
    work: Callable[[Job, Any], object],
) -> int:
    """Run ``work`` on the job from ``--config`` (or, launched by Dagster Pipes, its extra 'job').

    Exit 0 when done; 2 for a problem named in one line (also in the log file and the run's log), which
    a retry cannot fix; a crash raises (its traceback goes to the log file)."""
    import argparse
    import traceback
    from contextlib import ExitStack

    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--config", type=Path, help="a job file (YAML); else the Pipes extra 'job'")
    args = parser.parse_args(argv)
    log_file: Path | None = None
    with ExitStack() as stack:
        # Launched by Dagster: one Pipes session for the whole run (an ECS task gets its job as an extra).
        pipes = (
            stack.enter_context(open_dagster_pipes())
            if os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR)
            else None
        )
        try:
            if args.config:
                job = load_file(args.config)
            elif pipes is not None:
                job = load_extra(pipes.get_extra("job"))
            else:
                raise _NoJob("no --config and not launched by Dagster Pipes: pass --config job.yaml")
            log_file = log_file_of(job)
            work(job, pipes)
        except TwinError as exc:
            _append(log_file, f"error: {exc}")
            print(f"error: {exc}", file=sys.stderr)
            if pipes is not None:
                pipes.log.error(str(exc))
            return 2
        except BaseException:
            _append(log_file, traceback.format_exc())
            raise
    return 0


def _append(log_file: Path | None, text: str) -> None:
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as f:
            f.write(text.rstrip() + "\n")


class _NoJob(TwinError):
    pass
