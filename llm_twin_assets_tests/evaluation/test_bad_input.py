"""Bad input to an evaluation: a clear error naming it, and nothing recorded from partial results."""

import json
import re
from pathlib import Path

import polars as pl
import pytest

from llm_twin_assets.artifacts import LocalArtifactStore
from llm_twin_assets.datasets.building import INSTRUCT_SCHEMA
from llm_twin_assets.datasets.teachers import EndpointOptions, OpenAITeacher
from llm_twin_assets.datasets.versions import promote, publish
from llm_twin_assets.evaluation import EvaluationError
from llm_twin_assets.evaluation.job import EvalJob, Example, JudgeSettings, job_from_dict
from llm_twin_assets.evaluation.judge import judge
from llm_twin_assets.evaluation.prepare import JobOptions, build_job
from llm_twin_assets.evaluation.run import evaluate
from llm_twin_assets.llm import LoadedLM, load_causal_lm
from llm_twin_assets.models.registry import ModelRef
from llm_twin_assets.training.adapters import promote as promote_adapter
from llm_twin_assets.training.adapters import publish_adapter
from llm_twin_assets_tests.datasets.openai_server import Behaviour, openai_server


def fake_adapters(root: Path, author: str, instruct_version: str) -> tuple[str, str]:
    """An SFT and a DPO adapter manifest in the store (files present, never loaded here)."""
    store = LocalArtifactStore(root)
    folder = root / "fake-adapter"
    folder.mkdir(exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_job.yaml"):
        (folder / name).write_text("{}")
    details = {"base_model": "tiny-llama", "metrics": {"final_loss": 1.0}}
    sft = publish_adapter(
        store, author, "sft", "s1", folder, {**details, "dataset_version": instruct_version}
    )
    dpo = publish_adapter(
        store, author, "dpo", "d1", folder, {**details, "dataset_version": "p1", "parent_adapter": "s1"}
    )
    promote_adapter(store, sft)
    promote_adapter(store, dpo)
    return sft.version, dpo.version


def no_search(query: str, author: str, k: int) -> list[object]:
    return []


def test_a_dataset_without_a_test_split_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    rows = [
        {
            "id": f"r{i}",
            "author": "ada",
            "document_id": f"d{i}",
            "document_url": "u",
            "kind": "post",
            "source": "author",
            "instruction": f"Tell me about {i}.",
            "answer": f"{i} is fine.",
        }
        for i in range(4)
    ]
    version, _ = publish(store, "ada", "instruct", {"train": pl.DataFrame(rows, schema=INSTRUCT_SCHEMA)}, {})
    promote(store, version)
    fake_adapters(tmp_path, "ada", version.version)
    with pytest.raises(EvaluationError) as error:
        build_job(
            store,
            no_search,
            "ada",
            artifacts_url=str(tmp_path),
            work_root=str(tmp_path / "work"),
            embedding_model="bundled",
            options=JobOptions(),
        )
    message = str(error.value)
    assert f"instruct dataset {version.version} of 'ada'" in message and "sft adapter s1" in message
    assert "has no test split" in message and "test_ratio > 0" in message


def job(tmp_path: Path, **changes: object) -> EvalJob:
    values: dict[str, object] = {
        "author": "ada",
        "artifacts_url": str(tmp_path),
        "output_dir": str(tmp_path / "work"),
        "sft_version": "s1",
        "dpo_version": "d1",
        "base_model": "tiny-llama",
        "instruct_version": "i1",
        "preference_version": "p1",
        "embedding_model": "bundled",
        "examples": [Example("e1", "d1", "Tell me about retries.", "Retry with backoff.")],
        **changes,
    }
    return EvalJob(**values)  # type: ignore[arg-type]


def test_an_adapter_version_that_no_longer_exists_is_named(tmp_path: Path) -> None:
    fake_adapters(tmp_path, "ada", "i1")
    gone = job(tmp_path, dpo_version="d-deleted", evaluation_id="x1")
    with pytest.raises(
        EvaluationError, match=r"cannot evaluate 'ada''s twin: dpo adapter d-deleted .* does not exist"
    ):
        evaluate(gone)
    assert not (tmp_path / "evaluations").exists()  # no results written from a failed start


def test_a_job_file_with_no_examples_or_unknown_keys_is_refused() -> None:
    with pytest.raises(EvaluationError, match="no test examples"):
        job_from_dict({**job(Path("/x")).to_dict(), "examples": []}, "job.yaml")
    with pytest.raises(EvaluationError, match=r"unknown keys \['temperature'\]"):
        job_from_dict({**job(Path("/x")).to_dict(), "temperature": 0.7}, "job.yaml")
    assert job(Path("/a")).key() == job(Path("/b"), output_dir="/elsewhere").key()  # paths are not the id
    assert job(Path("/a")).key() != job(Path("/a"), max_new_tokens=64).key()  # settings are


@pytest.fixture
def tiny(tiny_model_path: Path) -> LoadedLM:
    return load_causal_lm(ModelRef(str(tiny_model_path), True, "path"))


def scripted_judge(messages: list[dict[str, str]]) -> str:
    """Accuracy 3 when the candidate is the reference, else 1; style always 2."""
    prompt = messages[-1]["content"]
    reference = re.search(r"<reference>\n(.*?)\n</reference>", prompt, re.DOTALL)
    candidate = re.search(r"<candidate>\n(.*?)\n</candidate>", prompt, re.DOTALL)
    same = reference and candidate and reference.group(1) == candidate.group(1)
    return json.dumps({"accuracy": 3 if same else 1, "style": 2, "reason": "scripted"})


def test_the_judge_reads_verdicts_and_a_failing_or_unreadable_judge_fails_the_evaluation(
    tiny: LoadedLM,
) -> None:
    settings = JudgeSettings(backend="openai", model="judge")
    args = (["Q1", "Q2"], ["the same", "the reference"], ["the same", "something else"])
    with openai_server(tiny, Behaviour(answer=scripted_judge)) as (url, seen):
        verdicts = judge(OpenAITeacher(EndpointOptions(url, "judge", retries=0)), settings, *args)
    assert [(v.accuracy, v.style) for v in verdicts] == [(3, 2), (1, 2)] and seen.requests == 2

    failing = pytest.raises(EvaluationError, match=r"the judge \(openai:judge@.*\) failed")
    with openai_server(tiny, Behaviour(always_status=500)) as (url, _), failing:
        judge(OpenAITeacher(EndpointOptions(url, "judge", retries=0, backoff_s=0.01)), settings, *args)

    unreadable = pytest.raises(EvaluationError, match="gave no readable verdict in 2 replies")
    with openai_server(tiny, Behaviour(answer=lambda m: "I liked it.")) as (url, _), unreadable:
        judge(OpenAITeacher(EndpointOptions(url, "judge", retries=0)), settings, *args)
