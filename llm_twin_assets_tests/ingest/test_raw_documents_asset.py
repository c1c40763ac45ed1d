"""``raw_documents`` materialized through Dagster on the real store, against the fixture site."""

from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.defs.ingest.assets import raw_documents
from llm_twin_assets.defs.ingest.checks import raw_documents_have_content, raw_documents_unique_content
from llm_twin_assets.defs.resources import AuthorsResource, StoreResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.store.database import Database
from llm_twin_assets_tests.ingest.site import write_links

FAST = {"ops": {"raw_documents": {"config": {"min_delay_s": 0.05}}}}


def materialize(authors_dir: Path, slug: str, *, allow_private: bool = True) -> dg.ExecuteInProcessResult:
    return materialize_for_author(
        [raw_documents, raw_documents_have_content, raw_documents_unique_content],
        slug,
        {
            "store": StoreResource(),
            "authors": AuthorsResource(authors_dir=str(authors_dir), allow_private_networks=allow_private),
        },
        run_config=FAST,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = result.asset_materializations_for_node("raw_documents")
    return {k: v.value for k, v in event.metadata.items()}


def rows(db: Database, slug: str) -> dict[str, tuple[str, str, str]]:
    with db.connect() as conn:
        found = conn.execute(
            "SELECT url, kind, content_hash, xmin::text FROM raw_documents WHERE author = %s", (slug,)
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in found}


@pytest.mark.slow
def test_crawl_store_rerun_change_and_prune(
    db: Database, site, sample_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    authors = tmp_path / "authors"
    export = Path(__file__).resolve().parents[2] / "samples" / "maya" / "linkedin-Shares.csv"
    # Local files outside the authors folder are read only from the folders the user allows.
    monkeypatch.setenv("LLM_TWIN_LOCAL_ROOTS", f"{export.parent}:{sample_repo.parent}")
    links = [
        f"{base}/blog/small-machines.html",
        f"{base}/notes/vector-search-on-a-laptop.html",
        f"{base}/changing.html",
        f"{base}/paper.pdf",
        f"{{url: '{export}', kind: post}}",
        f"{{url: '{sample_repo}', kind: repository}}",
    ]
    write_links(authors, "maya", links)

    first = materialize(authors, "maya")
    assert first.success
    meta = metadata(first)
    assert (meta["new"], meta["changed"], meta["unchanged"], meta["failed"]) == (10, 0, 0, 1)
    assert meta["by_kind"] == {
        "article": {"new": 3, "changed": 0, "unchanged": 0, "removed": 0, "failed": 1},
        "post": {"new": 6, "changed": 0, "unchanged": 0, "removed": 0, "failed": 0},
        "repository": {"new": 1, "changed": 0, "unchanged": 0, "removed": 0, "failed": 0},
    }
    assert "paper.pdf" in meta["failures"][0]["error"]  # type: ignore[index]
    assert "| article | Your data fits on a laptop |" in str(meta["preview"])
    assert all(c.passed for c in first.get_asset_check_evaluations())
    stored = rows(db, "maya")
    assert len(stored) == 10 and stored[f"{base}/blog/small-machines.html"][0] == "article"

    # Unchanged sources: nothing is written (every row keeps its transaction id).
    second = materialize(authors, "maya")
    assert (metadata(second)["new"], metadata(second)["changed"], metadata(second)["unchanged"]) == (0, 0, 10)
    assert rows(db, "maya") == stored

    # One page changes: exactly its row is replaced.
    state.changing_text = "The second version says something new about retries and patience."
    third = materialize(authors, "maya")
    assert (metadata(third)["changed"], metadata(third)["unchanged"]) == (1, 9)
    after = rows(db, "maya")
    changed = {url for url in after if after[url] != stored[url]}
    assert changed == {f"{base}/changing.html"}

    # A link removed from the file takes its row with it; a link that fails keeps its old row.
    write_links(authors, "maya", [line for line in links if "vector-search" not in line])
    state.changing_status = 503  # this link fails this time: its stored row must survive
    fourth = materialize(authors, "maya")
    assert metadata(fourth)["removed"] == 1 and metadata(fourth)["failed"] == 2
    final = rows(db, "maya")
    assert f"{base}/notes/vector-search-on-a-laptop.html" not in final
    assert final[f"{base}/changing.html"] == after[f"{base}/changing.html"]


def test_a_partition_where_nothing_could_be_fetched_fails_clearly(db: Database, site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    write_links(tmp_path / "authors", "ghost", [f"{base}/paper.pdf", f"{base}/nope.html"])
    result = materialize(tmp_path / "authors", "ghost")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "nothing could be fetched for author 'ghost'" in message and "HTTP 404" in message
    assert rows(db, "ghost") == {}


def test_the_ssrf_guard_blocks_the_fixture_site_without_the_setting(
    db: Database, site, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, state = site
    write_links(tmp_path / "authors", "maya", [f"{base}/blog/small-machines.html"])
    result = materialize(tmp_path / "authors", "maya", allow_private=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "a loopback address; refused" in failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert state.requests == []


def test_an_author_without_a_links_file_is_named(db: Database, tmp_path: Path) -> None:
    result = materialize(tmp_path / "authors", "nobody")
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no links file for author 'nobody'" in failure.step_failure_data.error.message  # type: ignore[union-attr]


def test_checks_catch_empty_and_duplicate_content(db: Database) -> None:
    from llm_twin_assets.defs.ingest.checks import duplicate_content, empty_content
    from llm_twin_assets_tests.store.helpers import add_author, raw_row, upsert_raw

    with db.connect() as conn:
        add_author(conn, "maya")
        add_author(conn, "other")
        upsert_raw(
            conn,
            [
                raw_row("maya", "https://a.org/1", "same text"),
                raw_row("maya", "https://a.org/2", "same text"),
                raw_row("maya", "https://a.org/3", "   "),
                raw_row("other", "https://a.org/1", "fine"),
            ],
        )
        empty, dupes = empty_content(conn, "maya"), duplicate_content(conn, "maya")
        assert empty_content(conn, "other").passed and duplicate_content(conn, "other").passed
    assert not empty.passed and empty.metadata["urls"].value == ["https://a.org/3"]
    assert not dupes.passed and dupes.severity == dg.AssetCheckSeverity.WARN
    assert dupes.metadata["examples"].value == [["https://a.org/1", "https://a.org/2"]]


def test_drafts_deleted_from_their_folder_leave_even_when_the_run_finds_nothing(
    db: Database, tmp_path: Path
) -> None:
    authors = tmp_path / "authors"
    drafts = authors / "drafts"
    drafts.mkdir(parents=True)
    (drafts / "one.md").write_text("# One\n\nThe first draft, long enough to keep around.\n")
    write_links(authors, "maya", ["./drafts"])
    assert materialize(authors, "maya").success and len(rows(db, "maya")) == 1
    (drafts / "one.md").unlink()  # the folder is there, empty: its one draft is gone at its source
    for expected in (1, 0):
        result = materialize(authors, "maya")
        assert not result.success  # nothing could be fetched, and it says so...
        assert len(rows(db, "maya")) == expected  # ...but the removal policy still ran
