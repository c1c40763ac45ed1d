"""Continuous batching on the tiny Llama with real LoRA adapters: rows that join a running batch (with
prompts longer and shorter than its cache), leave early, or are cancelled produce exactly the tokens they
produce alone; the concatenated SFT+DPO adapter is the merged twin evaluation measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_twin_assets.llm import generate_replies
from llm_twin_assets.serving.decoding import GenerationRequest, RunningBatch, decode
from llm_twin_assets.serving.twins import BASE, TwinModels
from llm_twin_assets.training.twin import load_twin
from llm_twin_assets_tests.serving.helpers import make_adapter

ATTENTION = ("q_proj", "v_proj")
WIDER = ("q_proj", "v_proj", "down_proj")


@pytest.fixture(scope="module")
def twins(
    tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TwinModels, dict[str, tuple[Path, Path]]]:
    work = tmp_path_factory.mktemp("decoding")
    folders = {
        author: (
            make_adapter(tiny_model_path, work / f"{author}-sft", seed, 8, ATTENTION),
            make_adapter(tiny_model_path, work / f"{author}-dpo", seed + 50, 4, WIDER),
        )
        for author, seed in (("ada", 11), ("bob", 12))
    }
    models = TwinModels(tiny_model_path)
    for author, (sft, dpo) in folders.items():
        models.install(author, 1, sft, dpo)
    return models, folders


def request(models: TwinModels, author: str | None, text: str, tokens: int = 12) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], models.adapter_for(author), tokens)


def alone(models: TwinModels, author: str | None, text: str, tokens: int = 12) -> list[int]:
    """PEFT's per-row path (``adapter_names``), one request: the reference."""
    r = request(models, author, text, tokens)
    decode(models.lm, models.forward_model, [r])
    return r.token_ids


def test_rows_joining_and_leaving_a_running_batch_get_their_own_tokens(twins) -> None:  # type: ignore[no-untyped-def]
    models, _ = twins
    long_prompt = "Tell me everything about kettles, descaling, citric acid, and tea. " * 3
    cases = [
        ("ada", "Hi.", 12),
        ("bob", long_prompt, 12),
        (None, "Tea?", 3),
        ("ada", "Write about bicycles.", 12),
    ]
    expected = [alone(models, a, t, n) for a, t, n in cases]
    # as the service runs it: one adapter -> PEFT's plain path, mixed rows -> the per-row path
    batch = RunningBatch(models.lm, lambda: models.forward_model, models.route)
    rows = [request(models, a, t, n) for a, t, n in cases]
    batch.admit([rows[0]])  # a short prompt runs alone for a while
    for _ in range(3):
        batch.step()
    batch.admit([rows[1], rows[2]])  # a prompt longer than the running cache, and one that ends soon
    sizes = []
    while len(batch):
        sizes.append(len(batch))
        if len(sizes) == 4:
            batch.admit([rows[3]])  # joins after a row left
        batch.step()
    assert max(sizes) >= 3 and rows[2].finish_reason == "length"
    for row, tokens in zip(rows, expected, strict=True):
        assert row.token_ids == tokens
        assert row.done.is_set() and row.error is None
    assert len({tuple(t) for t in expected}) == len(expected)


def test_a_cancelled_row_leaves_and_the_others_go_on(twins) -> None:  # type: ignore[no-untyped-def]
    models, _ = twins
    batch = RunningBatch(models.lm, lambda: models.forward_model, models.route)
    keep, leave = request(models, "ada", "Hi.", 10), request(models, "bob", "Hello.", 10)
    batch.admit([keep, leave])
    leave.cancel()
    while len(batch):
        batch.step()
    assert leave.finish_reason == "cancelled" and len(leave.token_ids) == 1
    assert keep.token_ids == alone(models, "ada", "Hi.", 10)


def test_the_concatenated_adapter_is_the_merged_twin(twins) -> None:  # type: ignore[no-untyped-def]
    models, folders = twins
    messages = [{"role": "user", "content": "Write about bicycles."}]
    merged = load_twin(*folders["bob"])
    reference = generate_replies(merged, [messages], max_new_tokens=12)[0].text
    for _ in range(2):  # the plain path (bob's adapter active), then the base, then bob again
        served = request(models, "bob", "Write about bicycles.")
        decode(models.lm, models.forward_model, [served], models.route)
        assert served.text.strip() == reference
        base = request(models, None, "Write about bicycles.")
        decode(models.lm, models.forward_model, [base], models.route)
        assert base.token_ids == alone(models, None, "Write about bicycles.")
    assert models.installed["bob"].rank == 12  # 8 (SFT) + 4 (DPO)
    assert models.adapter_for(None) == BASE
