"""The chat page in a real Chromium, `llm-twin ask`, and the traces every request leaves, summarised by
the `serving_report` asset."""

from __future__ import annotations

import subprocess

import dagster as dg
import httpx

from llm_twin_assets.crawling.render import CHROMIUM_ARGS, chromium_path
from llm_twin_assets.defs.resources import StoreResource
from llm_twin_assets.defs.serving.assets import serving_report
from llm_twin_assets.store import traces
from llm_twin_assets_tests.serving.conftest import FERN, Service
from llm_twin_assets_tests.test_cli import LLM_TWIN


def test_the_chat_page_streams_an_answer_with_its_sources(service: Service) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(service.url + "/")
            page.wait_for_selector("#author option[value='bob']", state="attached")
            page.select_option("#author", "ada")
            page.fill("#query", "How do you descale a kettle?")
            page.click("#send")
            page.wait_for_selector(".turn[data-done]", timeout=60_000)
            assert page.get_attribute(".turn", "data-done") == "true", page.inner_text(".turn")
            answer = page.inner_text(".turn .answer")
            meta = page.inner_text(".turn .meta")
            links = page.eval_on_selector_all(".turn .sources a", "els => els.map(e => e.href)")
            page.fill("#query", "Which of your plants lives in the steamy bathroom?")
            page.click("#send")
            page.wait_for_selector("#turns > .turn:nth-child(2)", state="attached")  # a new turn goes on top
            page.wait_for_selector("#turns > .turn:first-child[data-done]", timeout=60_000)
            newest = "#turns > .turn:first-child .sources li:first-child"
            marked = page.inner_text(f"{newest} mark.unit")
            around = page.inner_text(f"{newest} .snippet")
        finally:
            browser.close()
    assert answer.strip()
    assert "ada, release" in meta and "tokens" in meta
    assert links and all(link.startswith("https://ada.example/") for link in links)
    assert (
        marked == FERN and around.startswith("The houseplants") and FERN in around
    )  # the item, in its passage


def test_llm_twin_ask_prints_the_answer_and_its_sources(service: Service) -> None:
    done = subprocess.run(
        [
            LLM_TWIN,
            "ask",
            "How do you descale a kettle?",
            "--author",
            "ada",
            "--url",
            service.url,
            "--max-new-tokens",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ada's twin (release" in done.stdout and "https://ada.example/kettles" in done.stdout
    missing = subprocess.run(
        [LLM_TWIN, "ask", "hi", "--author", "zed", "--url", service.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "404" in missing.stderr and "unknown author 'zed'" in missing.stderr


def test_every_request_is_traced_and_the_report_summarises_them(service: Service) -> None:
    question = "What do you know about sourdough starters and rye?"  # nobody wrote about it: a content gap
    for _ in range(2):
        assert (
            httpx.post(
                f"{service.url}/rag",
                json={"query": question, "author": "ada", "max_new_tokens": 4},
                timeout=60,
            ).status_code
            == 200
        )
    assert (
        httpx.post(f"{service.url}/rag", json={"query": "hi", "author": "zed"}, timeout=60).status_code == 404
    )
    ok = httpx.post(
        f"{service.url}/rag",
        json={"query": "How do you descale a kettle?", "author": "ada", "max_new_tokens": 4},
        timeout=60,
    ).json()
    with service.database.connect() as conn:
        for _ in range(50):  # the service writes traces in the background, within a fraction of a second
            rows = traces.recent(conn, 500)
            if any(r["query"] == "How do you descale a kettle?" and r["tokens_out"] for r in rows[:3]):
                break
            conn.execute("SELECT pg_sleep(0.1)")
    mine = next(r for r in rows if r["query"] == "How do you descale a kettle?" and r["route"] == "/rag")
    assert mine["status"] == 200 and mine["author"] == "ada" and mine["release"] in (1, 2)
    assert mine["chunk_ids"] == [s["chunk_id"] for s in ok["sources"]]
    assert mine["tokens_out"] == ok["usage"]["completion_tokens"] and mine["tokens_in"] > 0
    assert {"retrieve", "queue", "generate"} <= set(mine["timings"]) and mine["latency_ms"] > 0
    assert any(r["status"] == 404 and r["author"] == "zed" and "unknown author" in r["error"] for r in rows)

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [serving_report],
            instance=instance,
            resources={"store": StoreResource()},
            run_config={"ops": {"serving_report": {"config": {"gap_similarity": 0.3}}}},
        )
    [event] = result.asset_materializations_for_node("serving_report")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["requests"] >= 4 and meta["rejected"] >= 1
    assert "/rag" in meta["p95_ms_by_route"]
    assert "| /rag |" in meta["summary"]
    assert "https://ada.example/kettles" in meta["most_cited"]
    assert "sourdough" in meta["content_gaps"] and "kettle" not in meta["content_gaps"]
