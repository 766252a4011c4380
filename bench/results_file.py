"""One home for writing a benchmark's section into bench/RESULTS.md.

Each script owns one section, between its own markers (``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``), and replaces only that: the file also holds every session's hand-written
sections, which a script run must never drop.

Examples
--------
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "RESULTS.md"
>>> _ = path.write_text("# Results\\n\\nkept\\n")
>>> replace_section(path, ["## New", "figures"], name="x")
>>> replace_section(path, ["## New", "other figures"], name="x")
>>> print(path.read_text())
# Results
<BLANKLINE>
kept
<BLANKLINE>
<!-- x:begin -->
## New
other figures
<!-- x:end -->
<BLANKLINE>
>>> replace_section(path, ["top"], name="y", first=True)
>>> print(path.read_text().splitlines()[:5])
['# Results', '', '<!-- y:begin -->', 'top', '<!-- y:end -->']
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(path: Path, lines: list[str], *, name: str, first: bool = False) -> None:
    """Put ``lines`` into ``path`` between the markers of section ``name``, the rest of the
    file as it was; where the file has no such section it is added at the end (``first``:
    at the top, below the file's title if its first line is one)."""
    begin, end = markers(name)
    section = "\n".join([begin, *lines, end])
    text = path.read_text() if path.is_file() else ""
    if begin in text and end in text[text.index(begin) :]:
        at = text.index(begin)
        text = text[:at] + section + text[text.index(end, at) + len(end) :]
    elif first:
        title, _, rest = text.partition("\n")
        if not title.startswith("# "):
            title, rest = "", text
        text = (title + "\n\n" if title else "") + section + "\n\n" + rest.lstrip()
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
