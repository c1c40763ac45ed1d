"""``retrieval.search`` on the real store with the bundled embedder: hybrid ranking, the diversity cap,
self-query, the filters in SQL, and bad input."""

from __future__ import annotations

import pytest

from llm_twin_assets.errors import TwinError
from llm_twin_assets.retrieval import Retriever, SearchOptions
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.features.test_feature_assets import run, seed
from llm_twin_assets_tests.store.helpers import seed_chunks, unit_vectors

CONFIGURATION = {
    f"config-{i}": f"Configuration option number {i} changes how the service starts: set it in the "
    f"settings file, restart, and check the log line that names the option {i}."
    for i in range(4)
}
PLANTED = {
    # a literal token in a text whose meaning has nothing to do with configuration
    "bread": "The rye loaf rose overnight on the windowsill; I wrote zq9kx on the flour bag so that "
    "nobody would bake with the old one by mistake.",
    # a meaning with no word in common with the question below
    "sourdough": "My sourdough starter is called Gerald. I feed him rye flour every morning at seven, "
    "and the loaves come out with a dark, blistered crust.",
}


@pytest.fixture
def seeded(db: Database) -> Database:
    seed(db, "maya", {**CONFIGURATION, **PLANTED})
    seed(
        db, "sam", {"sam-bread": "Sam bakes focaccia with rosemary, dimpled with oily fingers, hot and fast."}
    )
    assert run("maya").success and run("sam").success
    return db


def urls(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.document_url.rsplit("/", 1)[-1] for h in hits]


def test_full_text_finds_a_literal_term_that_vectors_miss_and_the_reverse(seeded: Database, embedder) -> None:  # type: ignore[no-untyped-def]
    search = Retriever(seeded, embedder).search
    literal = "zq9kx configuration option"
    assert urls(search(literal, author="maya", k=3, options=SearchOptions(mode="text")))[0] == "bread"
    by_vector = urls(search(literal, author="maya", k=8, options=SearchOptions(mode="vector")))
    assert "bread" not in by_vector[:3]
    hybrid = urls(search(literal, author="maya", k=8))  # both rankings count: the literal term lifts it
    assert hybrid.index("bread") < by_vector.index("bread") and "bread" in hybrid[:5]

    meaning = "keeping a leaven culture healthy"  # no word of the passage
    assert search(meaning, author="maya", k=3, options=SearchOptions(mode="text")) == []
    assert urls(search(meaning, author="maya", k=3, options=SearchOptions(mode="vector")))[0] == "sourdough"
    hybrid = search(meaning, author="maya", k=3)
    assert urls(hybrid)[0] == "sourdough" and hybrid[0].ranks == {"vector": 1}
    assert hybrid[0].similarity is not None and 0 < hybrid[0].similarity <= 1


def test_no_more_than_the_cap_of_chunks_from_one_document(db: Database, embedder) -> None:  # type: ignore[no-untyped-def]
    long_page = "\n\n".join(
        f"Paragraph {i}: retries with exponential backoff, jitter and a cap on the wait keep a client polite "
        f"when the server is overloaded, and the Retry-After header always wins over my own guess."
        for i in range(30)
    )
    seed(db, "maya", {"retries": long_page, "other": "A short note on retries: wait, then try once more."})
    assert run("maya").success
    search = Retriever(db, embedder).search
    uncapped = search(
        "how should a client retry?", author="maya", k=5, options=SearchOptions(same_document_decay=1.0)
    )
    assert urls(uncapped).count("retries") == 5
    capped = search(
        "how should a client retry?", author="maya", k=5, options=SearchOptions(max_per_document=2)
    )
    assert urls(capped).count("retries") == 2 and "other" in urls(capped)
    decayed = search(  # every further chunk of a placed document counts nothing: the other page comes next
        "how should a client retry?", author="maya", k=5, options=SearchOptions(same_document_decay=0.0)
    )
    assert set(urls(decayed)[:2]) == {"retries", "other"} and len(decayed) == 5


def test_self_query_an_explicit_author_wins_a_named_one_restricts_otherwise_everyone(
    seeded: Database, embedder
) -> None:  # type: ignore[no-untyped-def]
    search = Retriever(seeded, embedder).search
    assert {h.author for h in search("what does Sam bake with rosemary?", k=5)} == {"sam"}
    assert {h.author for h in search("what does sam bake?", k=5)} == {"sam"}  # the slug, any case
    assert {h.author for h in search("what does Sam bake?", author="maya", k=5)} == {"maya"}
    everyone = search("baking bread with a crisp crust", k=10)
    assert {h.author for h in everyone} == {"maya", "sam"}  # each result names its author
    off = search("what does Sam bake?", k=5, options=SearchOptions(self_query=False))
    assert "maya" in {h.author for h in off}


def test_the_filters_are_in_sql_a_rare_author_still_gets_k_results(db: Database, embedder) -> None:  # type: ignore[no-untyped-def]
    with db.connect() as conn:
        seed_chunks(conn, unit_vectors(400, seed=1), ["crowd"] * 400)
        seed_chunks(conn, unit_vectors(5, seed=2), ["rare"] * 5)
        seed_chunks(conn, unit_vectors(5, seed=3), ["mixed"] * 5, kind="post")
    search = Retriever(db, embedder).search
    for mode in ("hybrid", "vector", "text"):
        options = SearchOptions(mode=mode, same_document_decay=1.0)  # type: ignore[arg-type]
        query = "rare chunk" if mode == "text" else "anything at all"
        hits = search(query, author="rare", k=5, options=options)
        assert [h.author for h in hits] == ["rare"] * 5, mode
        assert {h.kind for h in search(query, kinds=["post"], k=5, options=options)} <= {"post"}


@pytest.mark.parametrize(
    ("query", "k", "message"),
    [
        ("   ", 5, "the search query is empty"),
        ("x" * 2_001, 5, "at most 2,000 are searched"),
        ("fine", 0, "k must be between 1 and 100, got 0"),
        ("fine", 10_000, "k must be between 1 and 100, got 10000"),
    ],
)
def test_bad_queries_are_named(seeded: Database, embedder, query: str, k: int, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TwinError, match=message):
        Retriever(seeded, embedder).search(query, author="maya", k=k)


@pytest.mark.parametrize("query", ["the and of to a", "?!... ---", "ünïcödé 🙂"])
def test_stop_words_punctuation_and_symbols_still_search(seeded: Database, embedder, query: str) -> None:  # type: ignore[no-untyped-def]
    hits = Retriever(seeded, embedder).search(query, author="maya", k=3)
    assert len(hits) == 3 and all(h.author == "maya" for h in hits)  # the vector ranking still answers


def test_a_configured_cross_encoder_reorders_the_fused_results(seeded: Database, embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No reranker ships offline: a small, randomly initialised cross-encoder built here stands in for one
    (its scores mean nothing; the test checks that they, and only they, decide the order)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from llm_twin_assets.models.registry import embedding_model
    from llm_twin_assets.retrieval import load_reranker
    from llm_twin_assets.settings import get_settings

    folder = tmp_path / "tiny-cross-encoder"
    tokenizer = AutoTokenizer.from_pretrained(embedding_model(get_settings()).name_or_path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    reranker = load_reranker(str(folder))
    hits = Retriever(seeded, embedder, reranker=reranker).search("baking bread", author="maya", k=4)
    assert len(hits) == 4 and [h.ranks["rerank"] for h in hits] == [1, 2, 3, 4]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    passages = [" › ".join([h.title or "", *h.heading_path]).strip(" ›") + "\n" + h.text for h in hits]
    assert [round(float(s), 6) for s in reranker.predict([("baking bread", p) for p in passages])] == [
        h.score for h in hits
    ]
    with pytest.raises(TwinError, match="LLM_TWIN_RERANKER_MODEL"):
        load_reranker(str(tmp_path / "missing"))


def test_the_kept_connection_reconnects_after_a_server_restart(seeded: Database, embedder, settings) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.store import embedded

    retriever = Retriever(seeded, embedder)
    before = retriever.search("rye bread", author="maya", k=2)
    kept = retriever._local.conn
    embedded.stop(settings.pgdata)
    embedded.ensure_running(settings.pgdata)
    after = retriever.search("rye bread", author="maya", k=2)  # the old connection is dead: a new one
    assert [h.chunk_id for h in after] == [h.chunk_id for h in before] and retriever._local.conn is not kept
