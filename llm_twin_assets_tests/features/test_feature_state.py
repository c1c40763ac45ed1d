"""What the feature assets remember between runs: rejections, duplicates against the store, metadata
changes, and that a re-run on unchanged input writes nothing at all."""

from __future__ import annotations

import dagster as dg

from llm_twin_assets.defs.features.assets import cleaned_documents
from llm_twin_assets.defs.resources import StoreResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.store.database import Database
from llm_twin_assets.store.status import report
from llm_twin_assets_tests.features.test_feature_assets import PLANTED, meta, run, seed
from llm_twin_assets_tests.store.helpers import raw_row, upsert_raw

TEXT = PLANTED["sourdough"]


def clean(author: str) -> dg.ExecuteInProcessResult:
    result = materialize_for_author([cleaned_documents], author, {"store": StoreResource()})
    assert result.success
    return result


def state(db: Database, table: str, author: str = "maya") -> dict[str, tuple[object, ...]]:
    with db.connect() as conn:
        rows = conn.execute(
            f"SELECT id, xmin::text, {'rejected_at' if table == 'cleaning_rejections' else 'updated_at'}"
            f" FROM {table} WHERE author = %s",
            (author,),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_rejections_are_remembered_duplicates_are_judged_against_the_store_and_reruns_write_nothing(
    db: Database,
) -> None:
    seed(db, "maya", {"original": TEXT, "blank": "   ## \n\n  "})
    first = meta(clean("maya"), "cleaned_documents")
    assert (first["written"], first["rejected"]) == (1, 1)

    seed(db, "maya", {"copy": TEXT})  # a later crawl brings the same text under another URL
    second = meta(clean("maya"), "cleaned_documents")
    assert (second["judged_raw_documents"], second["written"], second["rejected"]) == (1, 0, 1)
    assert second["rejections"] == ["https://maya.example/copy: duplicate of https://maya.example/original"]
    assert second["rejected_total"] == {"duplicate": 1, "empty": 1}

    cleaned, rejections = state(db, "cleaned_documents"), state(db, "cleaning_rejections")
    third = meta(clean("maya"), "cleaned_documents")  # nothing changed: nothing judged, nothing written
    assert (third["judged_raw_documents"], third["written"], third["rejected"]) == (0, 0, 0)
    assert state(db, "cleaned_documents") == cleaned and state(db, "cleaning_rejections") == rejections

    lines = "\n".join(report(db).lines())
    assert "not cleaned:  duplicate=1, empty=1" in lines

    with db.connect() as conn:  # the original is edited: its duplicate is judged with it, in the same run
        upsert_raw(conn, [raw_row("maya", "https://maya.example/original", TEXT + " Edited since.")])
    edited = meta(clean("maya"), "cleaned_documents")
    assert (edited["judged_raw_documents"], edited["written"], edited["rejected"]) == (2, 2, 0)
    settled = meta(clean("maya"), "cleaned_documents")
    assert (settled["judged_raw_documents"], settled["written"]) == (0, 0)
    with db.connect() as conn:  # back to the copy's text: the copy stays (first come), the original waits
        upsert_raw(conn, [raw_row("maya", "https://maya.example/original", TEXT)])
    assert meta(clean("maya"), "cleaned_documents")["rejections"] == [
        "https://maya.example/original: duplicate of https://maya.example/copy"
    ]

    with db.connect() as conn:  # the kept copy leaves the store: the original is judged again, and kept
        conn.execute("DELETE FROM raw_documents WHERE url = 'https://maya.example/copy'")
    fourth = meta(clean("maya"), "cleaned_documents")
    assert (fourth["judged_raw_documents"], fourth["written"]) == (1, 1)
    with db.connect() as conn:
        urls = [
            r[0] for r in conn.execute("SELECT url FROM cleaned_documents WHERE author = 'maya'").fetchall()
        ]
    assert urls == ["https://maya.example/original"]


def test_a_rerun_of_every_feature_asset_writes_nothing_and_a_kind_change_reaches_the_chunks(
    db: Database,
) -> None:
    seed(db, "maya", {**PLANTED})
    assert run("maya").success
    before = {t: state(db, t) for t in ("raw_documents", "cleaned_documents", "chunks")}
    again = run("maya")
    assert (
        meta(again, "cleaned_documents")["written"],
        meta(again, "chunks")["chunks_made"],
        meta(again, "chunk_embeddings")["embedded"],
    ) == (0, 0, 0)
    assert {t: state(db, t) for t in before} == before  # same rows, same xmin, same updated_at

    url = "https://maya.example/marathon"
    with db.connect() as conn:  # the links file now says this one is a post
        upsert_raw(conn, [raw_row("maya", url, PLANTED["marathon"], kind="post")])
    changed = run("maya")
    assert (
        meta(changed, "cleaned_documents")["written"] == 1
        and meta(changed, "chunks")["rechunked_documents"] == 1
    )
    with db.connect() as conn:
        kinds = conn.execute(
            "SELECT DISTINCT c.kind, k.kind FROM cleaned_documents c JOIN chunks k ON k.document_id = c.id"
            " WHERE c.url = %s",
            (url,),
        ).fetchall()
    assert kinds == [("post", "post")]
    after = state(db, "chunks")
    assert sum(after[c] != before["chunks"][c] for c in after) == 1  # that document's one chunk, nothing else
