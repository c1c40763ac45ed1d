"""The quality gate: the twin must beat its base model on held-out text before it is released.

Every check is decided on the 95% bootstrap interval (over the held-out examples, paired across
models), never on a point estimate alone: a comparison passes only when its whole interval clears the
margin, so a handful of lucky examples cannot pass a twin. The checks, on the twin's answers without
retrieval:

- ``examples``: at least ``min_examples`` held-out examples (fewer cannot give intervals that decide);
- ``perplexity``: the twin's perplexity gain over the base (1 - twin/base) is at least
  ``perplexity_margin`` at the interval's lower end;
- ``author_likeness``: twin - base mean P(author) (the classifier of the author against the base model) is
  at least ``likeness_margin`` at the lower end, believed only when the classifier tells the voices apart
  (grouped cross-validated AUC >= ``min_classifier_auc``); a classifier that cannot is a failed gate;
- ``writer_likeness``: the same against other writers (does the twin sound like the author rather than
  anyone?), with the same margin and the same AUC rule;
- ``style_distance``: twin - base style distance at most ``-style_margin`` at the interval's upper end
  (the twin's style is not worse than the base's), and the twin's own distance to the author at most
  ``max_style_distance`` at its upper end;
- ``repetition``: twin - author repeated word 4-gram share at most ``max_repeat_excess`` at the upper end
  (a looping twin fails here);
- ``finished``: the twin's share of answers that end within the budget is at least ``min_finished`` at
  the interval's lower end;

and on the answer path the service takes by default (``twin+rag``: the author's passages retrieved into
the prompt), what a reader would see go wrong there:

- ``rag_style_vs_base``: twin+rag - base+rag style distance at most ``-style_margin`` (upper end);
- ``rag_repetition``: twin+rag - author repeated 4-gram share at most ``max_repeat_excess`` (upper end);
- ``rag_finished``: twin+rag's finished share at least ``min_finished`` (lower end).

It always decides: each failed check names its reason and the amount it missed by. Defaults (and how
they were chosen) in README.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CHECKS = (
    "examples",
    "perplexity",
    "author_likeness",
    "writer_likeness",
    "style_vs_base",
    "style_to_author",
    "repetition",
    "finished",
    "rag_style_vs_base",
    "rag_repetition",
    "rag_finished",
)
"""The checks, in the order they are made and shown."""


@dataclass(frozen=True)
class GateSettings:
    perplexity_margin: float = 0.05
    """The twin's held-out perplexity must be at least this share below the base model's (interval)."""
    likeness_margin: float = 0.05
    """The twin's mean P(author) must exceed the base model's by at least this much (absolute, interval);
    both against the base model's voice and against other writers."""
    min_classifier_auc: float = 0.75
    """Below this cross-validated AUC a classifier cannot tell the voices apart: likeness is not believed."""
    min_examples: int = 10
    """Fewer held-out examples fail the gate: their intervals are too wide (and unreliable) to decide."""
    style_margin: float = 0.0
    """The twin's style distance must be below the base model's by at least this much (upper end of the
    interval of twin - base; 0: the interval shows the twin is not worse)."""
    max_style_distance: float = 1.0
    """The twin's style distance to the author's held-out answers (Burrows' Delta: mean |z| difference of
    style features) at most this, at the interval's upper end."""
    max_repeat_excess: float = 0.05
    """The twin's repeated word 4-gram share may exceed the author's by at most this (upper end)."""
    min_finished: float = 0.7
    """The twin's share of answers that end within the budget, at least this at the interval's lower end."""


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: dict[str, dict[str, Any]]
    reasons: list[str] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.passed:
            return "passed: " + "; ".join(c["detail"] for c in self.checks.values())
        return "failed: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": self.checks,
            "reasons": self.reasons,
            "settings": self.settings,
        }


def _span(interval: list[float] | None, fmt: str = "{:.3f}") -> str:
    return (
        "no interval"
        if interval is None
        else f"95% CI [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"
    )


class _Checks:
    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}
        self.reasons: list[str] = []

    def fail(self, name: str, detail: str, **values: Any) -> None:
        self.checks[name] = {"passed": False, "detail": detail, **values}
        self.reasons.append(detail)

    def bound(
        self,
        name: str,
        what: str,
        value: float | None,
        interval: list[float] | None,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        fmt: str = "{:.3f}",
        **extra: Any,
    ) -> None:
        """Pass when the interval's unfavourable end clears the bound (lower end >= ``at_least``, upper
        end <= ``at_most``); a missing value or interval fails."""
        if value is None or interval is None:
            self.fail(
                name,
                f"{what} not measured ({'no value' if value is None else 'no interval'}): re-evaluate",
                value=value,
                interval=interval,
                missed_by=None,
                **extra,
            )
            return
        if at_least is not None:
            end, ok, missed, rule = interval[0], interval[0] >= at_least, at_least - interval[0], "lower end"
            needs = f"needs {rule} >= {fmt.format(at_least)}"
        else:
            assert at_most is not None
            end, ok, missed, rule = interval[1], interval[1] <= at_most, interval[1] - at_most, "upper end"
            needs = f"needs {rule} <= {fmt.format(at_most)}"
        detail = f"{what} {fmt.format(value)} ({_span(interval, fmt)}; {needs})"
        self.checks[name] = {
            "passed": ok,
            "value": value,
            "interval": interval,
            "required_at_least": at_least,
            "required_at_most": at_most,
            "decided_on": end,
            "missed_by": 0.0 if ok else float(missed),
            "detail": detail,
            **extra,
        }
        if not ok:
            self.reasons.append(f"{detail}: missed by {fmt.format(missed)}")


@dataclass(frozen=True)
class _Path:
    """An answer path the gate checks: the twin's and the base model's rows, the checks' name prefix and
    how its details begin."""

    twin: str
    base: str
    prefix: str
    says: str


PLAIN = _Path("twin", "base", "", "")
WITH_RETRIEVAL = _Path("twin+rag", "base+rag", "rag_", "with retrieval: ")


def decide(results: dict[str, Any], settings: GateSettings | None = None) -> GateDecision:
    """The gate's decision on an evaluation's results: every check of :data:`CHECKS`, in order."""
    settings = settings or GateSettings()
    c = _Checks()
    _examples(c, results, settings)
    _perplexity(c, results, settings)
    _likeness(c, results, settings)
    _style(c, results, settings, PLAIN)
    _repetition(c, results, settings, PLAIN)
    _finished(c, results, settings, PLAIN)
    _style(c, results, settings, WITH_RETRIEVAL)
    _repetition(c, results, settings, WITH_RETRIEVAL)
    _finished(c, results, settings, WITH_RETRIEVAL)
    return GateDecision(not c.reasons, c.checks, c.reasons, asdict(settings))


def _finished(c: _Checks, results: dict[str, Any], settings: GateSettings, path: _Path) -> None:
    twin = results["models"].get(path.twin, {})
    c.bound(
        f"{path.prefix}finished",
        f"{path.says}finished within the budget",
        twin.get("metrics", {}).get("finished"),
        twin.get("intervals", {}).get("finished"),
        at_least=settings.min_finished,
        fmt="{:.0%}",
    )


def _vs_base(results: dict[str, Any]) -> dict[str, Any]:
    return dict(results.get("differences", {}).get("twin-base", {}))


def _examples(c: _Checks, results: dict[str, Any], settings: GateSettings) -> None:
    examples = int(results.get("examples", 0))
    if examples < settings.min_examples:
        note = results.get("held_out", {}).get("note") or f"only {examples} held-out examples"
        c.fail(
            "examples",
            f"{note} (the gate needs {settings.min_examples}): short by {settings.min_examples - examples}",
            value=examples,
            required_at_least=settings.min_examples,
            missed_by=float(settings.min_examples - examples),
        )
        return
    c.checks["examples"] = {
        "passed": True,
        "value": examples,
        "required_at_least": settings.min_examples,
        "missed_by": 0.0,
        "detail": f"{examples} held-out examples (needs {settings.min_examples})",
    }


def _perplexity(c: _Checks, results: dict[str, Any], settings: GateSettings) -> None:
    b, t = results["models"]["base"]["metrics"], results["models"]["twin"]["metrics"]
    gain = _vs_base(results).get("perplexity_gain", {})
    c.bound(
        "perplexity",
        f"perplexity {t['perplexity']:.3f} vs base {b['perplexity']:.3f}: gain",
        gain.get("value"),
        gain.get("interval"),
        at_least=settings.perplexity_margin,
        fmt="{:+.1%}",
        twin=t["perplexity"],
        base=b["perplexity"],
    )


def _likeness(c: _Checks, results: dict[str, Any], settings: GateSettings) -> None:
    """Likeness against the base model's voice and against other writers: believed only when the
    classifier tells the voices apart."""
    b, t = results["models"]["base"]["metrics"], results["models"]["twin"]["metrics"]
    for name, classifier, label in (
        ("author_likeness", results.get("classifier", {}), "author-likeness (vs the base model's voice)"),
        ("writer_likeness", results.get("writer_classifier", {}), "author-likeness against other writers"),
    ):
        auc = classifier.get("held_out_auc")
        if auc is None or auc < settings.min_classifier_auc:
            shown = "not measurable" if auc is None else f"{auc:.3f}"
            why = f" ({classifier['note']})" if auc is None and classifier.get("note") else ""
            c.fail(
                name,
                f"{label} not believed: the classifier's cross-validated AUC is {shown}{why} "
                f"(needs {settings.min_classifier_auc}); build the datasets from more of the author's text",
                classifier_auc=auc,
                missed_by=None if auc is None else settings.min_classifier_auc - auc,
            )
            continue
        if name not in t:
            c.fail(name, f"{label} not measured: re-evaluate", classifier_auc=auc, missed_by=None)
            continue
        diff = _vs_base(results).get(name, {})
        c.bound(
            name,
            f"{label} {t[name]:.3f} vs base {b[name]:.3f} (AUC {auc:.3f}): twin - base",
            diff.get("value"),
            diff.get("interval"),
            at_least=settings.likeness_margin,
            twin=t[name],
            base=b[name],
            classifier_auc=auc,
        )


def _style(c: _Checks, results: dict[str, Any], settings: GateSettings, path: _Path) -> None:
    """Not worse than the base model's style (on the same path), and, without retrieval, close enough to
    the author's."""
    twin = results["models"].get(path.twin, {})
    b, t = results["models"].get(path.base, {}).get("metrics", {}), twin.get("metrics", {})
    style = results.get("differences", {}).get(f"{path.twin}-{path.base}", {}).get("style_distance", {})
    name = f"{path.prefix}style_vs_base"
    if b.get("style_distance") is None and t.get("style_distance") is not None:
        c.checks[name] = {
            "passed": True,
            "twin": t["style_distance"],
            "base": None,
            "missed_by": 0.0,
            "detail": f"{path.says}style vs base: the base model's answers have no words to measure; the twin's do",
        }
    else:
        c.bound(
            name,
            f"{path.says}style distance {_num(t.get('style_distance'))} vs base "
            f"{_num(b.get('style_distance'))}: twin - base",
            style.get("value"),
            style.get("interval"),
            at_most=0.0 - settings.style_margin if settings.style_margin else 0.0,
            twin=t.get("style_distance"),
            base=b.get("style_distance"),
        )
    if path is PLAIN:
        c.bound(
            "style_to_author",
            "style distance of the twin to the author",
            t.get("style_distance"),
            twin.get("intervals", {}).get("style_distance"),
            at_most=settings.max_style_distance,
        )


def _repetition(c: _Checks, results: dict[str, Any], settings: GateSettings, path: _Path) -> None:
    t = results["models"].get(path.twin, {}).get("metrics", {})
    author = results["models"].get("author", {}).get("metrics", {})
    repeats = results.get("differences", {}).get(f"{path.twin}-author", {}).get("repeated_4gram_share", {})
    c.bound(
        f"{path.prefix}repetition",
        f"{path.says}repeated 4-gram share {_num(t.get('repeated_4gram_share'), '{:.1%}')} vs the author's "
        f"{_num(author.get('repeated_4gram_share'), '{:.1%}')}: twin - author",
        repeats.get("value"),
        repeats.get("interval"),
        at_most=settings.max_repeat_excess,
        fmt="{:+.1%}",
        twin=t.get("repeated_4gram_share"),
        author=author.get("repeated_4gram_share"),
    )


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "—" if value is None else fmt.format(value)
