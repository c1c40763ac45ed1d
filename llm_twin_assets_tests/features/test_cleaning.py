import polars as pl
import pytest

from llm_twin_assets.features.cleaning import CleaningOptions, clean_frame


def clean(content: str, kind: str = "article", **options: object) -> str:
    cleaned, rejected = clean_frame(frame([(content, kind)]), CleaningOptions(**options))  # type: ignore[arg-type]
    assert rejected.height == 0, rejected.to_dicts()
    return str(cleaned["content"][0])


def frame(items: list[tuple[str, str]], author: str = "maya") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"d{i}" for i in range(len(items))],
            "author": [author] * len(items),
            "url": [f"https://maya.example/{i}" for i in range(len(items))],
            "kind": [k for _, k in items],
            "title": ["t"] * len(items),
            "content": [c for c, _ in items],
            "content_hash": ["h"] * len(items),
        }
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I **really** love [Postgres](https://postgres.org).", "I really love Postgres."),
        (
            "See https://www.github.com/maya/tinyvec/tree/main. Then https://a.org/x?y=1, ok",
            "See github.com. Then a.org, ok",
        ),
        ("<p>Done &amp; dusted</p><br/>", "Done & dusted"),
        ("![diagram](https://x.org/d.png) explains it", "diagram explains it"),
        ("## A heading\n\nText", "A heading\n\nText"),
        ("Line one\r\nLine two\rthree", "Line one\nLine two\nthree"),
        ("Spaces   and\ttabs  here   ", "Spaces and tabs here"),
        ("Para one.\n\n\n\n\nPara two.", "Para one.\n\nPara two."),
        ("Cafe\u0301 nai\u0308ve", "Caf\u00e9 na\u00efve"),  # NFC composes accents
        ("zero\u200bwidth\ufeff and \x07bell", "zerowidth and bell"),
    ],
)
def test_prose_remnants_are_stripped(raw: str, expected: str) -> None:
    assert clean(raw + "\n\nAnd a sentence long enough to keep the document.").startswith(expected)


@pytest.mark.parametrize(
    "kept",
    [
        "Really… I mean it!!",
        "Wow 🙂🚀 — SO good",
        "“Curly quotes” and ‘apostrophes’",
        "lowercase start. ALL CAPS",
    ],
)
def test_prose_keeps_the_authors_punctuation_emoji_and_casing(kept: str) -> None:
    assert kept in clean(f"{kept}\n\nAnother line so this is long enough.")


def test_boilerplate_lines_go_and_the_writing_stays() -> None:
    text = clean(
        "Real first paragraph about databases.\n\nSubscribe to my newsletter\nShare this post\n"
        "© 2025 Maya Okafor. All rights reserved.\n3 comments\n\nReal last paragraph, subscribe if you like."
    )
    assert text == "Real first paragraph about databases.\n\nReal last paragraph, subscribe if you like."


def test_fenced_code_inside_prose_is_left_alone() -> None:
    code = "```python\n# a comment  with  spaces\nx = a**b**c  # [not](a link)\n<b>html</b>\n```"
    text = clean(f"Intro **bold** text.\n\n{code}\n\nOutro with https://x.org/y link.")
    assert code in text and text.startswith("Intro bold text.") and text.endswith("Outro with x.org link.")


def test_repositories_keep_code_as_code() -> None:
    source = "\u241e app.py\n# Title\ndef f(a,  b):\n\treturn a**b  # see https://x.org/q   \n\n\n\nclass X: pass\n"
    text = clean(source, kind="repository")
    assert (
        text == "\u241e app.py\n# Title\ndef f(a,  b):\n\treturn a**b  # see https://x.org/q\n\nclass X: pass"
    )


def test_rejections_are_reported_with_reasons() -> None:
    items = [
        ("\ufffd\ufffd\x00\x01\x02binary\ufffd\ufffd", "article"),
        ("tiny", "post"),
        ("A perfectly fine article that is long enough to keep.", "tweet"),
        ("Same words, same words, written twice in two places.", "article"),
        ("Same words, same words, written twice in two places.", "post"),
    ]
    cleaned, rejected = clean_frame(frame(items))
    reasons = {r["id"]: (r["reason"], r["detail"]) for r in rejected.iter_rows(named=True)}
    assert reasons["d0"][0] == "damaged" and reasons["d0"][1].startswith("binary-looking or wrongly decoded")
    assert reasons["d1"] == ("empty", "empty after cleaning")
    assert reasons["d2"] == ("unknown_kind", "unknown kind tweet")
    assert reasons["d4"] == ("duplicate", "duplicate of https://maya.example/3")
    assert rejected.filter(pl.col("id") == "d4")["duplicate_of"].to_list() == ["d3"]
    assert cleaned["id"].to_list() == ["d3"]


def test_a_huge_document_is_cut_and_flagged_not_crashed() -> None:
    huge = ("A long paragraph of plain words about pipelines. " * 40 + "\n\n") * 5_000  # ~10 MB
    cleaned, _ = clean_frame(frame([(huge, "article")]), CleaningOptions(max_chars=200_000))
    assert cleaned["truncated"][0] is True and cleaned["n_chars"][0] <= 200_000


def test_language_length_and_hashes_are_recorded() -> None:
    cleaned, _ = clean_frame(
        frame(
            [
                (
                    "Ceci est un texte écrit en français, assez long pour être reconnu sans hésitation.",
                    "article",
                ),
                ("This is an English text, long enough to be recognised without any hesitation.", "post"),
                ("\u241e a.py\ndef f():\n    return 1\n", "repository"),
            ]
        )
    )
    assert cleaned["language"].to_list() == ["fr", "en", "code"]
    assert cleaned["n_chars"].to_list() == [len(c) for c in cleaned["content"]]
    assert cleaned["raw_content_hash"].to_list() == ["h", "h", "h"]
    assert len(set(cleaned["content_hash"])) == 3


def test_cleaning_is_deterministic() -> None:
    items = [("Some **text** with a https://x.org/link and more words here.", "article")]
    assert clean_frame(frame(items))[0].equals(clean_frame(frame(items))[0])


@pytest.mark.parametrize(
    "kept",
    [
        '"tool run -- <path>" lost the path',
        "Pass <file> and <your-token> to it",
        "x < y > z, and 3 <4> 5",
        "a <b> c, with no closing tag anywhere",
        "Replace <title> with yours, then cp <source> <target> and read <input>",
        "MAX_RETRIES and __init__ and a*b*c and 2**3**4 stay",
        "pass **kwargs and **opts along",
        r"C:\Users\maya and the regex \d+ and \*literal\* stay",
        "Family 👨‍👩‍👧‍👦, flag 🏳️‍🌈 and می\u200cخواهم keep their joiners",
        "#hashtag is not a heading",
    ],
)
def test_text_that_is_not_markup_stays_character_for_character(kept: str) -> None:
    assert kept in clean(f"{kept}\n\nAnother line so this is long enough.")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('<p class="lead">One</p> <span>two</span>', "One two"),
        ("x<sup>2</sup> and H<sub>2</sub>O", "x2 and H2O"),
        ("<b>bold</b>, <I>shouting</I>, <em>em</em>", "bold, shouting, em"),
        ("line<br>break<BR/>and<hr>rule<wbr>", "line\nbreak\nandrule\n"),
        ('an <img src="x.png" alt="a"> image <a href="u">link</a>', "an image link"),
        ("a <!-- hidden\nnote --> comment", "a comment"),
        ("&lt;b&gt; stays text &amp; so does &lt;path&gt;", "<b> stays text & so does <path>"),
        (
            "[`f()`](https://x.org/a_(b)) and **`code`** and <https://x.org/page>",
            "`f()` and `code` and x.org",
        ),
    ],
)
def test_html_markup_and_markdown_marks_are_removed(raw: str, expected: str) -> None:
    assert clean(raw + "\n\nAnd a sentence long enough to keep the document.").startswith(expected)


@pytest.mark.parametrize(
    "span",
    [
        "`<b>x</b>`",
        "`a**b**c`",
        "`https://x.org/a?b=1`",
        "`&amp; &lt;`",
        "`a  b\tc`",
        "``a ` b``",
        "`[x](y)`",
        "`<!-- not a comment -->`",
    ],
)
def test_inline_code_is_kept_exactly(span: str) -> None:
    text = clean(f"Run {span} now, <b>really</b>.\n\nAnd a sentence long enough to keep the document.")
    assert text.startswith(f"Run {span} now, really.")


def test_fenced_code_keeps_lines_that_look_like_boilerplate_or_headings() -> None:
    code = "```\n# Copyright 2025 Maya\n## not a heading\nshare this = 1\n```"
    assert code in clean(f"Some prose first.\n\n{code}\n\nSome prose after.")


def test_the_docstring_lists_what_cleaning_removes() -> None:
    from llm_twin_assets.features import cleaning

    doc = cleaning.__doc__ or ""
    for rule in (
        "control characters",
        "HTML markup",
        "entities",
        "heading marks",
        "bold",
        "URL",
        "boilerplate",
    ):
        assert rule in doc
