import dagster as dg

from llm_twin_assets.defs.release.assets import twin_release
from llm_twin_assets.defs.resources import StoreResource

serving_traces = dg.AssetSpec(
    "serving_traces",
    deps=[twin_release],
    group_name="serving",
    kinds={"postgres", "bentoml"},
    description="Every request the twin service (bentos/llm_twin) answered or refused: route, author, query, "
    "retrieved chunk ids and scores, release, tokens, latency per stage, status. Written by the service.",
)


class ServingReportConfig(dg.Config):
    days: float = 7.0
    """The window the report covers, in days up to now."""
    gap_similarity: float | None = None
    """A question whose best passage is less similar than this is a content gap (default: the setting
    LLM_TWIN_SERVE_GAP_SIMILARITY)."""


@dg.asset(
    deps=[serving_traces],
    group_name="serving",
    kinds={"postgres"},
    automation_condition=dg.AutomationCondition.on_cron("0 6 * * *"),
    description="What people asked the twins and how the service did: volume, p50/p95 latency per route, "
    "error rate, the most-cited sources, and the questions whose best source scored low (content gaps).",
)
def serving_report(
    context: dg.AssetExecutionContext, config: ServingReportConfig, store: StoreResource
) -> dg.MaterializeResult:
    from llm_twin_assets.serving.report import build_report
    from llm_twin_assets.settings import get_settings

    gap = config.gap_similarity if config.gap_similarity is not None else get_settings().serve_gap_similarity
    report = build_report(store.database(), config.days, gap)
    context.log.info(
        f"{report.requests} requests since {report.since:%Y-%m-%d %H:%M}, {report.errors} errors, "
        f"{len(report.gaps)} content gaps"
    )
    latency = {r.route: r.p95_ms for r in report.routes}
    return dg.MaterializeResult(
        metadata={
            "requests": report.requests,
            "errors": report.errors,
            "rejected": report.rejected,
            "error_rate": report.error_rate,
            "statuses": {str(k): v for k, v in report.statuses.items()},
            "p95_ms_by_route": {k: v for k, v in latency.items() if v is not None},
            "summary": dg.MetadataValue.md(report.markdown()),
            "most_cited": dg.MetadataValue.md(report.cited_markdown()),
            "content_gaps": dg.MetadataValue.md(report.gaps_markdown()),
            "gap_count": len(report.gaps),
        }
    )
