"""The instruct dataset's corpus for continued pre-training: every passage of the documents outside the test
split (those the teacher gave no usable instruction included), versioned with the dataset."""

from pathlib import Path

import polars as pl
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.datasets.building import InstructOptions, build_instruct
from llm_twin_assets.datasets.passages import Passage
from llm_twin_assets.datasets.versions import get_version, publish, read_extra
from llm_twin_assets.llm import Reply


class TopicTeacher:
    """Names each passage's topic (its last word), except for passages that say "skip": a reply that
    repeats itself, which the dataset drops."""

    label = "scripted"

    def complete(self, conversations, *, max_new_tokens, progress=None):  # type: ignore[no-untyped-def]
        replies = []
        for messages in conversations:
            text = messages[-1]["content"]
            word = text.split("\n\n")[0].split()[-1].strip(".")
            bad = "skip" in text
            replies.append(Reply("loop loop loop loop loop loop" if bad else f"the craft of {word}", True))
        return replies


def passages() -> list[Passage]:
    out = []
    for d in range(10):
        for k in range(3):
            note = " skip" if d == 1 else ""  # no usable instruction for any of essay 1's passages
            text = f"Passage {k} of essay {d} is about my own habits and measuring{note} topic{d}x{k}."
            out.append(Passage(f"doc-{d}", f"https://a.example/{d}", "article", f"Essay {d}", k, text))
    return out


def test_the_corpus_holds_every_passage_outside_the_test_documents_dropped_ones_too() -> None:
    options = InstructOptions(style="topic", min_examples=5, test_ratio=0.3, max_passages=12)
    built = build_instruct("ada", "Ada", passages(), TopicTeacher(), options)  # type: ignore[arg-type]
    test_docs = set(built.splits["test"]["document_id"])
    train_docs = set(built.splits["train"]["document_id"])
    assert test_docs and train_docs and built.corpus is not None
    corpus_docs = set(built.corpus["document_id"])
    assert corpus_docs.isdisjoint(test_docs)  # never the text the twin is evaluated on
    assert set(built.dropped) == {"repeats_phrase"} and "doc-1" not in train_docs | test_docs
    assert corpus_docs == {f"doc-{d}" for d in range(10)} - test_docs  # doc-1, with no SFT row, too
    # every passage, not only the 12 the teacher was asked about
    assert built.corpus.height == 3 * len(corpus_docs)
    in_sft = set(built.splits["train"]["answer"])
    assert in_sft < set(built.corpus["text"])


def test_an_extra_table_travels_with_its_version_and_is_part_of_its_id(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    options = InstructOptions(style="topic", min_examples=5, test_ratio=0.3)
    built = build_instruct("ada", "Ada", passages(), TopicTeacher(), options)  # type: ignore[arg-type]
    assert built.corpus is not None
    plain, _ = publish(store, "ada", "instruct", built.splits, {})
    with_corpus, new = publish(store, "ada", "instruct", built.splits, {}, {"corpus": built.corpus})
    assert new and with_corpus.version != plain.version
    read = read_extra(store, get_version(store, "ada", "instruct", with_corpus.version), "corpus")
    assert read is not None and read.equals(built.corpus.sort("id"))
    assert read_extra(store, plain, "corpus") is None
    assert set(with_corpus.rows) == {"train", "test"}  # not a split: readers of splits never see it
    fewer, _ = publish(store, "ada", "instruct", built.splits, {}, {"corpus": built.corpus.head(3)})
    assert fewer.version != with_corpus.version
    with pytest.raises(ValueError, match="extra 'train' has the name of a split"):
        publish(store, "ada", "instruct", built.splits, {}, {"train": pl.DataFrame({"id": ["x"]})})
