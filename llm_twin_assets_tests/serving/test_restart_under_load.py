"""A fault test: the service restarted while clients keep asking. Every client gets either the right
answer or an error — never a wrong answer, a half answer passed off as whole, or a hang."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from llm_twin_assets_tests.servers import free_port
from llm_twin_assets_tests.serving.conftest import Service, start_service, stop_service

REQUEST = {"prompt": "Write about bicycles.", "author": "bob", "max_new_tokens": 16}


@pytest.mark.slow
def test_a_restart_under_load_gives_only_right_answers_or_errors(service: Service) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = service.work / "restart.log"
    proc = start_service(port, service.artifacts, log)
    reference = httpx.post(f"{url}/generate", json=REQUEST, timeout=60).json()["answer"]
    outcomes: list[tuple[float, str, str | None]] = []  # (time, "ok" | "error" | "WRONG", detail)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                try:
                    response = http.post(f"{url}/generate", json=REQUEST)
                except httpx.HTTPError as exc:
                    outcomes.append((time.monotonic(), "error", type(exc).__name__))
                    time.sleep(0.2)
                    continue
                if response.status_code != 200:
                    outcomes.append((time.monotonic(), "error", str(response.status_code)))
                    time.sleep(0.2)
                elif response.json()["answer"] == reference:
                    outcomes.append((time.monotonic(), "ok", None))
                else:
                    outcomes.append((time.monotonic(), "WRONG", response.text[:200]))

    clients = [threading.Thread(target=client) for _ in range(3)]
    try:
        for thread in clients:
            thread.start()
        time.sleep(3)
        restarted_at = time.monotonic()
        stop_service(proc)  # SIGTERM: in-flight requests finish, new ones are refused
        proc = start_service(port, service.artifacts, log)
        back_at = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=120)
        stop_service(proc)
    wrong = [o for o in outcomes if o[1] == "WRONG"]
    assert not wrong, wrong[:3]
    assert any(t < restarted_at and kind == "ok" for t, kind, _ in outcomes)  # served before
    assert any(t > back_at and kind == "ok" for t, kind, _ in outcomes)  # and after the restart
    assert any(kind == "error" for _, kind, _ in outcomes)  # the restart was felt, as errors only
    assert all(not t.is_alive() for t in clients)  # nobody hung
