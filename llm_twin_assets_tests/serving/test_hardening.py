"""The real service against hostile and odd input (issue 22): a bad request is a short 4xx naming the field,
logged in one line, and never hurts the requests around it; a client that leaves stops its generation;
crawled URLs and text cannot inject into the page or the prompt; BentoML's client, the OpenAPI document
and the OpenAI route say what the service does."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import bentoml
import httpx
import openai
import pytest

from llm_twin_assets.store import traces
from llm_twin_assets_tests.serving.conftest import SERVICE_ENV, Service
from llm_twin_assets_tests.waiting import wait_until

ROUTES = {
    "/retrieve": {"query": "How often do you oil your bicycle chain?", "author": "ada"},
    "/rag": {"query": "How often do you oil your bicycle chain?", "author": "ada", "max_new_tokens": 4},
    "/generate": {"prompt": "Say hello.", "max_new_tokens": 4},
    "/v1/chat/completions": {
        "model": "ada",
        "messages": [{"role": "user", "content": "How often do you oil your bicycle chain?"}],
        "max_tokens": 4,
    },
}
TEXT_FIELD = {"/retrieve": "query", "/rag": "query", "/generate": "prompt", "/v1/chat/completions": "content"}


def post(service: Service, route: str, body: bytes | dict, timeout: float = 60) -> httpx.Response:  # type: ignore[type-arg]
    content = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return httpx.post(
        f"{service.url}{route}",
        content=content,
        headers={"content-type": "application/json"},
        timeout=timeout,
    )


def with_text(route: str, text: str) -> dict:  # type: ignore[type-arg]
    body = json.loads(json.dumps(ROUTES[route]))
    if route == "/v1/chat/completions":
        body["messages"][0]["content"] = text
    else:
        body[TEXT_FIELD[route]] = text
    return body


def message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


def test_a_bad_seed_or_temperature_joining_a_running_batch_is_refused_and_the_batch_goes_on(
    service: Service,
) -> None:
    request = {"prompt": "Write about bicycles.", "author": "bob", "max_new_tokens": 64}
    reference = post(service, "/generate", request).json()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = pool.submit(post, service, "/generate", request)
        time.sleep(0.1)  # the running request is in the forming batch (it waits 300 ms for company)
        started = time.monotonic()
        bad = [
            pool.submit(post, service, "/generate", {**request, "temperature": 0.7, "seed": 2**64}),
            pool.submit(post, service, "/generate", {**request, "temperature": 5e-324}),
            pool.submit(post, service, "/generate", {**request, "seed": -1}),
        ]
        refused = [f.result(timeout=30) for f in bad]
        refused_in = time.monotonic() - started
        answered = running.result(timeout=60)
    assert [r.status_code for r in refused] == [400, 400, 400] and refused_in < 5
    assert (
        "seed" in message(refused[0])
        and "temperature" in message(refused[1])
        and "seed" in message(refused[2])
    )
    assert answered.status_code == 200 and answered.json()["answer"] == reference["answer"]


@pytest.mark.parametrize("route", list(ROUTES))
def test_bad_text_and_deep_nesting_are_4xx_naming_the_problem(service: Service, route: str) -> None:
    nul = post(service, route, with_text(route, "oil\x00chain"))
    assert nul.status_code == 400 and "NUL" in message(nul) and TEXT_FIELD[route] in message(nul)
    raw = json.dumps(with_text(route, "SURROGATE")).replace("SURROGATE", "\\ud800 lone")
    surrogate = post(service, route, raw.encode())
    assert surrogate.status_code == 400 and "surrogate" in message(surrogate)
    invalid = post(service, route, json.dumps(with_text(route, "XX")).encode().replace(b"XX", b"\xff\xfe"))
    assert invalid.status_code == 400 and "not UTF-8" in message(invalid) and "0xff" in message(invalid)
    for depth in (1_000, 100_000):
        deep = post(service, route, b'{"x": ' + b"[" * depth + b"]" * depth + b"}")
        assert deep.status_code == 400 and "nested deeper" in message(deep), deep.text[:300]
        assert len(deep.content) < 1_000
    assert post(service, route, ROUTES[route]).status_code == 200  # the service is fine afterwards


def test_many_unknown_keys_get_a_short_400_and_one_log_line_each(service: Service) -> None:
    logged_before = service.log.stat().st_size
    keys = {f"{i:x}": 0 for i in range(100_000)}  # ~0.9 MB
    many = post(service, "/retrieve", {"query": "chains", **keys})
    assert many.status_code == 400 and len(many.content) < 1_000, len(many.content)
    assert "unknown field(s)" in message(many) and "99,997 more" in message(many)
    assert "query, author, top_k" in message(many)
    huge = post(service, "/retrieve", {"query": "chains", "pad": "x" * 2_000_000})
    assert huge.status_code == 413 and len(huge.content) < 1_000
    top_k = post(service, "/retrieve", {"query": "chains", "top_k": 0})
    assert top_k.status_code == 400 and "top_k" in message(top_k)
    time.sleep(0.5)
    with service.log.open("rb") as log:
        log.seek(logged_before)
        written = log.read().decode("utf-8", "replace")
    assert len(written) < 10_000, written[:2000]
    assert "Traceback" not in written
    assert written.count("POST /retrieve refused (400)") == 2 and "refused (413)" in written


def test_a_body_that_is_not_json_is_a_415_in_one_log_line(service: Service) -> None:
    logged_before = service.log.stat().st_size
    form = httpx.post(f"{service.url}/retrieve", data={"query": "chains"}, timeout=30)
    upload = httpx.post(f"{service.url}/rag", files={"query": ("q.txt", b"chains")}, timeout=30)
    raw = httpx.post(
        f"{service.url}/generate",
        content=b"\x00\x01",
        headers={"content-type": "application/octet-stream"},
        timeout=30,
    )
    for response, sent in ((form, "x-www-form-urlencoded"), (upload, "multipart/form-data"), (raw, "octet")):
        assert response.status_code == 415, (sent, response.status_code, response.text[:300])
        assert sent in message(response) and "application/json" in message(response)
    assert post(service, "/retrieve", ROUTES["/retrieve"]).status_code == 200
    time.sleep(0.5)
    with service.log.open("rb") as log:
        log.seek(logged_before)
        written = log.read().decode("utf-8", "replace")
    assert "Traceback" not in written, written[:2000]
    assert written.count("refused (415)") == 3


def test_one_bad_request_among_many_costs_no_other_trace(service: Service) -> None:
    queries = [f"Which oil suits chain number {i}?" for i in range(7)]
    bodies = [{"query": q, "author": "ada", "top_k": 1} for q in queries]
    bodies.insert(4, {"query": "chain\x00oil", "author": "ada"})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # the test service retrieves 4 at a time
        statuses = list(pool.map(lambda b: post(service, "/retrieve", b).status_code, bodies))
    assert statuses.count(200) == 7 and statuses.count(400) == 1, statuses
    with service.database.connect() as conn:
        wait_until(lambda: set(queries) <= {r["query"] for r in traces.recent(conn, 100)}, "every trace", 5)
    with service.database.connect() as conn:
        rows = traces.recent(conn, 100)
    assert any(r["status"] == 400 and "NUL" in (r["error"] or "") for r in rows)


@pytest.mark.parametrize("route", ["/generate", "/v1/chat/completions"])
def test_a_client_that_leaves_stops_its_generation(service: Service, route: str) -> None:
    marker = f"Leave early {route} {time.monotonic()}"
    body = with_text(route, marker)
    body["max_new_tokens" if route == "/generate" else "max_tokens"] = 64
    if route == "/generate":
        body.pop("author", None)
    payload = json.dumps(body).encode()
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        time.sleep(0.1)  # it waits in the forming batch (300 ms): the client leaves first
    with service.database.connect() as conn:
        mine = wait_until(
            lambda: [r for r in traces.recent(conn, 200) if r["query"] == marker], "the trace", 5
        )
    assert mine[0]["status"] == 499, mine
    assert not mine[0]["tokens_out"]  # nothing was generated for nobody


def test_a_script_url_is_never_a_link_and_the_page_has_a_strict_csp(service: Service) -> None:
    from playwright.sync_api import sync_playwright

    from llm_twin_assets.crawling.render import CHROMIUM_ARGS, chromium_path

    page_response = httpx.get(f"{service.url}/", timeout=30)
    csp = page_response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    hostile = " JaVaScRiPt://ada.example/%0aalert(document.domain)"
    with service.database.connect() as conn:
        conn.execute(
            "UPDATE cleaned_documents SET url = %s WHERE url = 'https://ada.example/bikes'", (hostile,)
        )
    try:
        question = "How often do you oil your bicycle chain?"
        body = post(service, "/rag", {"query": question, "author": "ada", "max_new_tokens": 4}).json()
        by_url = {s["document_url"]: s for s in body["sources"]}
        assert by_url[hostile]["link"] is None
        assert by_url["https://ada.example/kettles"]["link"] == "https://ada.example/kettles"
        violations: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.on(
                    "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
                )
                page.goto(service.url + "/")
                page.wait_for_selector("#author option[value='ada']", state="attached")
                page.select_option("#author", "ada")
                page.fill("#query", question)
                page.click("#send")
                page.wait_for_selector(".turn[data-done]", timeout=60_000)
                assert page.get_attribute(".turn", "data-done") == "true", page.inner_text(".turn")
                links = page.eval_on_selector_all(".turn .sources a", "els => els.map(e => e.href)")
                unlinked = page.eval_on_selector_all(
                    ".turn .sources .unlinked", "els => els.map(e => e.title)"
                )
                # the page itself checks too: a source the server calls a link is still refused
                checked = page.evaluate(
                    "[safeLink('javascript:alert(1)'), safeLink(' java\\tscript:x'), safeLink('data:text/html,x'),"
                    " safeLink('VBScript:x'), safeLink('https://ok.example/')]"
                )
            finally:
                browser.close()
    finally:
        with service.database.connect() as conn:
            conn.execute(
                "UPDATE cleaned_documents SET url = 'https://ada.example/bikes' WHERE url = %s", (hostile,)
            )
    assert links and all(link.startswith("https://ada.example/") for link in links)
    assert unlinked == [hostile]
    assert checked == [None, None, None, None, "https://ok.example/"]
    assert not violations, violations


def test_bentomls_client_calls_rag_and_streams(service: Service) -> None:
    with bentoml.SyncHTTPClient(service.url, timeout=60) as client:
        whole = client.rag(
            query="How often do you oil your bicycle chain?", author="ada", max_new_tokens=4, stream=True
        )
        assert whole["answer"] is not None and whole["sources"]
        text = "".join(
            client.rag_stream(
                query="How often do you oil your bicycle chain?", author="ada", max_new_tokens=4
            )
        )
        events = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: ")]
        assert events[0]["type"] == "sources" and events[-1]["type"] == "done"
        generated = "".join(client.generate_stream(prompt="Say hello.", max_new_tokens=4))
        assert '"type": "done"' in generated
        refused = "".join(client.generate_stream(prompt="Say hello.", author="zed", max_new_tokens=4))
        assert '"type": "error"' in refused and "zed" in refused


def test_the_openapi_document_states_the_enforced_limits_and_every_route(service: Service) -> None:
    spec = httpx.get(f"{service.url}/docs.json", timeout=30).json()
    assert {"/rag", "/retrieve", "/generate", "/v1/chat/completions", "/v1/models", "/"} <= set(spec["paths"])
    cap_tokens = int(SERVICE_ENV["LLM_TWIN_SERVE_MAX_NEW_TOKENS"])
    rag = spec["paths"]["/rag"]["post"]
    fields = rag["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert (
        fields["top_k"]["maximum"] == 20
    )  # LLM_TWIN_SERVE_MAX_TOP_K's default: what the service refuses above
    assert fields["max_new_tokens"]["maximum"] == cap_tokens
    assert post(service, "/retrieve", {"query": "chains", "top_k": 21}).status_code == 400
    assert post(service, "/retrieve", {"query": "chains", "top_k": 20}).status_code == 200
    assert "text/event-stream" in rag["responses"]["200"]["content"]
    chat = spec["components"]["schemas"]["ChatRequest"]["properties"]
    assert {"stop", "max_tokens", "max_completion_tokens", "seed", "user", "frequency_penalty"} <= set(chat)
    not_found = post(service, "/rag", {"query": "hi", "author": "zed"})
    schema_ref = rag["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    body = not_found.json()
    assert not_found.status_code == 404
    assert set(schema["required"]) <= set(body)
    assert set(schema["properties"]["error"]["required"]) <= set(body["error"])


def test_the_openai_route_honours_stop_tokens_seed_and_names_what_it_refuses(service: Service) -> None:
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", timeout=60, max_retries=0)
    messages = [{"role": "user", "content": "How often do you oil your bicycle chain?"}]
    sampled = {"temperature": 1.0, "seed": 5}
    reference = client.chat.completions.create(model="ada", messages=messages, max_tokens=24, **sampled)  # type: ignore[arg-type]
    text = reference.choices[0].message.content or ""
    start = next(
        i
        for i in range(len(text) // 3, len(text) - 2)
        if text[i : i + 2].strip() and text.find(text[i : i + 2]) == i
    )
    stop = text[start : start + 2]
    stopped = client.chat.completions.create(
        model="ada", messages=messages, max_tokens=24, stop=[stop], **sampled
    )  # type: ignore[arg-type]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == text[: text.index(stop)].strip()
    streamed = client.chat.completions.create(
        model="ada",
        messages=messages,
        max_completion_tokens=24,
        stop=stop,
        stream=True,
        **sampled,  # type: ignore[arg-type]
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).strip()
        == text[: text.index(stop)].strip()
    )
    same = client.chat.completions.create(
        model="ada", messages=messages, max_completion_tokens=24, user="u1", **sampled
    )  # type: ignore[arg-type]
    assert same.choices[0].message.content == text  # max_completion_tokens, seed honoured; user ignored
    assert same.choices[0].message.model_extra and same.choices[0].message.model_extra["sources"]
    for extra, field in (
        ({"max_tokens": 1000}, "max_tokens is 1000"),
        ({"max_completion_tokens": 1000}, "max_completion_tokens is 1000"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": 1.0}, "presence_penalty"),
        ({"n": 2}, "n:"),
        ({"seed": 2**64}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="ada", messages=messages, **extra)  # type: ignore[arg-type]
        assert field in str(refused.value), (extra, str(refused.value))
