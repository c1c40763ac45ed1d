"""Teachers: the local model, and the OpenAI-compatible client over real HTTP against a local server
that answers with a real small model (or misbehaves on purpose)."""

import time
from pathlib import Path

import pytest

from llm_twin_assets.datasets.teachers import (
    EndpointOptions,
    LocalTeacher,
    OpenAITeacher,
    TeacherError,
    teacher_from_settings,
)
from llm_twin_assets.errors import ConfigError
from llm_twin_assets.llm import LoadedLM, generate_replies, load_causal_lm
from llm_twin_assets.models.registry import ModelRef
from llm_twin_assets.settings import get_settings
from llm_twin_assets_tests.datasets.openai_server import Behaviour, openai_server
from llm_twin_assets_tests.servers import free_port

CONVERSATIONS = [[{"role": "user", "content": f"Name a topic number {i}."}] for i in range(6)]


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_path: Path) -> LoadedLM:
    return load_causal_lm(ModelRef(str(tiny_model_path), True, "path"))


def endpoint(url: str, **overrides: object) -> OpenAITeacher:
    options = {
        "base_url": url,
        "model": "tiny",
        "concurrency": 3,
        "timeout_s": 10.0,
        "retries": 2,
        "backoff_s": 0.01,
    }
    return OpenAITeacher(EndpointOptions(**{**options, **overrides}))  # type: ignore[arg-type]


def test_local_teacher_batches_in_order_and_matches_one_by_one(tiny_lm: LoadedLM) -> None:
    teacher = LocalTeacher(tiny_lm, "local:tiny", batch_size=4)
    progress: list[tuple[int, int]] = []
    batched = teacher.complete(CONVERSATIONS, max_new_tokens=8, progress=lambda d, t: progress.append((d, t)))
    single = [generate_replies(tiny_lm, [c], max_new_tokens=8)[0] for c in CONVERSATIONS]
    assert [r.text for r in batched] == [r.text for r in single]  # left padding changes nothing
    assert progress == [(4, 6), (6, 6)]
    assert all(not r.finished for r in batched if len(r.text.split()) >= 8)


def test_openai_teacher_gets_the_models_answers_over_http(
    tiny_lm: LoadedLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    with openai_server(tiny_lm, Behaviour(delay_s=0.05)) as (url, seen):
        monkeypatch.setenv("TWIN_TEST_KEY", "sk-local-123")
        settings = get_settings(
            teacher_backend="openai",
            teacher_base_url=url,
            teacher_model="tiny",
            teacher_api_key_env="TWIN_TEST_KEY",
            teacher_concurrency=2,
        )
        teacher = teacher_from_settings(settings)
        replies = teacher.complete(CONVERSATIONS, max_new_tokens=8)
    local = [generate_replies(tiny_lm, [c], max_new_tokens=8)[0] for c in CONVERSATIONS]
    assert [r.text for r in replies] == [r.text for r in local]  # in order, the model's own words
    assert [r.finished for r in replies] == [r.finished for r in local]  # finish_reason 'length' read
    assert seen.requests == 6 and 1 <= seen.peak_in_flight <= 2  # bounded concurrency
    assert set(seen.authorization) == {"Bearer sk-local-123"}
    assert seen.bodies[0]["max_tokens"] == 8 and seen.bodies[0]["model"] == "tiny"


def test_retries_with_backoff_after_server_errors(tiny_lm: LoadedLM) -> None:
    with openai_server(tiny_lm, Behaviour(fail_first=2, fail_status=503)) as (url, seen):
        replies = endpoint(url, concurrency=1).complete(CONVERSATIONS[:1], max_new_tokens=4)
    assert seen.requests == 3 and len(replies) == 1


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Behaviour(always_status=503), r"failed after 3 attempts: HTTP 503"),
        (Behaviour(always_status=401), r"refused the request: HTTP 401"),
        (Behaviour(garbage=True), r"answered without an OpenAI chat completion"),
    ],
)
def test_a_failing_endpoint_fails_with_its_url(tiny_lm: LoadedLM, behaviour: Behaviour, message: str) -> None:
    with (
        openai_server(tiny_lm, behaviour) as (url, seen),
        pytest.raises(TeacherError, match=message) as error,
    ):
        endpoint(url).complete(CONVERSATIONS, max_new_tokens=4)
    assert f"{url}/chat/completions" in str(error.value)
    if behaviour.always_status == 401:
        assert seen.requests <= 3  # no retries of a refusal (the others in flight may have started)


def test_an_unreachable_endpoint_fails_after_retries_with_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # a port nobody listens on
    start = time.perf_counter()
    with pytest.raises(TeacherError, match=rf"{url}/chat/completions failed after 3 attempts: ConnectError"):
        endpoint(url, concurrency=1).complete(CONVERSATIONS[:1], max_new_tokens=4)
    assert (
        time.perf_counter() - start < 30
    )  # retried with short backoffs, well inside one 120 s request timeout


def test_the_openai_backend_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="LLM_TWIN_TEACHER_BASE_URL"):
        teacher_from_settings(get_settings(teacher_backend="openai", teacher_base_url=""))


def test_the_cached_teacher_asks_each_prompt_once_keeps_replies_as_they_arrive_and_closes(
    tiny_lm: LoadedLM, db
) -> None:  # type: ignore[no-untyped-def]
    from llm_twin_assets.datasets.teachers import CachedTeacher
    from llm_twin_assets.store.teacher_cache import PostgresReplyCache

    cache = PostgresReplyCache(db)
    with db.connect() as conn:
        conn.execute("TRUNCATE teacher_replies")
    with openai_server(tiny_lm, Behaviour(fail_first=0)) as (url, seen):
        teacher = CachedTeacher(endpoint(url), cache, "v-test", round_size=4)
        prompts = [*CONVERSATIONS, CONVERSATIONS[0]]  # one prompt twice: asked once
        first = teacher.complete(prompts, max_new_tokens=4)
        assert seen.requests == 6 and teacher.asked == 6 and first[0] == first[-1]
        again = teacher.complete(CONVERSATIONS[:3], max_new_tokens=4)
        assert seen.requests == 6 and again == first[:3] and teacher.reused == 3
        other_budget = teacher.complete(CONVERSATIONS[:1], max_new_tokens=5)  # the budget is in the key
        assert seen.requests == 7 and len(other_budget) == 1
        teacher.close()
        assert teacher.inner.client.is_closed  # type: ignore[attr-defined]
    with openai_server(tiny_lm, Behaviour(fail_after=2, fail_status=500)) as (url, seen):
        failing = CachedTeacher(endpoint(url, retries=0), cache, "v-test", round_size=2)
        fresh = [[{"role": "user", "content": f"Something new, number {i}."}] for i in range(4)]
        with pytest.raises(TeacherError):
            failing.complete(fresh, max_new_tokens=4)  # the service goes down after the first round
        failing.close()
    with db.connect() as conn:
        kept = conn.execute("SELECT count(*) FROM teacher_replies WHERE prompt_version = 'v-test'").fetchone()
    assert kept == (9,)  # the first round's two replies were kept: what was paid for before the failure
