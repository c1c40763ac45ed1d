"""twin_evaluation -> twin_release: what the service and ``llm-twin generate`` serve, recorded only after
the quality gate passed."""

import dagster as dg

from llm_twin_assets.defs.authoring import author_asset
from llm_twin_assets.defs.automation import follows_changed_inputs
from llm_twin_assets.defs.evaluation.assets import twin_evaluation
from llm_twin_assets.defs.resources import ArtifactsResource, StoreResource


@author_asset(
    deps=[twin_evaluation],
    group_name="evaluation",
    kinds={"postgres"},
    automation_condition=follows_changed_inputs(),
    description="Releases the author's twin (a numbered row in `releases`, made current) once its evaluation "
    "passed the quality gate; `llm-twin generate` and the service serve the current release only.",
)
def twin_release(
    context: dg.AssetExecutionContext, store: StoreResource, artifacts: ArtifactsResource
) -> dg.MaterializeResult:
    from llm_twin_assets.evaluation.releases import release_latest

    author = context.partition_key
    release, new = release_latest(store.database(), artifacts.store(), author)
    context.log.info(
        f"{author}'s twin {'released' if new else 'is current again'} as release {release.release} "
        f"(sft {release.sft_version}, dpo {release.dpo_version})"
    )
    return dg.MaterializeResult(
        metadata={
            "release": release.release,
            "new": new,
            "sft_version": release.sft_version,
            "dpo_version": release.dpo_version,
            "instruct_version": release.instruct_version,
            "preference_version": release.preference_version,
            "evaluation_id": release.evaluation_id,
            "released_at": release.released_at.isoformat(timespec="seconds"),
        },
        data_version=dg.DataVersion(f"{release.release}:{release.dpo_version}"),
    )
