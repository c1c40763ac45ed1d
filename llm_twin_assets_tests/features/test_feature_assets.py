"""cleaned_documents -> chunks -> chunk_embeddings through Dagster on the real store, then search."""

import json
import os
import subprocess

import dagster as dg
import pytest

from llm_twin_assets.defs.features.definitions import FEATURE_ASSETS, FEATURE_CHECKS
from llm_twin_assets.defs.resources import ModelsResource, StoreResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.retrieval import Retriever
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.store.helpers import add_author, raw_row, upsert_raw
from llm_twin_assets_tests.test_cli import LLM_TWIN

PLANTED = {
    "sourdough": "My sourdough starter is called Gerald. I feed him rye flour every morning at seven, and the "
    "loaves come out with a dark, blistered crust that crackles when it cools on the rack.",
    "hnsw": "An HNSW index is a layered graph: a search starts at the top layer, greedily walks towards the "
    "query, and descends layer by layer until it reaches the dense bottom where neighbours live.",
    "retries": "When the server answers 429, my client waits exactly as long as the Retry-After header says, "
    "then tries again, and gives up after three attempts with a message naming the URL.",
    "marathon": "At kilometre thirty-two of the Berlin marathon my legs turned to concrete, and I walked for "
    "the first time in ten years of running, which taught me more about pacing than any plan.",
}
FILLER = "\n\n".join(
    f"Paragraph {i}. Data pipelines should be boring, measured and safe to run twice, and I keep writing "
    f"about that because people keep building them the other way round."
    for i in range(12)
)
ASSETS = [*FEATURE_ASSETS, *FEATURE_CHECKS]


def seed(db: Database, author: str, docs: dict[str, str]) -> None:
    with db.connect() as conn:
        add_author(conn, author)
        upsert_raw(
            conn,
            [
                raw_row(author, f"https://{author}.example/{name}", text, kind="article")
                for name, text in docs.items()
            ],
        )


def run(author: str) -> dg.ExecuteInProcessResult:
    return materialize_for_author(
        ASSETS, author, {"store": StoreResource(), "models": ModelsResource(device="cpu")}
    )


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def chunk_state(db: Database, author: str) -> dict[str, tuple[str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT id, document_id, xmin::text FROM chunks WHERE author = %s", (author,)
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture
def seeded(db: Database) -> Database:
    seed(db, "maya", {**PLANTED, "filler": FILLER})
    seed(
        db,
        "sam",
        {
            "sam-bread": "Sam also bakes: focaccia with rosemary, dimpled with oily fingers, "
            "baked hot and fast until the bottom is crisp and golden brown."
        },
    )
    return db


def test_materialize_twice_then_change_one_document(seeded: Database) -> None:
    db = seeded
    first = run("maya")
    assert first.success
    assert all(c.passed for c in first.get_asset_check_evaluations())
    assert meta(first, "cleaned_documents")["written"] == 5
    made = meta(first, "chunks")
    assert made["chunks"] == made["new"] and made["max_tokens_seen"] <= 256  # type: ignore[operator]
    assert str(made["tokens_per_chunk"]).startswith("![Tokens per chunk](data:image/png;base64,")
    embedded = meta(first, "chunk_embeddings")
    assert embedded["embedded"] == made["chunks"] and embedded["model"] == "bundled:all-MiniLM-L6-v2"
    assert embedded["token_ids_reused"] == made["chunks"]  # the chunker's ids: nothing tokenized twice
    with db.connect() as conn:
        stored = conn.execute(
            "SELECT count(*) FROM chunks WHERE author = 'maya' AND token_ids IS NOT NULL AND tokenizer IS NOT NULL"
        ).fetchone()
    assert stored == (made["chunks"],)
    before = chunk_state(db, "maya")

    second = run("maya")  # nothing changed: nothing is written
    assert (
        meta(second, "cleaned_documents")["written"],
        meta(second, "chunks")["chunks_made"],
        meta(second, "chunk_embeddings")["embedded"],
    ) == (0, 0, 0)
    assert chunk_state(db, "maya") == before

    with db.connect() as conn:  # one document changes
        upsert_raw(
            conn, [raw_row("maya", "https://maya.example/retries", PLANTED["retries"] + " Then I log it.")]
        )
    third = run("maya")
    assert meta(third, "cleaned_documents")["written"] == 1
    assert meta(third, "chunks")["rechunked_documents"] == 1
    after = chunk_state(db, "maya")
    replaced = set(before) - set(after)
    new = set(after) - set(before)
    assert len(replaced) == 1 and len(new) == 1  # exactly that document's chunk
    assert meta(third, "chunk_embeddings")["embedded"] == 1
    untouched = set(before) & set(after)
    assert all(before[c] == after[c] for c in untouched)  # same rows, same transaction ids


@pytest.mark.parametrize(
    ("query", "planted"),
    [
        ("how do I keep my bread starter alive?", "sourdough"),
        ("layered graph for approximate nearest neighbour search", "hnsw"),
        ("what to do when a server says too many requests", "retries"),
        ("hitting the wall late in a long race", "marathon"),
    ],
)
def test_search_finds_the_planted_chunk_first(seeded: Database, embedder, query: str, planted: str) -> None:  # type: ignore[no-untyped-def]
    assert run("maya").success
    hits = Retriever(seeded, embedder).search(query, author="maya", k=5)
    assert hits[0].document_url == f"https://maya.example/{planted}"
    assert hits[0].score > hits[1].score and len(hits) == 5


def test_the_author_filter_never_leaks(seeded: Database, embedder) -> None:  # type: ignore[no-untyped-def]
    assert run("maya").success and run("sam").success
    retriever = Retriever(seeded, embedder)
    assert {h.author for h in retriever.search("baking bread with a crisp crust", author="maya", k=50)} == {
        "maya"
    }
    sam = retriever.search("baking bread with a crisp crust", author="sam", k=50)
    assert [h.author for h in sam] == ["sam"]  # k results exist only as far as the author has chunks
    both = retriever.search("baking bread with a crisp crust", k=10)
    assert {h.author for h in both} == {"maya", "sam"}  # unfiltered: everyone's chunks


def test_an_embedding_model_of_another_dimension_refuses_and_writes_nothing(
    seeded: Database, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    assert run("maya").success
    before = chunk_state(seeded, "maya")
    monkeypatch.setenv("LLM_TWIN_EMBEDDING_DIM", "768")
    result = run("maya")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    # Refused when the store is opened, before anything is read or written: the setting and both sizes.
    assert "LLM_TWIN_EMBEDDING_DIM: is 768" in message and "of 384 dimensions" in message
    assert chunk_state(seeded, "maya") == before


@pytest.mark.slow
def test_search_from_the_command_line_as_json(seeded: Database) -> None:
    assert run("maya").success
    env = {**os.environ}
    out = subprocess.run(
        [LLM_TWIN, "search", "bread starter fed with rye", "--author", "maya", "--k", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert len(hits) == 2
    assert {
        "chunk_id",
        "document_url",
        "title",
        "heading_path",
        "author",
        "score",
        "similarity",
        "text",
    } <= set(hits[0])
    assert hits[0]["document_url"] == "https://maya.example/sourdough"
    nobody = subprocess.run(
        [LLM_TWIN, "search", "bread", "--author", "nobody"], capture_output=True, text=True, env=env
    )
    assert nobody.returncode == 2 and "Traceback" not in nobody.stderr
    assert (
        nobody.stderr.startswith("error: unknown author 'nobody': the store has ") and "maya" in nobody.stderr
    )
    kind = subprocess.run(
        [LLM_TWIN, "search", "bread", "--author", "maya", "--kind", "tweet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert kind.returncode == 2 and "unknown kind(s) tweet: use article, post, repository" in kind.stderr
