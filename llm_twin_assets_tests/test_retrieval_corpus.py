"""The retrieval benchmark's labels hold: every document loads unchanged, every question names one
document and quotes the passage that answers it, and no question copies its document."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bench.retrieval_corpus import CorpusDocument, CorpusError, _Spec, corpus

QUESTIONS = Path(__file__).resolve().parents[1] / "bench" / "retrieval_questions.yaml"
COPY_RUN = 6  # a question may share no run of this many words with its document


def _spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _runs(text: str, n: int = COPY_RUN) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@pytest.fixture(scope="module")
def documents() -> dict[str, CorpusDocument]:
    return {document.id: document for document in corpus()}  # raises when a text or hash differs


@pytest.fixture(scope="module")
def questions() -> list[dict[str, object]]:
    loaded = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    assert isinstance(loaded, list)
    return loaded


def test_every_document_loads_from_its_package_with_the_recorded_hash(
    documents: dict[str, CorpusDocument],
) -> None:
    assert 15 <= len(documents) <= 25
    total = sum(len(document.text.encode("utf-8")) for document in documents.values())
    assert 150_000 <= total <= 450_000
    for document in documents.values():
        assert document.title and len(document.text) > 5_000
        assert "==" in document.source and "METADATA" in document.source
        assert re.search(r"(?m)^#{1,3} \S", document.text), f"{document.id} has no Markdown heading"


def test_a_changed_text_is_an_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.retrieval_corpus as module

    spec = module._SPECS[0]
    monkeypatch.setattr(module, "_SPECS", (_Spec(spec.id, spec.title, spec.package, "0.0.1", "0" * 64),))
    with pytest.raises(
        CorpusError, match=rf"differs from {re.escape(spec.package)}==0\.0\.1, the version the questions"
    ):
        module.corpus()
    monkeypatch.setattr(module, "_SPECS", (_Spec("gone", "Gone", "no-such-package-xyz", "1.0", "0" * 64),))
    with pytest.raises(CorpusError, match="no-such-package-xyz"):
        module.corpus()


def test_questions_are_well_formed_and_cover_every_document(
    documents: dict[str, CorpusDocument], questions: list[dict[str, object]]
) -> None:
    assert len(questions) >= 60
    for question in questions:
        assert set(question) == {"question", "document", "answer", "literal"}, question
        assert isinstance(question["question"], str) and question["question"].strip()
        assert isinstance(question["answer"], str) and isinstance(question["literal"], bool)
        assert question["document"] in documents, question
    assert len({q["question"] for q in questions}) == len(questions), "a question is repeated"
    per_document = Counter(q["document"] for q in questions)
    assert {d: per_document[d] for d in documents if per_document[d] < 2} == {}
    assert sum(1 for q in questions if q["literal"]) >= 10


def test_every_answer_is_a_short_verbatim_quote_of_its_document_only(
    documents: dict[str, CorpusDocument], questions: list[dict[str, object]]
) -> None:
    texts = {d.id: _spaces(d.text) for d in documents.values()}
    for question in questions:
        answer, home = _spaces(str(question["answer"])), str(question["document"])
        assert 5 <= len(answer.split()) <= 25, answer
        assert texts[home].count(answer) == 1, f"not exactly once in {home}: {answer!r}"
        elsewhere = [d for d, text in texts.items() if d != home and answer in text]
        assert not elsewhere, f"also in {elsewhere}: {answer!r}"
        # quoted from prose that the project's cleaning keeps as it is (no links, bold marks, URLs)
        assert not re.search(r"\]\(|\*\*|https?://", answer), answer


def test_no_question_copies_its_document(
    documents: dict[str, CorpusDocument], questions: list[dict[str, object]]
) -> None:
    runs = {d.id: _runs(d.text) for d in documents.values()}
    copied = {
        str(q["question"]): sorted(" ".join(r) for r in _runs(str(q["question"])) & runs[str(q["document"])])
        for q in questions
    }
    assert {q: r for q, r in copied.items() if r} == {}


# --- the list layout: answers are single items, questions paraphrase them ---------------------------

LIST_QUESTIONS = QUESTIONS.with_name("retrieval_list_questions.yaml")
MAX_ITEM_WORDS_IN_QUESTION = 0.30
_STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it"
    " its may more most my no not now of on or our so than that the their them then there these they this"
    " to too was we were what when where which while who why will with would you your yet all any also"
    " its per via".replace(" ", "\n").splitlines()
)


def content_words(text: str) -> set[str]:
    """The words that carry meaning, crudely stemmed (a plural's s dropped, then the first five letters):
    no stop words, numbers, @user or #123 references."""
    text = re.sub(r"[@#][\w-]+", " ", text.lower())
    words = (w.removesuffix("s") for w in re.findall(r"[a-z0-9]+", text))
    return {w[:5] for w in words if len(w) >= 3 and not w.isdigit() and w not in _STOP}


@pytest.fixture(scope="module")
def list_pages() -> dict[str, str]:
    from bench.retrieval_corpus import list_pages

    return list_pages()


@pytest.fixture(scope="module")
def list_questions() -> list[dict[str, object]]:
    loaded = yaml.safe_load(LIST_QUESTIONS.read_text(encoding="utf-8"))
    assert isinstance(loaded, list)
    return loaded


def _items(page: str) -> list[str]:
    return [line[2:] for line in page.splitlines() if line.startswith("- ")]


def test_list_pages_are_long_lists_of_one_line_items(list_pages: dict[str, str]) -> None:
    from bench.retrieval_corpus import LIST_ITEMS_PER_PAGE, LIST_SOURCES

    assert 20 <= len(list_pages) <= 60
    full = [p for p in list_pages.values() if len(_items(p)) == LIST_ITEMS_PER_PAGE]
    assert len(full) >= 0.8 * len(list_pages)
    for name, page in list_pages.items():
        assert any(name.startswith(f"{source}-list-") for source in LIST_SOURCES), name
        lines = [line for line in page.splitlines() if line.strip()]
        assert lines[0].startswith("# ") and lines[1] == "## Changes", name
        assert len(_items(page)) == len(lines) - 2, f"{name}: a line that is not an item"


def test_list_questions_paraphrase_the_one_item_that_answers_them(
    list_pages: dict[str, str], list_questions: list[dict[str, object]]
) -> None:
    assert len(list_questions) >= 30
    assert len({q["question"] for q in list_questions}) == len(list_questions)
    overlaps = {}
    for question in list_questions:
        assert set(question) == {"question", "document", "answer", "literal"}, question
        answer, asked = str(question["answer"]), str(question["question"])
        found = [(name, item) for name, page in list_pages.items() for item in _items(page) if answer in item]
        assert len(found) == 1, f"{answer!r} is in {len(found)} items, not one"
        name, item = found[0]
        assert name.startswith(f"{question['document']}-list-"), (name, question)
        assert len(answer) >= 0.5 * len(re.sub(r"\s*(by \[@|\(#|\(Pull #|\(PR #|\[#).*$", "", item))
        words = content_words(item)
        shared = words & content_words(asked)
        overlaps[asked] = len(shared) / len(words)
        assert overlaps[asked] <= MAX_ITEM_WORDS_IN_QUESTION, (asked, item, sorted(shared))
        assert not _runs(asked, 4) & _runs(item, 4), (asked, item)  # not even four words in a row
    assert sum(overlaps.values()) / len(overlaps) <= 0.15  # on average far fewer


def test_word_overlap_measure() -> None:
    assert content_words("Fix the tests for #123 by @someone (PR #4)") == {"fix", "test"}
    assert content_words("Sockets closed") == content_words("socket closed")
