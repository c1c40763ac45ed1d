"""Nothing is removed by a crawl that could not see the author; removed documents are tombstones that come
back (by command or by putting the link back) with their chunks and vectors, never embedded again; the
same source spelled two ways is one document. Real Dagster runs on the real store and the fixture site."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from typer.testing import CliRunner

from llm_twin_assets.defs.features.definitions import FEATURE_ASSETS
from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.resources import AuthorsResource, ModelsResource, StoreResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.records import CrawledDocument, CrawlOutcome, LinkFailure
from llm_twin_assets.store.database import Database
from llm_twin_assets.store.raw_documents import removals_withheld, store_crawl
from llm_twin_assets.store.status import report
from llm_twin_assets_tests.ingest.site import write_links

FAST = {"ops": {"raw_documents": {"config": {"min_delay_s": 0.05}}}}
LOGS: dict[str, list[str]] = {}
"""run id -> the messages its steps logged."""
ARTICLES = ("blog/small-machines.html", "blog/boring-postgres.html", "notes/vector-search-on-a-laptop.html")


def materialize(
    authors: Path, slug: str = "maya", *, features: bool = False, allow_private: bool = True
) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_for_author(
            [raw_documents, *(FEATURE_ASSETS if features else [])],
            slug,
            {
                "store": StoreResource(),
                "authors": AuthorsResource(authors_dir=str(authors), allow_private_networks=allow_private),
                "models": ModelsResource(device="cpu"),
            },
            instance=instance,
            run_config=FAST,
        )
        LOGS[result.run_id] = [r.user_message for r in instance.all_logs(result.run_id)]
        return result


def meta(result: dg.ExecuteInProcessResult, asset: str = "raw_documents") -> dict[str, Any]:
    """The asset's materialization metadata, or its failure's when the step failed."""
    events = result.asset_materializations_for_node(asset)
    if events:
        return {k: v.value for k, v in events[0].metadata.items()}
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == asset)
    data = failure.step_failure_data.user_failure_data  # type: ignore[union-attr]
    return {k: v.value for k, v in data.metadata.items()}  # type: ignore[union-attr]


def snapshot(db: Database, slug: str = "maya") -> dict[str, Any]:
    """Every live row of the author (ids, content, gone counts) and every chunk with its vector."""
    with db.connect() as conn:
        raw = conn.execute(
            "SELECT id, url, content_hash, gone_crawls FROM raw_documents WHERE author = %s ORDER BY id",
            (slug,),
        ).fetchall()
        cleaned = conn.execute(
            "SELECT id, content_hash, chunks_key FROM cleaned_documents WHERE author = %s ORDER BY id",
            (slug,),
        ).fetchall()
        chunks = conn.execute(
            "SELECT id, document_id, embedding::text, embedding_model FROM chunks WHERE author = %s ORDER BY id",
            (slug,),
        ).fetchall()
    return {"raw": raw, "cleaned": cleaned, "chunks": chunks}


def tombstones(db: Database, slug: str = "maya") -> dict[str, int]:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM removed_raw_documents WHERE author = %(a)s),"
            " (SELECT count(*) FROM removed_cleaned_documents WHERE author = %(a)s),"
            " (SELECT count(*) FROM removed_chunks WHERE author = %(a)s AND embedding IS NOT NULL)",
            {"a": slug},
        ).fetchone()
    assert row is not None
    return {"raw": row[0], "cleaned": row[1], "vectors": row[2]}


def local_author(authors: Path) -> None:
    """Two drafts and a LinkedIn export beside the links file."""
    (authors / "maya" / "drafts").mkdir(parents=True)
    (authors / "maya" / "drafts" / "one.md").write_text("# One\n\nThe first draft says measure first.\n")
    (authors / "maya" / "drafts" / "two.md").write_text("# Two\n\nThe second draft says scale second.\n")
    (authors / "maya" / "posts.csv").write_text(
        'ShareLink,ShareCommentary\n,"Boring pipelines are the ones that run twice."\n'
    )


def test_a_crawl_where_every_link_fails_three_times_removes_nothing(
    db: Database, site, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    authors = tmp_path / "authors"
    local_author(authors)
    write_links(authors, "maya", [f"{base}/{ARTICLES[0]}", "./maya/drafts", "./maya/posts.csv"])
    assert materialize(authors, features=True).success
    before = snapshot(db)
    assert len(before["raw"]) == 4 and before["chunks"] and all(c[2] for c in before["chunks"])

    # The site refuses the crawler (loopback, as in a sensor run without the setting) and every local
    # path is gone: each link fails, and the local ones even say "gone" (which would count toward removal).
    shutil.rmtree(authors / "maya")
    for _ in range(3):
        result = materialize(authors, allow_private=False)
        assert not result.success  # nothing could be fetched
        found = meta(result)
        assert found["removed"] == 0 and found["gone_pending"] == 0
        assert found["links_failed"] == 3 and found["links"] == 3
        assert str(found["removals_withheld"]).startswith("3 of 3 links failed (more than half)")
        assert f"author 'maya': nothing removed: {found['removals_withheld']}" in LOGS[result.run_id]
    assert snapshot(db) == before  # same rows, same chunks and vectors, no gone count
    assert tombstones(db) == {"raw": 0, "cleaned": 0, "vectors": 0}


@pytest.mark.slow
def test_a_crawl_where_most_links_fail_removes_nothing(db: Database, site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    authors = tmp_path / "authors"
    links = [f"{base}/{a}" for a in ARTICLES] + [f"{base}/changing.html"]
    write_links(authors, "maya", links)
    assert materialize(authors).success
    before = snapshot(db)
    assert len(before["raw"]) == 4

    # Two links leave the file, and two of the three in it fail (a 404 and a 503): the crawl saw too
    # little of the author to remove anything.
    state.changing_status = 503
    write_links(authors, "maya", [links[1], f"{base}/nope.html", links[3]])
    second = meta(materialize(authors))
    assert (second["links_failed"], second["links"], second["removed"], second["gone_pending"]) == (
        2,
        3,
        0,
        0,
    )
    assert "2 of 3 links failed" in second["removals_withheld"]
    assert snapshot(db)["raw"] == before["raw"]

    # The sources answer again: now the links that left the file take their documents (as tombstones).
    state.changing_status = 200
    write_links(authors, "maya", [links[1], links[3]])
    third = meta(materialize(authors))
    assert "removals_withheld" not in third and third["removed"] == 2
    assert third["removal_reasons"] == {"unlisted": 2}
    assert tombstones(db)["raw"] == 2


def test_the_rule_is_more_than_half_of_the_links(db: Database) -> None:
    def outcome(failed: int, answered: int, empty_folder: bool = False) -> CrawlOutcome:
        failures = [
            LinkFailure(link=f"https://x.example/{i}", kind="article", error="HTTP 503")
            for i in range(failed)
        ]
        crawled = {f"https://y.example/{i}" for i in range(answered)}
        complete = {failures[0].link} if empty_folder else set()
        return CrawlOutcome(failures=failures, crawled_links=crawled, complete_links=complete)

    def links(o: CrawlOutcome) -> list[str]:
        return [f.link for f in o.failures] + sorted(o.crawled_links)

    for failed, answered, withheld in (
        (1, 1, False),
        (2, 2, False),
        (2, 1, True),
        (3, 0, True),
        (1, 0, True),
    ):
        o = outcome(failed, answered)
        assert (removals_withheld(links(o), o)[0] is not None) is withheld, (failed, answered)
    # A drafts folder found empty answered (with nothing): it does not count as failed.
    o = outcome(2, 1, empty_folder=True)
    assert removals_withheld(links(o), o)[:2] == (None, 1)
    # Failures the links list does not name still count (never fewer failed links than failures).
    o = outcome(2, 0)
    assert removals_withheld(["https://z.example/"], o)[0] is not None

    # Store level: a withheld crawl neither removes an unlisted document nor counts a gone one.
    page = CrawledDocument(
        url="https://x.example/0", kind="article", content="A page.", source_link="https://x.example/0"
    )
    other = CrawledDocument(
        url="https://y.example/0", kind="article", content="Another.", source_link="https://y.example/0"
    )
    with db.connect() as conn:
        store_crawl(conn, "maya", "Maya", "sha", [page.url, other.url], CrawlOutcome(documents=[page, other]))
        gone = CrawlOutcome(
            failures=[
                LinkFailure(link=page.url, kind="article", error="HTTP 404", gone=True),
                LinkFailure(link="https://z.example/", kind="article", error="HTTP 503"),
            ]
        )
        summary = store_crawl(conn, "maya", "Maya", "sha", [page.url, "https://z.example/"], gone)
        assert summary.removals_withheld and not summary.removed and summary.gone_pending == 0
        assert conn.execute(
            "SELECT count(*), max(gone_crawls) FROM raw_documents WHERE author = 'maya'"
        ).fetchone() == (2, 0)


def test_a_hand_copied_links_file_whose_relative_links_resolve_elsewhere_removes_nothing(
    db: Database, site, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    home = tmp_path / "samples"
    local_author(home)
    links = [f"{base}/{ARTICLES[0]}", f"{base}/{ARTICLES[1]}", "./maya/drafts", "./maya/posts.csv"]
    write_links(home, "maya", links)
    assert materialize(home).success
    before = snapshot(db)
    assert len(before["raw"]) == 5

    # Copied by hand into another authors folder: ./maya/... now names nothing, and (as in a sensor
    # run) the crawler may not reach the loopback site.
    copied = tmp_path / "authors"
    copied.mkdir()
    shutil.copy(home / "maya.yaml", copied / "maya.yaml")
    result = materialize(copied, allow_private=False)
    found = meta(result)
    assert not result.success and found["removed"] == 0 and found["links_failed"] == 4
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "no such file or folder" in message and "a loopback address; refused" in message
    assert found["removals_withheld"].startswith("4 of 4 links failed")
    assert snapshot(db) == before and tombstones(db)["raw"] == 0


@pytest.mark.slow
def test_a_removed_link_is_a_tombstone_restored_by_command_or_by_putting_the_link_back(
    db: Database, site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.cli import app

    base, _ = site
    authors = tmp_path / "authors"
    monkeypatch.setenv("LLM_TWIN_AUTHORS_DIR", str(authors))  # the command reads the links file there
    links = [f"{base}/{a}" for a in ARTICLES]
    write_links(authors, "maya", links)
    first = materialize(authors, features=True)
    assert first.success and meta(first, "chunk_embeddings")["embedded"] > 0
    full = snapshot(db)
    gone_id = next(r[0] for r in full["raw"] if r[1].endswith(ARTICLES[2]))
    gone_chunks = [c for c in full["chunks"] if c[1] == gone_id]
    assert gone_chunks

    def remove_the_link() -> None:
        write_links(authors, "maya", links[:2])
        result = materialize(authors, features=True)
        assert result.success
        assert meta(result)["removed"] == 1 and meta(result)["removal_reasons"] == {"unlisted": 1}
        now = snapshot(db)
        assert gone_id not in {r[0] for r in now["raw"]} | {r[0] for r in now["cleaned"]}
        assert not [c for c in now["chunks"] if c[1] == gone_id]
        assert tombstones(db) == {"raw": 1, "cleaned": 1, "vectors": len(gone_chunks)}

    remove_the_link()
    status = report(db)  # `llm-twin db status`: live rows only, tombstones on their own line
    assert status.rows["raw_documents"] == 2 and status.rows["chunks"] == len(full["chunks"]) - len(
        gone_chunks
    )
    assert status.tombstones == (1, len(gone_chunks))
    assert f"removed:      1 documents, {len(gone_chunks)} chunks kept as tombstones" in "\n".join(
        status.lines()
    )
    runner = CliRunner()
    listed = runner.invoke(app, ["author", "removed", "maya"])
    assert listed.exit_code == 0 and f"{base}/{ARTICLES[2]}" in listed.output and "unlisted" in listed.output

    # By command: the rows come back as they were, vectors included; the feature steps do nothing.
    unknown = runner.invoke(app, ["author", "restore", "maya", "https://nowhere.example/x"])
    assert unknown.exit_code == 2 and "nothing was restored" in unknown.output
    done = runner.invoke(app, ["author", "restore", "maya", f"{base}/{ARTICLES[2]}"])
    assert done.exit_code == 0, done.output
    assert (
        f"restored 1 documents with {len(gone_chunks)} chunks ({len(gone_chunks)} with their vectors"
        in done.output
    )
    assert "is not in" in done.output and "put the link back" in done.output  # its link is still out
    assert snapshot(db) == full and tombstones(db) == {"raw": 0, "cleaned": 0, "vectors": 0}
    again = materialize(authors, features=False)  # the link is still out of the file: removed again
    assert meta(again)["removed"] == 1

    # By putting the link back: the crawl finds the document in its tombstone; nothing is re-embedded.
    write_links(authors, "maya", links)
    back = materialize(authors, features=True)
    assert back.success
    assert meta(back)["restored"] == 1 and meta(back)["new"] == 0 and meta(back)["changed"] == 0
    assert meta(back, "cleaned_documents")["judged_raw_documents"] == 0
    assert meta(back, "chunks")["rechunked_documents"] == 0 and meta(back, "chunks")["new"] == 0
    assert meta(back, "chunk_embeddings")["embedded"] == 0
    assert snapshot(db) == full and tombstones(db)["raw"] == 0


def test_tombstones_older_than_the_retention_are_purged(
    db: Database, site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.cli import app

    base, _ = site
    authors = tmp_path / "authors"
    links = [f"{base}/{a}" for a in ARTICLES]
    write_links(authors, "maya", links)
    assert materialize(authors).success
    write_links(authors, "maya", links[1:])
    assert meta(materialize(authors))["removed"] == 1
    write_links(authors, "maya", links[2:])
    assert meta(materialize(authors))["removed"] == 1
    with db.connect() as conn:  # one removed 11 days ago, one 5 days ago
        conn.execute(
            "UPDATE removed_raw_documents SET removed_at = now() - interval '11 days' WHERE url LIKE %s",
            (f"%{ARTICLES[0]}",),
        )
        conn.execute(
            "UPDATE removed_raw_documents SET removed_at = now() - interval '5 days' WHERE url LIKE %s",
            (f"%{ARTICLES[1]}",),
        )
    monkeypatch.setenv("LLM_TWIN_TOMBSTONE_DAYS", "10")
    result = materialize(authors)
    assert meta(result)["tombstones_purged"] == 1
    with db.connect() as conn:
        left = [r[0] for r in conn.execute("SELECT url FROM removed_raw_documents").fetchall()]
    assert left == [f"{base}/{ARTICLES[1]}"]
    # The command purges too (with a shorter retention, the other one goes).
    monkeypatch.setenv("LLM_TWIN_TOMBSTONE_DAYS", "1")
    listed = CliRunner().invoke(app, ["author", "removed", "maya"])
    assert (
        listed.exit_code == 0
        and "purged 1 tombstones" in listed.output
        and "no removed documents" in listed.output
    )


def test_the_same_local_source_spelled_two_ways_is_one_document(
    db: Database, site, tmp_path: Path, sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    authors = tmp_path / "authors"
    local_author(authors)
    (authors / "linked").symlink_to(authors / "maya")  # a symlinked folder
    monkeypatch.setenv("LLM_TWIN_LOCAL_ROOTS", str(sample_repo.parent))
    spellings = [
        [
            "./maya/drafts",
            "./maya/posts.csv",
            f"{{url: '{sample_repo}', kind: repository}}",
            f"{base}/{ARTICLES[0]}",
        ],
        [
            json.dumps((authors / "maya" / "drafts").as_uri()),  # file://
            "./linked/../linked/posts.csv",  # '..' and a symlinked folder
            f"{{url: '{sample_repo.as_uri()}', kind: repository}}",
            json.dumps(f"{base.replace('http://', 'HTTP://')}/{ARTICLES[0]}#top"),  # scheme case, fragment
        ],
        [
            json.dumps(str(authors / "linked" / "drafts")),  # absolute, through the symlink
            json.dumps(str(authors / "maya" / "posts.csv")),
            f"{{url: '{sample_repo}/', kind: repository}}",
            f"{base}/{ARTICLES[0]}",
        ],
    ]
    write_links(authors, "maya", spellings[0])
    assert materialize(authors).success
    before = snapshot(db)
    assert len(before["raw"]) == 5  # two drafts, one post, the repository, the article
    with db.connect() as conn:
        sources = conn.execute("SELECT DISTINCT source_link FROM raw_documents ORDER BY 1").fetchall()
    for other in spellings[1:]:
        write_links(authors, "maya", other)
        found = meta(materialize(authors))
        assert (found["new"], found["changed"], found["removed"], found["unchanged"]) == (0, 0, 0, 5), other
        assert snapshot(db) == before
        with db.connect() as conn:
            assert (
                conn.execute("SELECT DISTINCT source_link FROM raw_documents ORDER BY 1").fetchall()
                == sources
            )


def test_an_export_and_import_keeps_the_tombstones(
    db: Database, site, tmp_path: Path, fresh_database_url: str
) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.artifacts import LocalArtifactStore
    from llm_twin_assets.backup import export_store, import_store
    from llm_twin_assets.settings import get_settings
    from llm_twin_assets.store.database import open_database
    from llm_twin_assets.store.tombstones import restore

    base, _ = site
    authors = tmp_path / "authors"
    links = [f"{base}/{a}" for a in ARTICLES]
    write_links(authors, "maya", links)
    assert materialize(authors, features=True).success
    full = snapshot(db)
    write_links(authors, "maya", links[:2])
    assert meta(materialize(authors))["removed"] == 1
    kept = tombstones(db)
    assert kept["raw"] == 1 and kept["vectors"] > 0

    store = LocalArtifactStore(tmp_path / "artifacts")
    summary = export_store(db, store, tmp_path / "backup")
    assert (
        summary.tables["removed_raw_documents"] == 1 and summary.tables["removed_chunks"] == kept["vectors"]
    )
    target = open_database(get_settings(database_url=fresh_database_url))
    import_store(target, LocalArtifactStore(tmp_path / "restored"), tmp_path / "backup")
    assert tombstones(target) == kept
    with target.connect() as conn, conn.transaction():
        assert len(restore(conn, "maya").documents) == 1
    assert snapshot(target) == full  # restored in the imported store: every row and vector as it was
