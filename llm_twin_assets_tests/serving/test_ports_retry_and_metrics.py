"""One default port for `llm-twin serve` and `llm-twin ask` (3001: the Dagster UI has 3000); under overload
the 503's Retry-After is the measured drain time (whole seconds, 1 to 60), not a guess many times too
long; the generation metrics (tokens, time to first token, queue wait, rows per step, refusals) are on
BentoML's /metrics of the real service."""

from __future__ import annotations

import inspect
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from typer.testing import CliRunner

from llm_twin_assets.cli import app
from llm_twin_assets.cli import serving as serving_cli
from llm_twin_assets_tests.serving.conftest import Service


def test_serve_and_ask_default_to_port_3001() -> None:
    assert inspect.signature(serving_cli.serve).parameters["port"].default == 3001
    assert inspect.signature(serving_cli.ask).parameters["url"].default == "http://127.0.0.1:3001"
    runner = CliRunner()
    for command in ("serve", "ask"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert result.exit_code == 0, result.output
        assert "3001" in result.output and "default: 3000" not in result.output


def _generate(service: Service, i: int, tokens: int = 64) -> tuple[httpx.Response, float]:
    payload = {"prompt": f"Count to {i}.", "author": "ada", "max_new_tokens": tokens}
    response = httpx.post(f"{service.url}/generate", json=payload, timeout=120)
    return response, time.monotonic()


def test_retry_after_is_the_measured_drain_time(service: Service) -> None:
    with ThreadPoolExecutor(4) as pool:  # the step time measured once, as on any service that has run
        assert all(r.status_code == 200 for r, _ in pool.map(lambda i: _generate(service, i), range(4)))

    with ThreadPoolExecutor(16) as pool:  # max_batch 4 + max_pending 4: the other 8 are refused
        answers = list(pool.map(lambda i: _generate(service, i), range(16)))
    refused = [(r, at) for r, at in answers if r.status_code == 503]
    served = [(r, at) for r, at in answers if r.status_code == 200]
    assert refused and served and len(refused) + len(served) == len(answers)
    drained_s = max(at for _, at in served) - min(at for _, at in refused)  # the queue, seen draining
    for response, _ in refused:
        retry = response.headers["Retry-After"]
        assert retry.isdigit() and 1 <= int(retry) <= 60, retry
        # whole seconds (rounded, at least 1): one second of rounding on top of 3x the drain seen
        assert int(retry) <= max(2.0, 3 * drained_s) + 1, (retry, drained_s)
        assert f"retry in {retry} s" in response.json()["error"]["message"]


def _samples(service: Service) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.url}/metrics", timeout=30).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("llm_twin_") and not sample.name.endswith("_created"):
                key = sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items()))
                values[key] = values.get(key, 0.0) + sample.value
    return values


def _settled(service: Service, timeout_s: float = 60) -> dict[str, float]:
    """The metrics once no generation is under way: a generation an earlier test left finishing (a client
    that went away, a stream cut short) would otherwise count in this test's window. Settled = every
    generation that got its first token has ended, twice in a row half a second apart."""

    def running(values: dict[str, float]) -> float:
        ended = sum(v for k, v in values.items() if k.startswith("llm_twin_generations_total|"))
        return values.get("llm_twin_time_to_first_token_seconds_count", 0.0) - ended

    deadline = time.monotonic() + timeout_s
    previous = _samples(service)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = _samples(service)
        if current == previous and running(current) <= 0:
            return current
        previous = current
    raise AssertionError(f"generations still running after {timeout_s} s: {running(previous)}")


def test_generation_metrics_are_exported(service: Service) -> None:
    before = _settled(service)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda i: _generate(service, i, 16)[0], range(3)))
    assert all(r.status_code == 200 for r in answers)
    tokens = sum(r.json()["usage"]["completion_tokens"] for r in answers)
    after = _samples(service)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert grew("llm_twin_generated_tokens_total") >= tokens > 0
    for histogram in ("time_to_first_token_seconds", "queue_wait_seconds"):
        assert grew(f"llm_twin_{histogram}_count") == 3, histogram
        assert grew(f"llm_twin_{histogram}_sum") > 0, histogram
    steps = grew("llm_twin_batch_rows_count")
    assert steps > 0 and grew("llm_twin_batch_rows_sum") >= steps  # at least one row per step
    assert after["llm_twin_batch_rows_sum"] / after["llm_twin_batch_rows_count"] > 1  # batches formed
    ended = sum(grew(f"llm_twin_generations_total|outcome={o}") for o in ("stop", "length"))
    assert ended == 3
    assert "llm_twin_overloaded_total" in after  # declared (and counted by the overload test)


@pytest.mark.slow
def test_a_second_service_on_the_machine_leaves_the_first_ones_metrics(service: Service) -> None:
    from llm_twin_assets_tests.servers import free_port
    from llm_twin_assets_tests.serving.conftest import start_service, stop_service

    answer, _ = _generate(service, 7, 4)
    assert answer.status_code == 200
    before = _settled(service)["llm_twin_generated_tokens_total"]
    assert before > 0
    second = start_service(free_port(), service.artifacts, service.work / "second-service.log")
    stop_service(second)
    assert _samples(service)["llm_twin_generated_tokens_total"] >= before  # not emptied by its start
