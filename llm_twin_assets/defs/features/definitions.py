import dagster as dg

from llm_twin_assets.defs.features import checks
from llm_twin_assets.defs.features.assets import chunk_embeddings, chunks, cleaned_documents

FEATURE_ASSETS = [cleaned_documents, chunks, chunk_embeddings]
FEATURE_CHECKS = [
    checks.chunks_not_empty,
    checks.chunks_within_token_limit,
    checks.chunks_have_documents,
    checks.embeddings_complete_and_unit_norm,
    checks.embeddings_from_configured_model,
    checks.units_complete_and_unit_norm,
    checks.units_are_spans_of_their_chunk,
]

defs = dg.Definitions(assets=FEATURE_ASSETS, asset_checks=FEATURE_CHECKS)
