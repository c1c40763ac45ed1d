"""The labelled retrieval corpus: long technical Markdown documents that ship inside installed packages.

Each document is the long description (the README, for some followed by the changelog) that a package
carries in its ``*.dist-info/METADATA``, after the headers. The text is read at run time from the
packages installed in this environment (never committed, never downloaded) and checked against the
sha256 recorded below: ``bench/retrieval_questions.yaml`` quotes these exact texts, so a document that
is missing or whose text changed (another version installed) is an error, not a silent drift.

All packages are pinned in ``pyproject.toml`` or are dependencies of pinned packages. Four documents
are changelogs (pydantic, charset-normalizer, python-dotenv, httpcore), on purpose: similar release
notes must be told apart. The pydantic one is cut before its ``v2.12.0b1`` section to keep the corpus
about 400 KB (several hundred chunks).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import dataclass

__all__ = ["CorpusDocument", "CorpusError", "corpus"]


@dataclass(frozen=True)
class CorpusDocument:
    id: str  # short stable slug, what the questions name
    title: str
    source: str  # package==installed version, and the path inside its distribution
    text: str  # Markdown


class CorpusError(RuntimeError):
    """A document's package is missing, or its text is not the text the questions were written for."""


@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    package: str
    version: str  # the version the questions were written for
    sha256: str  # of the document's text
    until: str | None = None  # the text is cut before this line, when set


_SPECS = (
    _Spec(
        "pydantic-changelog",
        "Pydantic: README and changelog, v2.12.0 to v2.14.4",
        "pydantic",
        "2.14.4",
        "7b9b9bb75fdef794805df7ab860bcf89d2dfd7eb16ef798c0abb5fa9f434d443",
        until="## v2.12.0b1 ",
    ),
    _Spec(
        "charset-normalizer-changelog",
        "Charset Normalizer: README and changelog",
        "charset-normalizer",
        "3.5.3",
        "b6f84bf3da7d039bdc55c0ff052e20f335510eeeb05df8c75d81ee6a15fea8cd",
    ),
    _Spec(
        "python-dotenv-changelog",
        "python-dotenv: README and changelog",
        "python-dotenv",
        "1.2.4",
        "5abfa34b50e77df4ea886d43147c0a14aa5b13b8f092673d8a6ea46346bab9e8",
    ),
    _Spec(
        "httpcore-changelog",
        "HTTP Core: README and changelog",
        "httpcore",
        "1.0.9",
        "84d108382a642f94354bc2272b3a8d732bc49ae21dbf3a2868e31705b0c047d9",
    ),
    _Spec(
        "pgvector-readme",
        "pgvector-python",
        "pgvector",
        "0.5.1",
        "60ec429cc0f365a5430f9f965d12d850cd0788781719d338441f73f88b29e2f4",
    ),
    _Spec(
        "universal-pathlib-readme",
        "Universal Pathlib",
        "universal_pathlib",
        "0.3.10",
        "52e36ad58e31f15875b47dd3f52c5172d2a79722f80772b3d0e39db7e48a7f5b",
    ),
    _Spec(
        "tabulate-readme",
        "python-tabulate",
        "tabulate",
        "0.10.0",
        "29ab1e42f9839cc15815099062a1f455124fe95c9dff9cad16f37e51c4c1f19c",
    ),
    _Spec(
        "threadpoolctl-readme",
        "Thread-pool Controls (threadpoolctl)",
        "threadpoolctl",
        "3.8.0",
        "65d5a3396310157de1ad4c9250905c8711cea5c484cbe629f7a9f7206683bbc9",
    ),
    _Spec(
        "torch-readme",
        "PyTorch",
        "torch",
        "2.13.0+cpu",
        "51a5d8c921a82a36ea72a26f86f8a9334ee8268f499e5a7ad74c5005f98ee0d9",
    ),
    _Spec(
        "sentence-transformers-readme",
        "Sentence Transformers",
        "sentence-transformers",
        "6.2.0",
        "bdc79bef246a7c7a290b297abea3ac6bf5958481b923b177287a47c0b471ea5e",
    ),
    _Spec(
        "courlan-readme",
        "coURLan: clean, filter, normalize, and sample URLs",
        "courlan",
        "1.4.0",
        "236428ccf1deeb3877c4c867239ef23daf020c4ed22c69e73f298a7b3c5dfd76",
    ),
    _Spec(
        "typer-readme",
        "Typer",
        "typer",
        "0.29.2",
        "cdecf17dbc4c36e82581a6365a39a9ab3d62abdd24b93d094cff987623414dbf",
    ),
    _Spec(
        "annotated-types-readme",
        "annotated-types",
        "annotated-types",
        "0.8.0",
        "2f5c68d2c1c267ffb3d4fe474072ecb3ef29be7dc1e9ba3ab852cf7fae4db6c8",
    ),
    _Spec(
        "ml-dtypes-readme",
        "ml_dtypes",
        "ml_dtypes",
        "0.7.0",
        "8ca2d86b5d3a9798d3ada057f71d2caafeea5c606f9ed253a8cd3902bd5dbad2",
    ),
    _Spec(
        "tomli-readme",
        "Tomli",
        "tomli",
        "2.5.0",
        "2e0d61304aa9e88b53c99fee8721f7f32105bebf29dad64c590bbed8cfe3ece8",
    ),
    _Spec(
        "peft-readme",
        "PEFT: Parameter-Efficient Fine-Tuning",
        "peft",
        "0.21.2",
        "65958fdf047de668cb2abd1c34dace3082d46680b98ae781b8bd2db38486e13e",
    ),
)


def _long_description(dist: importlib.metadata.Distribution) -> str:
    """The Markdown body of METADATA: everything after the blank line that ends the headers."""
    raw = dist.read_text("METADATA") or ""
    _headers, _blank, body = raw.partition("\n\n")
    return body


def _load(spec: _Spec) -> CorpusDocument:
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise CorpusError(
            f"retrieval corpus: package {spec.package!r} (document {spec.id!r}) is not installed; "
            f"the questions were written for {spec.package}=={spec.version}"
        ) from None
    text = _long_description(dist)
    if spec.until is not None:
        cut = text.find("\n" + spec.until)
        if cut >= 0:
            text = text[:cut].rstrip("\n") + "\n"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != spec.sha256:
        installed = f"{spec.package}=={dist.version}"
        if dist.version != spec.version:
            installed += f" (installed) differs from {spec.package}=={spec.version}"
        raise CorpusError(
            f"retrieval corpus: the text of document {spec.id!r} changed: {installed}, the version the "
            f"questions in bench/retrieval_questions.yaml were written for (sha256 {digest}, expected "
            f"{spec.sha256}); install {spec.package}=={spec.version}, or re-check the questions and "
            "update the hash"
        )
    metadata = next(
        (str(f) for f in dist.files or () if f.name == "METADATA" and f.parent.name.endswith(".dist-info")),
        "METADATA",
    )
    return CorpusDocument(
        id=spec.id,
        title=spec.title,
        source=f"{dist.metadata['Name']}=={dist.version}: {metadata} (long description)",
        text=text,
    )


def corpus() -> list[CorpusDocument]:
    """The benchmark's documents, read from the installed packages and checked against their hashes."""
    return [_load(spec) for spec in _SPECS]


# --- the list layout: list-dense pages whose answers are single items ---------------------------------

LIST_SOURCES = (
    "pydantic-changelog",
    "charset-normalizer-changelog",
    "python-dotenv-changelog",
    "httpcore-changelog",
)
"""The documents whose list items make the ``lists`` layout (release notes: hundreds of one-line items)."""
LIST_ITEMS_PER_PAGE = 25
_ITEM = re.compile(r"(?m)^[*-] (.+)$")
_CREDIT = re.compile(
    r"\s+by \[@[^\]]+\]\([^)]*\)(?:,? (?:and )?\[@[^\]]+\]\([^)]*\))* in \[#\d+\]\([^)]*\)\.?$"
)


def list_items(document: CorpusDocument) -> list[str]:
    """The document's one-line list items, as written but for a trailing pull-request credit
    (``by [@user](...) in [#123](...)``); no contributor notes, table-of-contents links or items of
    fewer than four words."""
    items: list[str] = []
    for match in _ITEM.finditer(document.text):
        item = _CREDIT.sub("", match.group(1)).strip()
        if "made their first contribution" in item or item.startswith("[") or len(item.split()) < 4:
            continue
        items.append(item)
    return list(dict.fromkeys(items))  # one of each (a changelog repeats some lines)


def list_pages(documents: list[CorpusDocument] | None = None) -> dict[str, str]:
    """File name -> Markdown of the ``lists`` layout: each source document's items, in order, on pages of
    LIST_ITEMS_PER_PAGE items under one heading (the way one author writes: each section a long list of
    one-line items). An item two documents share is kept in the first only."""
    seen: set[str] = set()
    pages: dict[str, str] = {}
    for document in documents or corpus():
        if document.id not in LIST_SOURCES:
            continue
        items = [i for i in list_items(document) if i not in seen]
        seen.update(items)
        for n in range(0, len(items), LIST_ITEMS_PER_PAGE):
            page = items[n : n + LIST_ITEMS_PER_PAGE]
            number = n // LIST_ITEMS_PER_PAGE + 1
            body = "\n".join(f"- {item}" for item in page)
            pages[f"{document.id}-list-{number:02d}.md"] = (
                f"# {document.title}: notes, part {number}\n\n## Changes\n\n{body}\n"
            )
    return pages
