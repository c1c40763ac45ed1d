"""Pages laid out with tables come out as a reader sees them: a code listing as a code block (its blank
lines kept, its line numbers gone), an epigraph or a note as text, a data table still as a table; and a
paragraph's source line breaks read as spaces."""

from __future__ import annotations

from lxml import html as lxml_html

from llm_twin_assets.crawling.articles import extract
from llm_twin_assets.crawling.feeds import html_fragment_to_text
from llm_twin_assets.crawling.layout import plain_layout

PROSE = "<p>" + "The guide explains each construct before it shows one in a script of its own. " * 4 + "</p>"
# Shaped like DocBook's HTML stylesheets (the Advanced Bash-Scripting Guide as Debian ships it).
DOCBOOK = f"""<HTML><HEAD><TITLE>Loops and Branches</TITLE></HEAD><BODY><DIV CLASS="NAVHEADER"><TABLE
SUMMARY="Header navigation table" WIDTH="100%"><TR><TH COLSPAN="3">Advanced Bash-Scripting Guide</TH></TR>
<TR><TD><A HREF="x.html">Prev</A></TD><TD>Chapter 11. Loops</TD><TD><A HREF="y.html">Next</A></TD></TR>
</TABLE></DIV><DIV CLASS="CHAPTER">
<H1>Loops</H1>
<TABLE BORDER="0" WIDTH="100%" CELLSPACING="0" CELLPADDING="0" CLASS="EPIGRAPH"><TR>
<TD WIDTH="45%">&nbsp;</TD><TD WIDTH="45%" ALIGN="LEFT" VALIGN="TOP"><I><P><I>What needs this
      iteration, woman?</I></P><P>--Shakespeare</P></I></TD></TR></TABLE>
{PROSE}
<P>A <I>loop</I> is a block of code that
\t<I>iterates</I>
\t  a list of commands.</P>
<DIV CLASS="NOTE"><TABLE CLASS="NOTE" WIDTH="90%" BORDER="0"><TR>
<TD WIDTH="25" ALIGN="CENTER" VALIGN="TOP"><IMG SRC="common/note.png" HSPACE="5" ALT="Note"></TD>
<TD ALIGN="LEFT" VALIGN="TOP"><P>Each pass takes the next word of the list.</P></TD></TR></TABLE></DIV>
<P><B>Example 11-1. Simple for loops</B></P>
<TABLE BORDER="0" BGCOLOR="#E0E0E0" WIDTH="90%"><TR><TD><PRE CLASS="PROGRAMLISTING">   1&nbsp;#!/bin/bash
   2&nbsp;# Listing the planets.
   3&nbsp;
   4&nbsp;for planet in Mercury Venus Earth
   5&nbsp;do
   6&nbsp;  echo $planet  # Each planet on a separate line.
   7&nbsp;done
   8&nbsp;
   9&nbsp;echo; echo
  10&nbsp;exit 0</PRE></TD></TR></TABLE>
{PROSE}
<TABLE><TR><TH>Operator</TH><TH>Meaning</TH></TR><TR><TD>-eq</TD><TD>is equal to</TD></TR>
<TR><TD>-ne</TD><TD>is not equal to</TD></TR></TABLE>
<H3>Notes</H3><TABLE BORDER="0" CLASS="FOOTNOTES" WIDTH="100%">
<TR><TD ALIGN="LEFT" VALIGN="TOP" WIDTH="5%"><A NAME="FTN.AEN205" HREF="loops.html#AEN205">[1]</A></TD>
<TD ALIGN="LEFT" VALIGN="TOP" WIDTH="95%"><P>More commonly seen as <I>she-bang</I>.</P></TD></TR>
<TR><TD ALIGN="LEFT" VALIGN="TOP" WIDTH="5%"><A NAME="FTN.AEN212" HREF="loops.html#AEN212">[2]</A></TD>
<TD ALIGN="LEFT" VALIGN="TOP" WIDTH="95%"><P>This allows some cute tricks.</P><TABLE BORDER="0" BGCOLOR="#E0E0E0"
WIDTH="90%"><TR><TD><PRE CLASS="PROGRAMLISTING">   1&nbsp;#!/bin/rm
   2&nbsp;# Self-deleting script.</PRE></TD></TR></TABLE></TD></TR></TABLE>
</DIV></BODY></HTML>"""
LISTING = """```
#!/bin/bash
# Listing the planets.

for planet in Mercury Venus Earth
do
  echo $planet  # Each planet on a separate line.
done

echo; echo
exit 0
```"""


def test_a_docbook_page_reads_as_its_reader_sees_it() -> None:
    found = extract(DOCBOOK, "https://tldp.example/loops.html")
    assert found is not None
    assert LISTING in found.text
    assert "*What needs this iteration, woman?*" in found.text
    assert "A *loop* is a block of code that *iterates* a list of commands." in found.text
    assert "Each pass takes the next word of the list." in found.text
    assert "| -eq | is equal to |" in found.text  # the data table is still a table
    # Nothing else came out as a table row: the layout tables are gone, their cells' text kept once.
    assert [line.strip() for line in found.text.splitlines() if line.startswith("|")] == [
        "| Operator | Meaning |",
        "|---|---|",
        "| -eq | is equal to |",
        "| -ne | is not equal to |",
    ]
    assert found.text.count("Each pass takes the next word") == 1
    assert "Prev" not in found.text and "Chapter 11. Loops" not in found.text  # the page's navigation
    plain = plain_layout(DOCBOOK)  # dropped before extraction, whatever the extractor would keep
    assert plain is not None and "Chapter 11. Loops" not in plain.text_content()
    assert "Chapter 11. Loops" in (lxml_html.document_fromstring(DOCBOOK).text_content())
    # Footnotes laid out as a table: each note led by its label, its listing a code block.
    assert "[1] More commonly seen as *she-bang*." in found.text
    assert "[2] This allows some cute tricks.\n\n```\n#!/bin/rm\n# Self-deleting script.\n```" in found.text


PYGMENTS = f"""<html><body><article>{PROSE}
<div class="highlight"><table class="highlighttable"><tr>
<td class="linenos"><div class="linenodiv"><pre><span class="normal">1</span>
<span class="normal">2</span>
<span class="normal">3</span></pre></div></td>
<td class="code"><div><pre><span></span><span class="k">def</span> <span class="nf">f</span>():

    <span class="k">return</span> <span class="mi">1</span>
</pre></div></td></tr></table></div>
{PROSE}</article></body></html>"""


def test_an_xhtml_page_declaring_its_encoding_is_made_plain_too() -> None:
    xhtml = '<?xml version="1.0" encoding="utf-8"?>\n' + DOCBOOK.replace(
        "<HTML>", '<html xmlns="http://www.w3.org/1999/xhtml">'
    )
    found = extract(xhtml, "https://tldp.example/loops.html")
    assert found is not None and LISTING in found.text


def test_a_highlighters_line_number_gutter_is_left_out() -> None:
    found = extract(PYGMENTS, "https://blog.example/f")
    assert found is not None
    assert "```\ndef f():\n\n    return 1\n```" in found.text
    assert "| " not in found.text


def test_line_numbers_inside_a_listing_are_taken_out_only_when_they_are_line_numbers() -> None:
    def code_of(pre: str) -> str:
        tree = plain_layout(f"<html><body>{pre}</body></html>")
        assert tree is not None
        return "".join(tree.find(".//pre").itertext())

    # Marked up as line numbers (inline gutter spans), or set apart by a tab: taken out.
    assert code_of('<pre><span class="linenos">1</span>a = 1\n<span class="linenos">2</span>b = 2</pre>') == (
        "a = 1\nb = 2"
    )
    assert code_of("<pre>7\tx\n8\ty\n9\tz</pre>") == "x\ny\nz"
    # Right-aligned to one width (cat -n, listings of ten lines or more): taken out.
    padded = "\n".join(f"{n:>3} line {n}" for n in range(8, 13))
    assert code_of(f"<pre>{padded}</pre>") == "\n".join(f"line {n}" for n in range(8, 13))
    # Numbered text that is the content: a list in a pre, numbers not in sequence, a single line.
    digits = "9" * 5000  # more digits than int() reads: not a line number, and no error
    for kept in (
        f"{digits}\u00a0a\n{digits}\u00a0b",
        "\u00b2\u00a0a\n\u00b3\u00a0b",
        "1 apples\n2 pears\n3 plums",
        "1\u00a0a\n3\u00a0b",
        "1\u00a0only line",
        "1\u00a0a\nb",
    ):
        assert code_of(f"<pre>{kept}</pre>") == kept


def test_data_tables_stay_tables_and_layout_tables_go() -> None:
    def tables_left(body: str) -> int:
        tree = plain_layout(f"<html><body>{body}</body></html>")
        assert tree is not None
        return len(tree.findall(".//table"))

    assert tables_left("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>") == 1
    assert tables_left("<table><caption>x</caption><tr><td>only cell</td></tr></table>") == 1
    assert tables_left("<table><tr><td>one row</td><td>two cells</td></tr></table>") == 0
    assert tables_left("<table><tr><td>one</td></tr><tr><td>column</td></tr></table>") == 0
    assert (
        tables_left(
            '<table role="presentation"><tr><th>a</th><th>b</th></tr><tr><td>c</td><td>d</td></tr></table>'
        )
        == 0
    )
    notes = "<table><tr><td>[1]</td><td>first note</td></tr><tr><td>[2]</td><td>second note</td></tr></table>"
    assert tables_left(notes) == 0
    linked = '<table><tr><td><a href="#n1">1</a></td><td>a note</td></tr><tr><td><a href="#n2">2</a></td><td>b</td></tr></table>'
    assert tables_left(linked) == 0
    ranking = "<table><tr><td>1</td><td>Alice</td></tr><tr><td>2</td><td>Bob</td></tr></table>"
    assert tables_left(ranking) == 1
    # A layout table around a data table: the outer one goes, the inner one stays.
    inner = "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>"
    assert tables_left(f"<table><tr><td>{inner}</td><td>side</td></tr></table>") == 1


def test_blank_lines_of_code_survive_in_feed_entries_too() -> None:
    text = html_fragment_to_text(f"{PROSE}<pre><code>a = 1\n\n\nb = 2</code></pre>{PROSE}")
    assert "```\na = 1\n\n\nb = 2\n```" in text


def test_a_hostile_page_nested_past_any_stack_is_extracted_or_refused_but_never_crashes() -> None:
    deep = "<div>" * 50_000 + "text" + "</div>" * 50_000
    tables = "<table><tr><td>" * 5_000 + "cell" + "</td></tr></table>" * 5_000
    for body in (deep, tables):
        page = f"<html><body>{PROSE}{body}{PROSE}</body></html>"
        found = extract(page, "https://x.example/deep")
        assert found is None or "The guide explains each construct" in found.text
