"""A second real author for the twin-quality bench: Mendel Cooper, through his *Advanced Bash-Scripting
Guide* as Debian ships it (``apt-get install abs-guide``: HTML pages under
``/usr/share/doc/abs-guide/html``). Twenty of its chapters, chosen for Cooper's own prose (tutorial
chapters, his tips, gotchas and endnotes; not the contributed scripts): 20 pages, including
their example scripts (40,952 words as the pages read, markup stripped).

The pages are served on 127.0.0.1 (a fixed port, so a re-run crawls the same URLs) into a data home of
their own (``.llm_twin_bench/abs``: the demo's home is left alone), and built up to the datasets with the
build settings below (at most 64 passages, 30% of the documents held out so that the test split holds
at least 10 examples; uncapped, the two datasets of a 20-page author take about 45 minutes on 2 cores).
Then the lever table runs there:

    .venv/bin/python bench/second_author.py            # crawl, features, datasets (about 10 minutes)
    LLM_TWIN_HOME=.llm_twin_bench/abs LLM_TWIN_AUTHORS_DIR=.llm_twin_bench/abs/authors \
        .venv/bin/python bench/twin_quality.py --author mendel

The dataset step's timings (instruct and preference, the pairs kept per instruction) are printed and saved
in ``bench/results/second-author-datasets.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Report

SOURCE = Path("/usr/share/doc/abs-guide/html")
PAGES = [
    "why-shell.html",
    "sha-bang.html",
    "quoting.html",
    "exit-status.html",
    "variables.html",
    "tests.html",
    "loops.html",
    "functions.html",
    "localvar.html",
    "here-docs.html",
    "io-redirection.html",
    "subshells.html",
    "commandsub.html",
    "parameter-substitution.html",
    "debugging.html",
    "gotchas.html",
    "assortedtips.html",
    "writingscripts.html",
    "endnotes.html",
    "aboutauthor.html",
]
PORT = 8766
BUILD = """build:
  instruct_dataset:
    max_passages: 64
    max_new_tokens: 40
    min_examples: 10
    test_ratio: 0.3
  preference_dataset:
    max_new_tokens: 256
    min_examples: 8
  sft_adapter:
    profile: demo
  dpo_adapter:
    profile: demo
"""
LLM_TWIN = str(Path(sys.executable).with_name("llm-twin"))


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One ``llm-twin`` command (output through); its wall and CPU seconds (children included)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([LLM_TWIN, *args], env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"llm-twin {' '.join(args)} failed ({done.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=".llm_twin_bench/abs", help="the data home to build in")
    args = parser.parse_args()
    missing = [p for p in PAGES if not (SOURCE / p).is_file()]
    if missing:
        raise SystemExit(f"{SOURCE}: missing {missing}: apt-get install abs-guide")
    from llm_twin_assets.demo import serve_directory

    home = Path(args.home).resolve()
    authors = home / "authors"
    authors.mkdir(parents=True, exist_ok=True)
    links = "".join(f"- http://127.0.0.1:{PORT}/{page}\n" for page in PAGES)
    (authors / "mendel.yaml").write_text(f"name: Mendel Cooper\nlinks:\n{links}{BUILD}")
    env = {
        **os.environ,
        "LLM_TWIN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "LLM_TWIN_AUTHORS_DIR": str(authors),
        "LLM_TWIN_ALLOW_PRIVATE_NETWORKS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    (home / "dagster").mkdir(exist_ok=True)
    report = Report("second-author-datasets")
    report.note("author", "Mendel Cooper, Advanced Bash-Scripting Guide (Debian abs-guide), 20 chapters")
    run(["db", "start"], env)
    run(["author", "add", str(authors / "mendel.yaml")], env)
    with serve_directory(SOURCE, port=PORT):
        wall, cpu = run(
            [
                "materialize",
                "--author",
                "mendel",
                "--select",
                "build_settings,raw_documents,cleaned_documents,chunks,chunk_embeddings",
            ],
            env,
        )
    report.add(step="crawl + features", wall_minutes=round(wall / 60, 1), cpu_minutes=round(cpu / 60, 1))
    from llm_twin_assets.artifacts import LocalArtifactStore
    from llm_twin_assets.datasets.versions import latest

    store = LocalArtifactStore(home / "artifacts")
    for asset, name in (("instruct_dataset", "instruct"), ("preference_dataset", "preference")):
        wall, cpu = run(["materialize", "--author", "mendel", "--select", asset], env)
        version = latest(store, "mendel", name)
        extras = {k: v["rows"] for k, v in version.manifest.get("extras", {}).items()}
        report.add(
            step=asset,
            wall_minutes=round(wall / 60, 1),
            cpu_minutes=round(cpu / 60, 1),
            rows=version.rows,
            **extras,
        )
    instruct, preference = latest(store, "mendel", "instruct"), latest(store, "mendel", "preference")
    asked = sum(instruct.rows.values())
    kept = sum(preference.rows.values())
    report.note(
        "pairs_per_instruction", f"{kept} pairs for {asked} instructions ({kept / max(1, asked):.0%})"
    )
    report.save()


if __name__ == "__main__":
    main()
