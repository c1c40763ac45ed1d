"""An optional LLM judge (off by default): accuracy and style on a 1-3 scale, with a one-line reason.

The judge is any teacher backend (a local model or an OpenAI-compatible endpoint). It sees the
instruction, the author's real answer and a model's answer, and replies with JSON. A reply that cannot
be read is counted, not guessed; a judge that fails (unreachable, or no readable verdict at all) fails
the evaluation with a message naming it, so no release rests on half a judgement.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_twin_assets.evaluation import EvaluationError

if TYPE_CHECKING:
    from llm_twin_assets.datasets.teachers import Teacher
    from llm_twin_assets.evaluation.job import JudgeSettings

PROMPT = """You judge whether an answer was written by a particular author.

Instruction given to the author:
<instruction>
{instruction}
</instruction>

The author's own answer:
<reference>
{reference}
</reference>

The answer to judge:
<candidate>
{candidate}
</candidate>

Rate the answer to judge on two scales from 1 to 3.
accuracy: 1 = wrong or off-topic, 2 = partly right, 3 = says what the author says.
style: 1 = nothing like the author's voice, 2 = somewhat like it, 3 = reads as the author.
Reply with JSON only: {{"accuracy": <1-3>, "style": <1-3>, "reason": "<one line>"}}"""


@dataclass(frozen=True)
class Verdict:
    accuracy: int | None
    style: int | None
    reason: str


def parse_verdict(text: str) -> Verdict:
    """The judge's JSON reply (the first object in the text); scores outside 1-3 count as unreadable."""
    match = re.search(r"\{.*?\}", text, re.DOTALL)
    data: dict[str, object] = {}
    if match:
        try:
            loaded = json.loads(match.group(0))
            data = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            data = {}

    def score(name: str) -> int | None:
        value = data.get(name)
        return value if isinstance(value, int) and 1 <= value <= 3 else None

    return Verdict(score("accuracy"), score("style"), str(data.get("reason", "")).strip()[:200])


def judge_teacher(settings: JudgeSettings) -> Teacher:
    from llm_twin_assets.datasets.teachers import teacher_from_settings
    from llm_twin_assets.settings import get_settings

    return teacher_from_settings(
        get_settings(
            teacher_backend=settings.backend,
            teacher_model=settings.model or None,
            teacher_base_url=settings.base_url,
            teacher_api_key_env=settings.api_key_env,
        )
    )


def judge(
    teacher: Teacher,
    settings: JudgeSettings,
    instructions: list[str],
    references: list[str],
    candidates: list[str],
) -> list[Verdict]:
    from llm_twin_assets.datasets.teachers import TeacherError

    conversations = [
        [{"role": "user", "content": PROMPT.format(instruction=i, reference=r, candidate=c)}]
        for i, r, c in zip(instructions, references, candidates, strict=True)
    ]
    try:
        replies = teacher.complete(conversations, max_new_tokens=settings.max_new_tokens)
    except TeacherError as exc:
        raise EvaluationError(f"the judge ({teacher.label}) failed: {exc}") from exc
    verdicts = [parse_verdict(r.text) for r in replies]
    if verdicts and all(v.accuracy is None and v.style is None for v in verdicts):
        raise EvaluationError(
            f"the judge ({teacher.label}) gave no readable verdict in {len(verdicts)} replies "
            f"(expected JSON with accuracy and style from 1 to 3); first reply: {replies[0].text[:120]!r}"
        )
    return verdicts
