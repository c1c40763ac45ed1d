"""Pages laid out with tables, and code listings with line numbers, made plain before extraction.

Older sites (DocBook's HTML stylesheets, forum software, early blogs) and some code highlighters lay a
page out with tables: a listing sits alone in a one-cell table, an epigraph or a note sits beside an
empty or an icon cell, a highlighter puts the line numbers in one cell and the code in the next. An
extractor reads each of these as a data table, so the listing comes out as a single table row with its
line numbers run into the code (``| 1 #!/bin/bash 2 # Listing the planets. … |``).

``plain_layout`` parses the page once and, before extraction:

- drops the navigation that marks itself (``role="navigation"``, DocBook's ``navheader``/``navfooter``,
  a table whose summary says navigation: "Prev | Chapter 24. Functions | Next" is not the page's text);
- reads runs of white space outside preformatted text and code as one space, as a browser does (the
  extractor otherwise keeps a paragraph's source line breaks and indentation);
- replaces each *layout* table by its cells' contents, in reading order (empty cells, icon cells and
  line-number gutters dropped), keeping every *data* table as it is. A table is a data table when it
  says so (a caption, a header cell, a ``<thead>``/``<tfoot>``, a summary) and lays nothing out (no
  ``role="presentation"``, no table inside it, more than one row and more than one column, and no code
  listing in a one-row table), much as Firefox's Reader View tells the two apart.
- replaces a table of footnotes (a label such as ``[1]`` and its note, row by row) by the notes, each
  led by its label;
- holds every bare ``<pre>`` in a ``<code>`` element, so that it comes out as a code block;
- takes the line numbers out of a code listing that carries them as text: every line starts with its
  number, numbered consecutively, set apart by a no-break space or a tab (DocBook, ``cat -n``) or
  right-aligned to one width; or marked up as line-number elements inside the listing (``linenos``,
  ``line-numbers`` …).
"""

from __future__ import annotations

import itertools
import re

from lxml import html as lxml_html
from lxml.html import HtmlElement

_GUTTER_CLASS = re.compile(r"^(linenos?|lineno|line-?numbers?|line-?nos?|gutter|hljs-ln-numbers)$", re.I)
_NUMBERED = re.compile(r"^(\s*)([0-9]{1,6})(\u00a0|\t| |$)")
_NUMBER = re.compile(r"^[0-9]{1,6}$")
_DATA_MARKERS = ".//caption|.//th|.//thead|.//tfoot"
_NOTE_LABEL = re.compile(r"^(\[\d{1,4}\]|\*{1,4}|[\u2020\u2021])$")  # [1], *, †, ‡
_LINKED_NOTE_LABEL = re.compile(r"^\d{1,4}[.)]?$")  # 1, 1. or 1): a note's label only as a link back
_NAVIGATION_CLASSES = frozenset({"navheader", "navfooter"})
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_SPACES = re.compile(r"[ \t\n\r\f]+")  # HTML's white space (a no-break space is not one)
_PRESERVED = frozenset({"pre", "code", "textarea", "xmp", "listing", "plaintext", "script", "style"})


def plain_layout(html: str) -> HtmlElement | None:
    """The page parsed, with layout tables unwrapped and line numbers out of code listings; None when the
    text is no HTML document at all (the extractor then decides for itself)."""
    try:  # lxml refuses text that still declares its encoding (XHTML's XML declaration)
        tree = lxml_html.document_fromstring(_XML_DECLARATION.sub("", html, count=1))
    except (ValueError, lxml_html.etree.ParserError):
        return None
    for navigation in _navigation(tree):
        navigation.drop_tree()
    _collapse_whitespace(tree)
    for pre in list(tree.iter("pre")):
        _drop_line_numbers(pre)
        _as_code(pre)
    # Innermost tables first, so an outer layout table is judged on what its cells finally hold.
    for table in reversed(list(tree.iter("table"))):
        if table.getparent() is not None and (is_layout_table(table) or is_notes_table(table)):
            _unwrap(table)
    return tree


def _navigation(tree: HtmlElement) -> list[HtmlElement]:
    """The page's navigation that marks itself as such (``role="navigation"``, DocBook's ``navheader`` /
    ``navfooter``, a table whose summary says navigation): never the page's text."""
    found = []
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        classes = {name.lower() for name in (element.get("class") or "").split()}
        if (
            (element.get("role") or "").lower() == "navigation"
            or classes & _NAVIGATION_CLASSES
            or (element.tag == "table" and "navigation" in (element.get("summary") or "").lower())
        ):
            found.append(element)
    return found  # one inside another: dropping both is dropping the outer one


def _collapse_whitespace(root: HtmlElement) -> None:
    """Runs of white space in text read as one space, as a browser shows them, except in preformatted
    text and code (a paragraph's source line breaks and indentation are not the page's text). Walked
    without recursion: a hostile page may nest elements deeper than Python's stack."""
    stack = [(root, False)]
    while stack:
        element, preserved = stack.pop()
        inside = preserved or (isinstance(element.tag, str) and element.tag in _PRESERVED)
        if element.text and not inside:
            element.text = _SPACES.sub(" ", element.text)
        for child in element:
            if child.tail and not inside:
                child.tail = _SPACES.sub(" ", child.tail)
            stack.append((child, inside))


def _rows(table: HtmlElement) -> list[HtmlElement]:
    """The table's own rows (not a nested table's)."""
    return [row for row in table.iter("tr") if _owner(row) is table]


def _owner(element: HtmlElement) -> HtmlElement | None:
    return next(element.iterancestors("table"), None)


def _shown_cells(table: HtmlElement) -> list[list[HtmlElement]]:
    """The table's own rows, each as its cells that show words; rows that show none left out."""
    rows = [[cell for cell in _cells(row) if not _empty(cell)] for row in _rows(table)]
    return [row for row in rows if row]


def _cells(row: HtmlElement) -> list[HtmlElement]:
    return [cell for cell in row if isinstance(cell.tag, str) and cell.tag in ("td", "th")]


def is_layout_table(table: HtmlElement) -> bool:
    if (table.get("role") or "").lower() in ("presentation", "none"):
        return True
    if table.find(".//table") is not None:
        return True
    kept = _shown_cells(table)
    if len(kept) <= 1 and any(cell.find(".//pre") is not None for row in kept for cell in row):
        return True  # a listing laid out in a table, however it is marked
    if table.get("summary") or table.xpath(_DATA_MARKERS):
        return False
    return len(kept) <= 1 or max(len(row) for row in kept) <= 1


def _empty(cell: HtmlElement) -> bool:
    """A cell that shows no words: blank, an icon, or a line-number gutter."""
    text = cell.text_content().replace("\u00a0", " ").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return not text or (all(_NUMBER.match(line) for line in lines) and _consecutive(lines))


def _consecutive(numbers: list[str]) -> bool:
    values = [int(number) for number in numbers]
    return len(values) >= 2 and all(b == a + 1 for a, b in itertools.pairwise(values))


def is_notes_table(table: HtmlElement) -> bool:
    """Footnotes laid out as a table (DocBook, older docutils): every row a label (``[1]``, ``*``, ``†``,
    or a number linking back into the page) and the note's text, and no header. A table of numbered
    rows that link nowhere (a ranking) is data."""
    if table.xpath(_DATA_MARKERS):
        return False
    rows = _shown_cells(table)
    return bool(rows) and all(len(row) == 2 and _is_note_label(row[0]) for row in rows)


def _is_note_label(cell: HtmlElement) -> bool:
    text = cell.text_content().strip()
    if _NOTE_LABEL.match(text):
        return True
    links = cell.findall(".//a")
    return (
        _LINKED_NOTE_LABEL.match(text) is not None and len(links) == 1 and "#" in (links[0].get("href") or "")
    )


def _unwrap(table: HtmlElement) -> None:
    """The table replaced, in place, by one block per cell that shows words, in reading order (one
    block per note, its label leading its text, in a table of notes)."""
    notes = is_notes_table(table)
    blocks = lxml_html.Element("div")
    for cells in _shown_cells(table):
        if notes and len(cells) == 2:
            label, cells = cells[0].text_content().strip(), cells[1:]
        else:
            label = None
        for cell in cells:
            block = lxml_html.Element("div")
            block.text = cell.text
            for child in list(cell):
                block.append(child)
            if label is not None:
                _lead_with(block, label)
            blocks.append(block)
    blocks.tail = table.tail
    parent = table.getparent()
    if parent is not None:
        parent.replace(table, blocks)


def _lead_with(block: HtmlElement, label: str) -> None:
    """The label put before the block's first words (into its first paragraph when it opens with one)."""
    first = block[0] if len(block) and not (block.text or "").strip() else None
    holder = first if first is not None and first.tag in ("p", "div") else block
    holder.text = f"{label} {(holder.text or '').lstrip()}"


def _drop_line_numbers(pre: HtmlElement) -> None:
    for element in list(pre.iterdescendants()):
        if any(_GUTTER_CLASS.match(name) for name in (element.get("class") or "").split()):
            element.drop_tree()  # its tail (the code after the number) stays
    lines = pre.text_content().split("\n")
    if lines and not lines[-1].strip():
        lines = lines[:-1]
    stripped = _without_numbers(lines)
    if stripped is None:
        return
    code = pre.find("code")
    for child in list(pre):
        pre.remove(child)
    holder = pre
    if code is not None:
        code.clear()
        pre.append(code)
        holder = code
    pre.text = None
    holder.text = "\n".join(stripped)


def _as_code(pre: HtmlElement) -> None:
    """Preformatted text held in a ``<code>`` element, so that it comes out as a code block (the
    extractor otherwise folds a bare ``<pre>`` into a paragraph or loses its fence)."""
    if pre.find(".//code") is not None:
        return
    code = lxml_html.Element("code")
    code.text, pre.text = pre.text, None
    for child in list(pre):
        code.append(child)
    pre.append(code)


def _without_numbers(lines: list[str]) -> list[str] | None:
    """The lines without their leading numbers, when every line carries one (see the module's rule)."""
    if len(lines) < 2:
        return None
    found = [_NUMBERED.match(line) for line in lines]
    if any(match is None for match in found):
        return None
    matches = [match for match in found if match is not None]
    if not _consecutive([match.group(2) for match in matches]):
        return None
    separators = {match.group(3) for match in matches} - {""}
    if not separators:
        return None  # numbers alone: a gutter of its own, not a numbered listing
    widths = {len(match.group(1) + match.group(2)) for match in matches}
    padded = len(widths) == 1 and any(match.group(1) for match in matches)
    if not (separators <= {"\u00a0", "\t"} or padded):
        return None
    return [line[match.end() :] for line, match in zip(lines, matches, strict=True)]
