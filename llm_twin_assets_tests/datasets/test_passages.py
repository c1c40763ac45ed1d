"""Passages (whole paragraphs, clean ends) and document-level splits."""

import pytest

from llm_twin_assets.datasets.passages import Document, PassageOptions, passages_of, spread, trim_prose
from llm_twin_assets.datasets.splits import split_documents

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
    # each passage names its file, then starts at a definition
    assert all(p.text.startswith("src/a.py\ndef ") for p in passages)
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
