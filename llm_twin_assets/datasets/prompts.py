"""Every prompt the dataset builders send, in one place, rendered strictly.

Rendering fails loudly when a placeholder has no value, a value has no placeholder, or a value is
blank: the reference implementation shipped a template that silently dropped the passage, and every
"instruction" it produced was written without seeing the text it was meant to fit.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from llm_twin_assets.kinds import document_kind

Message = dict[str, str]


PROMPT_VERSION = "2"
"""Part of every cached teacher reply's key: bump it when a template or the way replies are used
changes, so no cached reply written for the old prompts is reused."""


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    """A system message, a user message, and worked examples (earlier turns rendered with the same user
    message) that show a small model the exact shape of the reply wanted."""

    name: str
    system: str
    user: str
    shots: tuple[tuple[dict[str, str], str], ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        found = set()
        for text in (self.system, self.user):
            for _, field, _, _ in string.Formatter().parse(text):
                if field is not None:
                    if not field.isidentifier():
                        raise TemplateError(
                            f"template {self.name}: placeholder {{{field}}} is not a plain name"
                        )
                    found.add(field)
        return frozenset(found)

    def render(self, **values: object) -> list[Message]:
        """The chat messages with every placeholder filled; values are inserted verbatim."""
        missing = self.fields - values.keys()
        unused = values.keys() - self.fields
        if missing or unused:
            raise TemplateError(
                f"template {self.name}: missing {sorted(missing) or 'nothing'}, unused {sorted(unused) or 'nothing'}"
            )
        blank = sorted(k for k, v in values.items() if not str(v).strip())
        if blank:
            raise TemplateError(f"template {self.name}: blank value for {blank}")
        text = {k: str(v) for k, v in values.items()}
        messages = [{"role": "system", "content": self.system.format(**text)}] if self.system else []
        for shot, reply in self.shots:
            messages += [
                {"role": "user", "content": self.user.format(**{**text, **shot})},
                {"role": "assistant", "content": reply},
            ]
        messages.append({"role": "user", "content": self.user.format(**text)})
        return messages


_WRITE_INSTRUCTION = (
    "You are given a passage someone wrote. You write the instruction that the passage answers: the "
    "request a reader could give a writer so that this passage is exactly the reply. Reply with the "
    "instruction only, as a direct request (Write..., Explain..., Describe...), never a summary."
)

INSTRUCTION_FOR_PROSE = PromptTemplate(
    name="instruction_for_prose",
    system=_WRITE_INSTRUCTION,
    user=(
        'Passage by {author}, from "{title}":\n<passage>\n{passage}\n</passage>\n'
        "The instruction (at most {max_words} words) that this passage answers:"
    ),
    shots=(
        (
            {
                "author": "a blogger",
                "title": "Moving house, again",
                "passage": "We moved for the third time in four years last week. I used to think packing was "
                "the hard part. It isn't: the hard part is deciding what is worth carrying. This time I left "
                "the bread machine behind, and nobody has missed it.",
            },
            "Write a short personal post about moving house often and learning what is worth keeping.",
        ),
        (
            {
                "author": "an engineer",
                "title": "Why our builds got faster",
                "passage": "Most of our build time was not compiling at all. It was downloading the same "
                "dependencies on every run. A shared cache cut the median build from eleven minutes to three, "
                "and the flaky network failures went away with it.",
            },
            "Explain, from experience, why a team's builds were slow and how caching dependencies fixed them.",
        ),
    ),
)

INSTRUCTION_FOR_CODE = PromptTemplate(
    name="instruction_for_code",
    system=_WRITE_INSTRUCTION,
    user=(
        'Code by {author}, from "{title}":\n<code>\n{passage}\n</code>\n'
        "The instruction (at most {max_words} words) that this code answers:"
    ),
    shots=(
        (
            {
                "author": "a developer",
                "title": "textkit",
                "passage": 'def slugify(title: str) -> str:\n    words = re.findall(r"[a-z0-9]+", title.lower())\n'
                '    return "-".join(words)',
            },
            "Write a Python function that turns a title into a URL slug of lowercase words joined by hyphens.",
        ),
    ),
)

INSTRUCTION_TEMPLATES = {"prose": INSTRUCTION_FOR_PROSE, "code": INSTRUCTION_FOR_CODE}
"""The instruction prompt of each family of kinds (``llm_twin_assets.kinds``)."""


def instruction_prompt(kind: str, *, author: str, title: str, passage: str, max_words: int) -> list[Message]:
    return INSTRUCTION_TEMPLATES[document_kind(kind).family].render(
        author=author, title=title, passage=passage, max_words=max_words
    )


def answer_prompt(instruction: str, words: int | None = None) -> list[Message]:
    """What the base model is asked when it writes the rejected answer: the instruction, as users ask it,
    with a length hint of about ``words`` (the author's answer's length, rounded) when given. Without it
    the bundled 135M model writes a blog post per request and almost never stops (8 of 8 still writing at
    512 tokens; with the hint 6 of 8 finished within 320): the pair would differ by length and by being
    cut off, not by voice."""
    if words is None:
        return [{"role": "user", "content": instruction}]
    about = max(20, round(words, -1))
    return [
        {
            "role": "user",
            "content": f"{instruction} Answer in one or two short paragraphs (about {about} words).",
        }
    ]


# Small local teachers (the bundled 135M model) cannot write instructions: asked to, they describe the
# passage ("The passage is a great example of...") or parrot the worked example. Asked for the topic,
# they answer well ("The main topic of this text is the importance of measuring first and scaling
# second."). In the "topic" style the teacher names the topic and the instruction is framed from it.
TOPIC = PromptTemplate(
    name="topic",
    system="",
    user="{passage}\n\nWhat is the main topic of this text? Answer with a short phrase.",
)


def frame_instruction(kind: str, topic: str, title: str, pick: int) -> str:
    """The instruction for a topic; ``pick`` (a stable number per passage) varies the wording."""
    frames = document_kind(kind).frames
    return frames[pick % len(frames)].format(topic=topic, title=title)
