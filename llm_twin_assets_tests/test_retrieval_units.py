"""Retrieval units (small-to-big): list items, table rows, sentence groups and short paragraphs of each
chunk are embedded on their own by the chunk_embeddings asset (only for chunks that changed), search ranks
them for their chunk and returns the passage with the unit that matched; they follow their chunk into a
tombstone and back."""

from __future__ import annotations

import os
import subprocess

import pytest

from llm_twin_assets.features.units import GROUP_CHARS, MAX_UNIT_CHARS, unit_spans
from llm_twin_assets.retrieval import Retriever, SearchOptions
from llm_twin_assets.store import tombstones
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.features.test_feature_assets import meta, run, seed
from llm_twin_assets_tests.store.helpers import raw_row, upsert_raw
from llm_twin_assets_tests.test_cli import LLM_TWIN

ITEMS = [
    "Fix race conditions in the freethreaded build",
    "Add zizmor for GitHub Actions workflow linting",
    "Cache the UTC timezone instance between calls",
    "Reject newlines in email address validation",
    "Catch overflow errors during byte size validation",
    "Drop the old pretty table output of the command line",
    "Increase the allowed header size to one hundred kilobytes",
    "Enable TCP_NODELAY for all synchronous sockets",
    "Close sockets when read or write timeouts occur",
    "Support reading the settings file from a named pipe",
    "Handle the working directory being deleted while running",
    "Strip a leading byte order mark from the settings file",
    "Rename the reason extension keyword to reason phrase",
    "Stop following symbolic links when rewriting the file",
    "Add the export option to prepend the binding with export",
    "Make the get command print only the value of a key",
    "Skip language detection entirely on plain ASCII input",
    "Report Latin-1 text under its ISO name by default",
    "Publish wheels for IBM mainframes and ARM boards",
    "Improve Turkish detection which was often wrong before",
    "Rewrite the yes-or-no prompt to avoid licensed code",
    "Build with static metadata using the build frontend",
]
LIST_PAGE = "Release notes of this year, one line each.\n\n" + "\n".join(f"- {i}" for i in ITEMS)
ANSWER = "Enable TCP_NODELAY for all synchronous sockets"
QUESTION = "Is Nagle's algorithm switched off on blocking connections?"  # not one word of the item


def test_units_are_items_rows_and_sentence_groups_never_headings_or_code() -> None:
    text = (
        "Heading line here\n\n"
        "A short paragraph that says one thing.\n\n"
        "- first item of the list\n- second item of the list\n- ok\n\n"
        "| name | meaning of it |\n|---|---|\n| alpha one | the first letter |\n\n"
        "```\nprint('code is never a unit')\n```\n\n"
        + " ".join(f"Sentence number {i} is here." for i in range(40))
    )
    spans = unit_spans(text, [(0, 17, 2)])
    units = [text[a:b] for a, b in spans]
    assert units[:5] == [
        "A short paragraph that says one thing.",
        "- first item of the list",
        "- second item of the list",  # "- ok" has fewer than three words
        "| name | meaning of it |",
        "| alpha one | the first letter |",
    ]
    groups = units[5:]  # the long paragraph, as groups of whole sentences
    assert len(groups) >= 4 and all(len(g) <= GROUP_CHARS and g.endswith("is here.") for g in groups)
    assert groups[0].startswith("Sentence number 0 is") and groups[-1].endswith("number 39 is here.")
    assert all(b - a <= MAX_UNIT_CHARS for a, b in spans)
    assert not any("Heading" in u or "print" in u for u in units)
    assert spans == sorted(spans) and all(text[a:b] == text[a:b].strip() for a, b in spans)
    assert unit_spans("One paragraph, a single unit: the chunk is its own unit.") == []
    assert unit_spans("- one item here\n- two items here", kind="repository") == []


@pytest.fixture
def listed(db: Database) -> Database:
    seed(
        db,
        "maya",
        {
            "notes": LIST_PAGE,
            "networking": "My notes on the home network: every cable in the rack is labelled, and a "
            "paper map of the switches hangs by the door, so a guest can find the printer alone.",
            "sourdough": "My sourdough starter is called Gerald. I feed him rye flour every morning.",
        },
    )
    return db


def units_of(db: Database, author: str = "maya") -> dict[str, tuple[str, int, int, str, bool]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT u.id, u.chunk_id, u.char_start, u.char_end, u.content, u.embedding IS NOT NULL"
            " FROM chunk_units u WHERE u.author = %s",
            (author,),
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}  # type: ignore[misc]


@pytest.mark.slow
def test_units_are_lossless_spans_embedded_once_and_follow_their_chunk(listed: Database) -> None:
    db = listed
    first = run("maya")
    assert first.success and all(c.passed for c in first.get_asset_check_evaluations())
    made = meta(first, "chunk_embeddings")
    units = units_of(db)
    assert made["units_embedded"] == len(units) >= len(ITEMS)
    assert made["chunks_with_units"] >= 1 and made["units_total"] == len(units)
    with db.connect() as conn:
        texts = dict(conn.execute("SELECT id, content FROM cleaned_documents").fetchall())
        documents = dict(conn.execute("SELECT id, document_id FROM chunks").fetchall())
        single = conn.execute(  # the short pages are their own unit: no rows, but their key is recorded
            "SELECT count(*) FROM chunks c WHERE c.units_key IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM chunk_units u WHERE u.chunk_id = c.id)"
        ).fetchone()
    assert single is not None and single[0] >= 2
    for chunk_id, start, end, content, embedded in units.values():
        assert texts[documents[chunk_id]][start:end] == content and embedded
    assert {c for _, _, _, c, _ in units.values()} >= {f"- {i}" for i in ITEMS}

    again = run("maya")  # nothing changed: no unit made or embedded again
    assert (
        meta(again, "chunk_embeddings")["units_rebuilt_chunks"],
        meta(again, "chunk_embeddings")["units_embedded"],
    ) == (0, 0)
    assert units_of(db) == units

    changed = LIST_PAGE.replace(ITEMS[-1], "Build with static metadata using the new frontend")
    with db.connect() as conn:
        upsert_raw(conn, [raw_row("maya", "https://maya.example/notes", changed, kind="article")])
    third = run("maya")
    assert third.success and all(c.passed for c in third.get_asset_check_evaluations())
    after = units_of(db)
    rebuilt = meta(third, "chunk_embeddings")
    assert 1 <= rebuilt["units_rebuilt_chunks"] <= 2  # only the changed chunk(s) of the changed page
    assert rebuilt["units_embedded"] == len(set(after) - set(units)) < len(after)
    assert not any(c == f"- {ITEMS[-1]}" for _, _, _, c, _ in after.values())

    with db.connect() as conn:  # removed with their chunk
        conn.execute("DELETE FROM raw_documents WHERE url = 'https://maya.example/notes'")
    assert units_of(db) == {}


def test_search_returns_the_passage_with_the_item_that_answers_marked(listed: Database, embedder) -> None:  # type: ignore[no-untyped-def]
    assert run("maya").success
    search = Retriever(listed, embedder).search
    for options in (SearchOptions(), SearchOptions(unit_fusion="rank"), SearchOptions(mode="vector")):
        hits = search(QUESTION, author="maya", k=3, options=options)
        top = hits[0]
        assert top.document_url == "https://maya.example/notes", (options, [h.document_url for h in hits])
        assert top.unit is not None and top.unit.text == f"- {ANSWER}"
        assert top.start is not None and top.end is not None
        assert top.start <= top.unit.start < top.unit.end <= top.end
        assert top.text[top.unit.start - top.start : top.unit.end - top.start] == top.unit.text
        assert top.unit.similarity is not None and top.unit.similarity > 0.2
    assert "unit" in search(QUESTION, author="maya", k=3, options=SearchOptions(unit_fusion="rank"))[0].ranks
    as_dict = search(QUESTION, author="maya", k=1)[0].as_dict()
    assert as_dict["unit"]["text"] == f"- {ANSWER}"
    # Full text marks the unit holding the question's terms.
    [literal] = search(
        "TCP_NODELAY synchronous sockets", author="maya", k=1, options=SearchOptions(mode="text")
    )
    assert literal.unit is not None and literal.unit.text == f"- {ANSWER}" and literal.unit.similarity is None
    # Without units: chunks alone, nothing marked (the search as before units).
    plain = search(QUESTION, author="maya", k=3, options=SearchOptions(units=False))
    assert all(h.unit is None for h in plain) and plain
    # A page with no units (a single short passage) is found and returned with no unit marked.
    [bread] = search("feeding a leaven culture every day", author="maya", k=1)
    assert bread.document_url.endswith("/sourdough") and bread.unit is None


@pytest.mark.slow
def test_search_from_the_command_line_shows_the_unit_and_its_passage(listed: Database) -> None:
    assert run("maya").success
    out = subprocess.run(
        [LLM_TWIN, "search", QUESTION, "--author", "maya", "--k", "1"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].strip() == "https://maya.example/notes"
    assert lines[2].strip().startswith("matched (cosine 0.") and lines[2].endswith(f": - {ANSWER}")
    assert lines[3].strip().startswith("passage: ") and f"»- {ANSWER}«" in lines[3]


@pytest.mark.slow
def test_units_go_into_the_tombstone_with_their_chunk_and_come_back_without_embedding(
    listed: Database,
) -> None:
    db = listed
    assert run("maya").success
    units = units_of(db)
    with db.connect() as conn:
        [(doc,)] = conn.execute(
            "SELECT id FROM raw_documents WHERE url = 'https://maya.example/notes'"
        ).fetchall()
        with conn.transaction():
            tombstones.bury(conn, "maya", [doc], "unlisted")
        buried = conn.execute("SELECT count(*) FROM removed_chunk_units").fetchone()
        # One unit's vector is of another dimension (say, the store's embedder changed since): it is
        # left behind, and only that unit is embedded again.
        [(odd,)] = conn.execute(
            "UPDATE removed_chunk_units SET embedding = '[1,2,3]' WHERE id = (SELECT min(id) FROM"
            " removed_chunk_units) RETURNING id"
        ).fetchall()
        conn.commit()
    assert units_of(db) == {} and buried == (len(units),)
    with db.connect() as conn, conn.transaction():
        restored = tombstones.restore(conn, "maya", [doc])
    assert (restored.units, restored.unit_vectors) == (len(units), len(units) - 1)
    assert units_of(db) == {**units, odd: (*units[odd][:-1], False)}
    with db.connect() as conn:
        assert conn.execute("SELECT embedding_model FROM chunk_units WHERE id = %s", (odd,)).fetchone() == (
            None,
        )
    back = run("maya")
    assert back.success and all(c.passed for c in back.get_asset_check_evaluations())
    assert (meta(back, "chunk_embeddings")["embedded"], meta(back, "chunk_embeddings")["units_embedded"]) == (
        0,
        1,
    )
    assert units_of(db) == units
