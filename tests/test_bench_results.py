"""bench/RESULTS.md: each benchmark script replaces only its own section (between its markers).

`bench/run.py` used to write the whole file with its own tables, which would have dropped every
session's hand-written section; `bench/build.py`'s begin marker had been lost, so its next run
would have added a second "Built facts" section below the stale one.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from results_file import markers, replace_section  # noqa: E402

#: The sections the scripts write: bench/run.py, bench/build.py, bench/build_big.py.
SCRIPT_SECTIONS = ("enrichment", "built-facts", "big-build")


def test_every_script_section_of_results_md_has_both_markers_once():
    text = (REPO / "bench" / "RESULTS.md").read_text()
    for name in SCRIPT_SECTIONS:
        begin, end = markers(name)
        assert text.count(begin) == 1 and text.count(end) == 1, name
        assert text.index(begin) < text.index(end), name
    assert text.startswith("# EffortLens benchmark results\n\n" + markers("enrichment")[0])


def test_a_script_replaces_its_section_and_keeps_every_other_line(tmp_path):
    real = (REPO / "bench" / "RESULTS.md").read_text()
    path = tmp_path / "RESULTS.md"
    path.write_text(real)
    for name in SCRIPT_SECTIONS:
        replace_section(path, [f"## {name} again", "new figures"], name=name, first=True)
    text = path.read_text()
    for name in SCRIPT_SECTIONS:
        begin, end = markers(name)
        inside = text[text.index(begin) : text.index(end)]
        assert inside == f"{begin}\n## {name} again\nnew figures\n", name
        old = real[real.index(begin) : real.index(end) + len(end)]
        real = real.replace(old, f"{begin}\n## {name} again\nnew figures\n{end}")
    assert text == real  # nothing else moved


def test_a_section_not_there_yet_goes_below_the_title_or_at_the_end(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nhand-written\n")
    replace_section(path, ["top"], name="a", first=True)
    replace_section(path, ["bottom"], name="b")
    begin_a, end_a = markers("a")
    begin_b, end_b = markers("b")
    assert path.read_text() == (
        f"# Results\n\n{begin_a}\ntop\n{end_a}\n\nhand-written\n\n{begin_b}\nbottom\n{end_b}\n"
    )
