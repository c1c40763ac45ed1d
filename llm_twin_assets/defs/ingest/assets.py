"""``raw_documents``: crawl an author's links and upsert one row per source URL (``ingesting``).

A crawl where more than half of the links failed removes nothing (it could not see the author) and says
why: a warning in the run's log and ``removals_withheld`` in its metadata.
"""

from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.resources import AuthorsResource, StoreResource

if TYPE_CHECKING:
    from llm_twin_assets.crawling.dispatcher import CrawlOptions
    from llm_twin_assets.settings import TwinSettings


class CrawlConfig(dg.Config):
    """How to crawl this run. The defaults are polite; loosen them only for sites you own."""

    min_delay_s: float = 1.0
    """Minimum seconds between two requests to one host (robots.txt Crawl-delay can raise it)."""
    per_host_concurrency: int = 1
    """Requests in flight to one host at a time; hosts are crawled in parallel."""
    max_page_bytes: int = 5_000_000
    """Pages larger than this are refused."""
    render: Literal["auto", "always", "never"] = "auto"
    """Render pages in Chromium: only when the static HTML has too little text (auto), always, or never."""
    obey_robots: bool = True
    """Obey robots.txt. Turn off only for your own sites."""


def crawl_options(config: CrawlConfig, settings: "TwinSettings") -> "CrawlOptions":
    # Imported here: crawlers pull in trafilatura and Playwright, which the code location need not load.
    from llm_twin_assets.crawling.articles import ArticleOptions
    from llm_twin_assets.crawling.dispatcher import CrawlOptions
    from llm_twin_assets.crawling.http import CrawlPolicy

    return CrawlOptions(
        policy=CrawlPolicy(
            min_delay_s=config.min_delay_s,
            per_host_concurrency=config.per_host_concurrency,
            max_page_bytes=config.max_page_bytes,
            obey_robots=config.obey_robots,
            allow_private_networks=settings.allow_private_networks,
        ),
        article=ArticleOptions(render=config.render),
        local_roots=settings.readable_folders,
    )


@author_asset(
    group_name="ingest",
    kinds={"python", "postgres"},
    description="What the author wrote, as crawled: one row per source URL (articles, posts, repositories).",
)
def raw_documents(
    context: dg.AssetExecutionContext, config: CrawlConfig, store: StoreResource, authors: AuthorsResource
) -> dg.MaterializeResult:
    from llm_twin_assets.ingesting import ingest_author

    settings = authors.settings()
    options = crawl_options(config, settings)
    report = ingest_author(store.database(), settings, context.partition_key, options, context.log)
    links, outcome, summary = report.links, report.outcome, report.summary
    removals: dict[str, Any] = {
        "removed": sum(summary.removed.values()),
        "removal_reasons": dg.MetadataValue.json(dict(summary.removal_reasons)),
        "gone_pending": summary.gone_pending,
        "restored": sum(summary.restored.values()),
        "tombstones_purged": summary.purged,
        "links_failed": summary.links_failed,
        "links": summary.links_total,
        **({"removals_withheld": summary.removals_withheld} if summary.removals_withheld else {}),
    }
    # The removal policy runs even when nothing answered (every link gone, a folder emptied, links
    # dropped from the file) unless most links failed; only then is the run a failure.
    if not outcome.documents:
        raise dg.Failure(
            description=f"nothing could be fetched for author {links.slug!r} from {links.path}: "
            + "; ".join(f.error for f in outcome.failures)
            + (f" ({summary.removals_withheld})" if summary.removals_withheld else ""),
            metadata={"failed": len(outcome.failures), **removals},
        )
    preview = "\n".join(
        ["| kind | title | url | chars |", "|---|---|---|---|"]
        + [
            f"| {d.kind} | {(d.title or '').replace('|', '/')[:60]} | {d.url} | {len(d.content):,} |"
            for d in outcome.documents[:20]
        ]
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(report.version),
        metadata={
            "documents": len(outcome.documents),
            "new": sum(summary.new.values()),
            "changed": sum(summary.changed.values()),
            "unchanged": sum(summary.unchanged.values()),
            **removals,
            "failed": len(outcome.failures),
            "by_kind": dg.MetadataValue.json(summary.by_kind()),
            "failures": dg.MetadataValue.json(
                [{"link": f.link, "error": f.error, "gone": f.gone} for f in outcome.failures]
            ),
            "requests": outcome.stats.get("requests", 0),
            "rendered_pages": outcome.stats.get("rendered", 0),
            "crawl_seconds": outcome.stats.get("seconds", 0.0),
            "links_file": dg.MetadataValue.path(str(links.path)),
            "preview": dg.MetadataValue.md(preview),
        },
    )
