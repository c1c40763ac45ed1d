"""The one result type of a check in the libraries: passed or not, what it saw, and how serious a failure
is. The Dagster layer turns each into an asset check result (``defs/check_results.py``); a library never
imports Dagster to say whether something is right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    passed: bool
    metadata: dict[str, object] = field(default_factory=dict)
    """What the check saw: counts, examples, the version it judged; shown beside the result."""
    warn_only: bool = False
    """A failure is a warning, never an error (and so never blocks what follows)."""
    description: str | None = None
    """One line on the outcome, when the check has more to say than passed/failed."""


def from_rows(rows: Sequence[Sequence[object]], what: str, examples: int = 10, **seen: object) -> Verdict:
    """Passed when no row offends; ``what``: how many did, and the first column of the first ``examples``."""
    return Verdict(
        passed=not rows,
        metadata={what: len(rows), "examples": [str(r[0]) for r in rows[:examples]], **seen},
    )
