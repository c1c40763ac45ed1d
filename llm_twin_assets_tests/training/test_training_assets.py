"""sft_adapter and dpo_adapter through Dagster: the trainer runs as a subprocess launched by Pipes."""

from pathlib import Path

import dagster as dg
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.defs.resources import ArtifactsResource, ModelsResource, StoreResource, TrainerResource
from llm_twin_assets.defs.runner import materialize_for_author
from llm_twin_assets.defs.training.assets import dpo_adapter, sft_adapter
from llm_twin_assets.training.adapters import latest_adapter
from llm_twin_assets_tests.training.helpers import publish_small

TINY = {
    "ops": {
        "sft_adapter": {"config": {"profile": "tiny", "max_steps": 6}},
        "dpo_adapter": {"config": {"profile": "tiny", "max_steps": 4}},
    }
}


def run(  # type: ignore[no-untyped-def]
    tmp_path: Path, run_config: dict[str, object], assets=(sft_adapter, dpo_adapter), instance=None
) -> dg.ExecuteInProcessResult:
    return materialize_for_author(
        list(assets),
        "ada",
        {
            "store": StoreResource(),
            "models": ModelsResource(device="cpu"),
            "artifacts": ArtifactsResource(url=str(tmp_path / "artifacts")),
            "trainer": TrainerResource(),
        },
        instance=instance,
        run_config=run_config,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


@pytest.mark.slow
def test_both_adapters_materialize_through_pipes_with_metadata_and_are_reused(
    tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    instruct, preference = publish_small(tmp_path / "artifacts")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(tmp_path, TINY, instance=instance)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    sft, dpo = metadata(result, "sft_adapter"), metadata(result, "dpo_adapter")
    assert sft["dataset_version"] == instruct.version and dpo["dataset_version"] == preference.version
    assert sft["base_model"] == dpo["base_model"] == "tiny-llama"
    assert dpo["parent_adapter"] == sft["version"]
    for meta, steps in ((sft, 6), (dpo, 4)):
        assert meta["steps"] == steps and meta["reused"] is False and meta["promoted"] is True
        assert meta["examples_over_max_length"] == 0
        assert (
            float(meta["final_loss"]) > 0
            and float(meta["tokens_per_s"]) > 0
            and float(meta["peak_memory_mb"]) > 0
        )
        assert str(meta["loss_curve"]).startswith("![")
    store = LocalArtifactStore(tmp_path / "artifacts")
    assert latest_adapter(store, "ada", "dpo").version == dpo["version"]
    assert (store.root / "adapters/ada/sft" / str(sft["version"]) / "adapter_model.safetensors").exists()
    # Pipes carried the trainer's logs into the run
    assert any("step 6/6 loss" in m for m in messages) and any("step 4/4 loss" in m for m in messages)

    again = run(tmp_path, TINY)
    assert again.success
    assert metadata(again, "sft_adapter")["version"] == sft["version"]
    assert (
        metadata(again, "sft_adapter")["reused"] is True and metadata(again, "dpo_adapter")["reused"] is True
    )


@pytest.mark.slow
def test_a_failing_trainer_surfaces_its_last_log_lines(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    publish_small(tmp_path / "artifacts", rows=2)  # 1 training example: too few
    result = run(tmp_path, {"ops": {"sft_adapter": {"config": {"profile": "tiny"}}}}, assets=(sft_adapter,))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "the sft trainer failed" in message
    assert "has 1 training examples; at least 2 are needed" in message  # from train.log
