"""The served twin is the evaluated twin; authors share batches yet get their own adapters; releases and
rollbacks arrive without a restart; overload is refused quickly with Retry-After."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from llm_twin_assets.evaluation.releases import rollback
from llm_twin_assets.llm import generate_replies
from llm_twin_assets.models.registry import tiny_llama
from llm_twin_assets.prompting import rag_messages
from llm_twin_assets.settings import get_settings
from llm_twin_assets.training.adapters import adapter_folder
from llm_twin_assets.training.twin import load_twin
from llm_twin_assets_tests.serving.conftest import Service
from llm_twin_assets_tests.serving.helpers import Adapters, publish_twin, release

QUESTION = "How do you descale a kettle?"


def evaluated_answer(service: Service, adapters: Adapters, sources: list[dict[str, Any]], tokens: int) -> str:
    """What evaluation generates: base + SFT merged + DPO merged, greedy, with the same quoted passages."""
    cache = service.work / "cache"
    twin = load_twin(
        adapter_folder(service.store, adapters.sft, cache), adapter_folder(service.store, adapters.dpo, cache)
    )
    messages = rag_messages(QUESTION, [s["text"] for s in sources])
    return generate_replies(twin, [messages], max_new_tokens=tokens)[0].text


def rag(service: Service, author: str = "ada", tokens: int = 16) -> dict[str, Any]:
    response = httpx.post(
        f"{service.url}/rag",
        json={"query": QUESTION, "author": author, "max_new_tokens": tokens},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_for_release(service: Service, author: str, number: int, timeout_s: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        models = httpx.get(f"{service.url}/v1/models", timeout=10).json()["data"]
        if any(m["id"] == author and m["release"] == number for m in models):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"release {number} of {author} was not picked up in {timeout_s} s")


def test_served_answers_equal_the_evaluated_twins_and_follow_releases_and_rollbacks(service: Service) -> None:
    first = rag(service)
    assert first["release"] == 1
    assert first["answer"] == evaluated_answer(service, service.twins["ada"], first["sources"], 16)

    adapters = publish_twin(service.store, tiny_llama(get_settings()), service.work, "ada", 7)
    with service.database.connect() as conn:
        assert release(conn, "ada", adapters).release == 2
    waited = wait_for_release(service, "ada", 2)  # LISTEN/NOTIFY: the service polls only every 600 s
    assert waited < 30
    second = rag(service)
    assert second["release"] == 2
    assert second["answer"] == evaluated_answer(service, adapters, second["sources"], 16)
    assert second["answer"] != first["answer"]

    rollback(service.database, service.store, "ada", "1")
    wait_for_release(service, "ada", 1)
    again = rag(service)
    assert again["release"] == 1 and again["answer"] == first["answer"]


def test_two_authors_in_one_batch_get_their_own_adapters(service: Service) -> None:
    def generate(author: str | None) -> dict[str, Any]:
        payload = {"prompt": "Write one sentence about tea.", "author": author, "max_new_tokens": 12}
        return httpx.post(f"{service.url}/generate", json=payload, timeout=120).json()  # type: ignore[no-any-return]

    alone = {author: generate(author) for author in ("ada", "bob", None)}
    assert all(a["batch_size"] == 1 for a in alone.values())
    with ThreadPoolExecutor(3) as pool:
        together = dict(zip(("ada", "bob", None), pool.map(generate, ("ada", "bob", None)), strict=True))
    assert max(t["batch_size"] for t in together.values()) >= 2  # they did share forward passes
    for author in ("ada", "bob", None):
        assert together[author]["answer"] == alone[author]["answer"], author
    assert len({alone[a]["answer"] for a in alone}) == 3


def test_overload_is_refused_at_once_with_retry_after(service: Service) -> None:
    def generate(i: int) -> httpx.Response:
        payload = {"prompt": f"Count to {i}.", "author": "ada", "max_new_tokens": 64}
        return httpx.post(f"{service.url}/generate", json=payload, timeout=300)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(generate, range(16)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused and all(r.status_code in (200, 503) for r in responses)
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert "at capacity" in refused[0].json()["error"]["message"]
    assert all(r.elapsed.total_seconds() < 5 for r in refused)  # refused, not queued into a timeout


def test_a_rollback_to_a_release_missing_its_weights_is_refused_and_the_service_keeps_serving(
    service: Service,
) -> None:
    import pytest

    from llm_twin_assets.errors import TwinError
    from llm_twin_assets.store.releases import current

    before = rag(service)
    adapters = publish_twin(service.store, tiny_llama(get_settings()), service.work, "ada", 11)
    with service.database.connect() as conn:
        newer = release(conn, "ada", adapters).release
    wait_for_release(service, "ada", newer)
    rollback(service.database, service.store, "ada", str(before["release"]))
    wait_for_release(service, "ada", before["release"])
    weights = (
        service.artifacts / "adapters" / "ada" / "dpo" / adapters.dpo.version / "adapter_model.safetensors"
    )
    assert weights.is_file()
    weights.unlink()  # the release's DPO weights are gone from the artifact store

    with pytest.raises(TwinError, match="adapter_model.safetensors"):
        rollback(service.database, service.store, "ada", str(newer))
    with service.database.connect() as conn:
        still = current(conn, "ada")
    assert still is not None and still.release == before["release"]
    time.sleep(1)  # a release change would have arrived by now (LISTEN/NOTIFY)
    after = rag(service)
    assert after["release"] == before["release"] and after["answer"] == before["answer"]


def test_a_release_is_served_with_the_decoding_rules_its_evaluation_used(service: Service) -> None:
    """The evaluation stores its anti-loop rules; the service generates the release with exactly them:
    the served answer equals the evaluated one token for token (and differs from plain greedy here)."""
    import json

    from llm_twin_assets.decoding_rules import Decoding

    before = rag(service, tokens=48)
    adapters = publish_twin(service.store, tiny_llama(get_settings()), service.work, "ada", 13)
    with service.database.connect() as conn:
        number = release(conn, "ada", adapters).release
        conn.execute(  # what twin_evaluation records: the decoding every model generated with
            "UPDATE evaluations SET settings = %s WHERE id = %s",
            (json.dumps({"decoding": {"no_repeat_ngram_size": 3}}), f"eval-{adapters.dpo.version}"),
        )
        conn.execute("SELECT pg_notify('twin_releases', 'ada')")
    wait_for_release(service, "ada", number)
    served = rag(service, tokens=48)
    assert served["release"] == number
    cache = service.work / "cache"
    twin = load_twin(
        adapter_folder(service.store, adapters.sft, cache), adapter_folder(service.store, adapters.dpo, cache)
    )
    messages = rag_messages(QUESTION, [s["text"] for s in served["sources"]])
    ruled = generate_replies(twin, [messages], max_new_tokens=48, decoding=Decoding(no_repeat_ngram_size=3))
    plain = generate_replies(twin, [messages], max_new_tokens=48)
    assert served["answer"] == ruled[0].text
    assert ruled[0].text != plain[0].text  # the rule changed this random twin's greedy loop

    rollback(service.database, service.store, "ada", str(before["release"]))
    wait_for_release(service, "ada", before["release"])
