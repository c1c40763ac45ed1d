"""A local OpenAI-compatible ``/v1/chat/completions`` server that answers with a real (small) model.

It can also misbehave on purpose: fail the first N requests, always answer one status, answer
something that is not a chat completion. It records what it saw (requests, auth headers, peak
concurrency) so tests can assert on the client's behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llm_twin_assets.llm import LoadedLM, Reply, generate_replies


@dataclass
class Behaviour:
    fail_first: int = 0
    fail_after: int | None = None
    """Answer requests after this many with ``fail_status`` (a service that goes down mid-run)."""
    fail_status: int = 503
    always_status: int | None = None
    garbage: bool = False
    delay_s: float = 0.0
    answer: Callable[[list[dict[str, str]]], str] | None = None
    """Answer with this function of the messages instead of the model (a scripted judge, say)."""


@dataclass
class Seen:
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    authorization: list[str] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)


def _handler(
    lm: LoadedLM | None, behaviour: Behaviour, seen: Seen, lock: threading.Lock, model_lock: threading.Lock
):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, payload: object) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._done()  # before the last byte: a client that got it may send its next request at once
            self.wfile.write(body)

        def _done(self) -> None:
            with lock:
                if not getattr(self, "counted_out", False):
                    self.counted_out = True
                    seen.in_flight -= 1

        def do_POST(self) -> None:
            with lock:
                seen.requests += 1
                number = seen.requests
                seen.in_flight += 1
                seen.peak_in_flight = max(seen.peak_in_flight, seen.in_flight)
                seen.authorization.append(self.headers.get("Authorization", ""))
            try:
                self._answer(number)
            finally:
                self._done()

        def _answer(self, number: int) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                seen.bodies.append(body)
            time.sleep(behaviour.delay_s)
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if behaviour.always_status is not None:
                return self._send(behaviour.always_status, {"error": {"message": "configured to fail"}})
            if number <= behaviour.fail_first or (
                behaviour.fail_after is not None and number > behaviour.fail_after
            ):
                return self._send(behaviour.fail_status, {"error": {"message": "overloaded, try again"}})
            if behaviour.garbage:
                return self._send(200, b"<html>not an API</html>")
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self._send(400, {"error": {"message": "messages must be a non-empty list"}})
            if behaviour.answer is not None:
                reply = Reply(behaviour.answer(messages), True)
            else:
                assert lm is not None
                with model_lock:
                    [reply] = generate_replies(lm, [messages], max_new_tokens=int(body.get("max_tokens", 64)))
            if body.get("stream"):
                return self._stream(number, body, reply)
            self._send(
                200,
                {
                    "id": f"chatcmpl-{number}",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.text},
                            "finish_reason": "stop" if reply.finished else "length",
                        }
                    ],
                },
            )

        def _stream(self, number: int, body: dict[str, object], reply: Reply) -> None:
            """Server-sent events as OpenAI streams them: a chunk per word, the finish, usage, [DONE]."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            words = reply.text.split(" ")
            head = {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model"),
            }
            events = [
                {
                    **head,
                    "choices": [
                        {"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}
                    ],
                }
                for i, w in enumerate(words)
            ]
            finish = "stop" if reply.finished else "length"
            events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            events.append(
                {
                    **head,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 7,
                        "completion_tokens": len(words),
                        "total_tokens": 7 + len(words),
                    },
                }
            )
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self._done()  # before the end marker, as for a plain answer
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler


@contextmanager
def openai_server(lm: LoadedLM | None, behaviour: Behaviour | None = None) -> Iterator[tuple[str, Seen]]:
    """Serve on 127.0.0.1 (a free port); yields the base URL (ending in /v1) and what was seen. ``lm`` may
    be None only for a scripted server (``behaviour.answer`` set)."""
    if lm is None and (behaviour is None or behaviour.answer is None):
        raise ValueError("a server without a model must be scripted: set behaviour.answer")
    seen = Seen()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), _handler(lm, behaviour or Behaviour(), seen, threading.Lock(), threading.Lock())
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
