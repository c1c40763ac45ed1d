"""Evaluation of an author's twin against its base model, on held-out text, and the releases it gates.

Plain library code (no Dagster): ``job`` names what is evaluated, ``generation`` runs the models
(out of process, on the training launcher), ``stylometry``, ``authorship`` and ``perplexity`` are the
metrics, ``gate`` decides, ``releases`` records what may be served.
"""

from llm_twin_assets.errors import TwinError


class EvaluationError(TwinError):
    """An evaluation that cannot be made as asked; the message names the input and the fix."""
