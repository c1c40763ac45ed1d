"""Passages (whole paragraphs, clean ends, spans of the author's text) and document-level splits."""

import random
import re

import pytest

from llm_twin_assets.datasets.passages import Document, PassageOptions, passages_of, spread, trim_prose
from llm_twin_assets.datasets.splits import split_documents
from llm_twin_assets_tests.features import hostile

PARAGRAPH = "Retries are a promise you make to a flaky network. Keep the promise small and bounded. "


@pytest.mark.parametrize(
    ("text", "ends_paragraph", "expected"),
    [
        ("First sentence. Second one stops in the", False, "First sentence."),
        ("A post that ends without a stop", True, "A post that ends without a stop"),
        ("no sentence end and cut", False, None),
        ("— and a dash first. Then more.", True, "and a dash first. Then more."),
        ("Done! 🎉", True, "Done! 🎉"),
        ("   ", True, None),
        ('He said "stop." Then (we le', False, 'He said "stop."'),
        ("Then (we left.) Done and", False, "Then (we left.)"),
        (
            "She said, \"He told me 'no.' Then left.\" OK and",
            False,
            "She said, \"He told me 'no.' Then left.\"",
        ),
        ("「好。」然后我们", False, "「好。」"),
        ("Dr. Smith came. Mr. Jones", False, "Dr. Smith came."),
        ("¿Qué pasa? Nada.", True, "¿Qué pasa? Nada."),
        (", and then: it ended.", True, "and then: it ended."),
        ("... and so on. .NET came later.", True, "and so on. .NET came later."),
    ],
)
def test_trim_prose(text: str, ends_paragraph: bool, expected: str | None) -> None:
    assert trim_prose(text, ends_paragraph=ends_paragraph) == expected


def test_prose_passages_are_whole_paragraphs_within_the_budget_without_overlap() -> None:
    paragraphs = [f"Paragraph {i}. " + PARAGRAPH * 3 for i in range(8)]
    doc = Document("d1", "https://x.example/a", "article", "Retries", "\n\n".join(paragraphs))
    passages, dropped = passages_of(doc, PassageOptions(window_words=80, max_words=200, min_words=12))
    assert dropped == 0
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    joined = "\n\n".join(p.text for p in passages)
    assert joined == "\n\n".join(p.strip() for p in paragraphs)  # each paragraph once, in order
    assert all(p.words <= 200 for p in passages) and len(passages) > 1


PARAGRAPH_END = re.compile(r"[ \t\r]*(?:$|\n[ \t\r]*(?:\n|$)|\n(?:[-*+•]|\d+[.)]) )")
ISSUE = 'He said "stop." Then (we left.) Done.'


def test_the_issue_example_keeps_its_quote_and_parenthesis_in_passages() -> None:
    content = " ".join([ISSUE] * 40)  # one long paragraph: passages must be cut at sentence ends
    doc = Document("d9", "u", "article", "", content)
    passages, _ = passages_of(doc, PassageOptions(window_words=20, max_words=30, min_words=3))
    assert len(passages) > 5
    for p in passages:
        assert content[p.start : p.end] == p.text and hostile.balanced(p.text)
        assert p.text.endswith(('"stop."', "(we left.)", "Done.")), p.text
        assert p.text.startswith(("He said", "Then", "Done"))
    assert " ".join(p.text for p in passages) == content  # no overlap, nothing dropped, nothing rewritten


@pytest.mark.parametrize("kind", ["article", "post", "repository"])
def test_passages_of_hostile_text_are_spans_that_end_cleanly(kind: str) -> None:
    options = PassageOptions(window_words=30, max_words=60, min_words=3)
    for seed in range(150):
        content = hostile.document(random.Random(seed))
        passages, _ = passages_of(Document("d", "u", kind, "", content), options)
        previous_end = 0
        for p in passages:
            assert content[p.start : p.end] == p.text and p.start >= previous_end  # spans, in order
            previous_end = p.end
            assert p.words <= options.max_words and not p.text.startswith("\u241e")
            if kind != "repository":
                # the end of a paragraph or of a list item, or a sentence end with its closing marks
                paragraph_end = PARAGRAPH_END.match(content, p.end) is not None
                sentence_end = p.text.rstrip(hostile.CLOSERS)[-1] in ".!?…。！？؟"
                assert paragraph_end or sentence_end, (seed, p.text[-30:])


def test_passages_of_balanced_sentences_are_balanced() -> None:
    for seed in range(150):
        content = hostile.balanced_document(random.Random(seed))
        passages, _ = passages_of(
            Document("d", "u", "article", "", content),
            PassageOptions(window_words=25, max_words=40, min_words=3),
        )
        assert all(hostile.balanced(p.text) for p in passages), seed


def test_short_windows_are_dropped_and_counted() -> None:
    doc = Document("d2", "u", "post", "", "Too short.")
    passages, dropped = passages_of(doc, PassageOptions(min_words=12))
    assert passages == [] and dropped == 1


def test_code_is_cut_at_definitions_and_kept_as_code() -> None:
    code = "␞ src/a.py\n" + "\n\n".join(
        f"def f{i}(x):\n    # step {i}\n    total = x + {i}\n    return total * {i} if total else None"
        for i in range(40)
    )
    doc = Document("d3", "u", "repository", "tinyvec", code)
    passages, _ = passages_of(doc, PassageOptions(window_words=60, max_words=120))
    assert len(passages) > 1
    # each passage is the author's code, from a definition on: the crawler's path line is left out
    assert all(p.text.startswith("def f") and code[p.start : p.end] == p.text for p in passages)
    assert passages[0].text.startswith("def f0(x):")
    assert "    total = x + 3" in "\n".join(p.text for p in passages)  # indentation kept


def test_spread_takes_passages_round_robin_over_documents() -> None:
    docs = [Document(f"d{i}", "u", "article", "", (PARAGRAPH * 2 + "\n\n") * 6) for i in range(3)]
    passages = [p for d in docs for p in passages_of(d, PassageOptions(window_words=20))[0]]
    picked = spread(passages, 6)
    assert len(picked) == 6 and {p.document_id for p in picked} == {"d0", "d1", "d2"}
    assert spread(passages, None) == passages


@pytest.mark.parametrize(
    ("n_docs", "ratio", "n_test"),
    [(1, 0.2, 0), (2, 0.1, 1), (10, 0.2, 2), (13, 0.1, 1), (5, 0.0, 0), (3, 0.9, 2)],
)
def test_split_by_document(n_docs: int, ratio: float, n_test: int) -> None:
    ids = [f"doc-{i}" for i in range(n_docs)]
    split = split_documents(ids, ratio, seed=7)
    assert sorted(split) == sorted(ids)
    assert sum(v == "test" for v in split.values()) == n_test
    assert split_documents(list(reversed(ids)), ratio, seed=7) == split  # order does not matter


def test_split_changes_with_the_seed_and_rejects_bad_ratios() -> None:
    ids = [f"doc-{i}" for i in range(40)]
    assert split_documents(ids, 0.25, seed=1) != split_documents(ids, 0.25, seed=2)
    with pytest.raises(ValueError, match="test_ratio"):
        split_documents(ids, 1.0, seed=1)


def test_the_general_mix_reads_parquet_or_jsonl_and_names_bad_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    from llm_twin_assets.datasets.building import INSTRUCT_SCHEMA, read_general_mix
    from llm_twin_assets.errors import TwinError

    rows = pl.DataFrame(
        {"prompt": [f"Q{i}?" for i in range(10)] + [""], "response": [f"A{i}." for i in range(10)] + ["x"]}
    )
    rows.write_ndjson(tmp_path / "mix.jsonl")
    rows.write_parquet(tmp_path / "mix.parquet")
    for name in ("mix.jsonl", "mix.parquet"):
        mix = read_general_mix(tmp_path / name, rows=4, seed=1)
        assert mix.schema == pl.Schema(INSTRUCT_SCHEMA) and mix.height == 4
        assert set(mix["source"]) == {"general"} and mix["document_id"].str.starts_with("general:").all()
    assert read_general_mix(tmp_path / "mix.jsonl", rows=4, seed=1).equals(
        read_general_mix(tmp_path / "mix.jsonl", rows=4, seed=1)
    )
    assert (
        read_general_mix(tmp_path / "mix.jsonl", rows=100, seed=1).height == 10
    )  # the blank question is dropped
    pl.DataFrame({"text": ["x"]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(TwinError, match=r"bad.parquet: needs columns instruction\+answer"):
        read_general_mix(tmp_path / "bad.parquet", rows=4, seed=1)
    with pytest.raises(TwinError, match="no such file"):
        read_general_mix(tmp_path / "missing.jsonl", rows=4, seed=1)
