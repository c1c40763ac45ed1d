"""The per-author asset: one decorator carries what every such asset repeated.

``@author_asset(...)`` is ``@dg.asset(partitions_def=authors_partitions, ...)`` whose body runs inside
:func:`clear_failures`: a ``TwinError`` becomes a ``dg.Failure`` naming the problem (no retry, the
database password scrubbed), a transient one (the database restarting, a dropped connection) a retry.
Everything else (``deps``, ``group_name``, ``automation_condition``, ``check_specs``…) passes through.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import dagster as dg

from llm_twin_assets.defs.failures import clear_failures
from llm_twin_assets.defs.partitions import authors_partitions


def author_asset(**asset_kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with clear_failures():
                return fn(*args, **kwargs)

        # Dagster reads the parameters (context, config class, resources) from the signature; the
        # annotations are strings under `from __future__ import annotations`, resolved here in the
        # asset's own module, where its config class and resources are defined.
        run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
        return dg.asset(partitions_def=authors_partitions, **asset_kwargs)(run)

    return decorate
