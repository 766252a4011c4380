"""Physical lines counted apart from the CSV parser (effortlens.loading.lines)."""

from __future__ import annotations

import csv
import io
import random

import pytest

from effortlens.loading.lines import count_lines, line_ends, normalise_line_ends


@pytest.mark.parametrize(
    ("data", "style", "lines"),
    [
        (b"id\n1\n2\n", "LF", 3),
        (b"id\r\n1\r\n2\r\n", "CRLF", 3),
        (b"id\r1\r2\r", "CR", 3),
        (b"id\n1\n2", "LF", 3),
        (b"id\r\n1\n2\r\n", "mixed", 3),
        (b"id", "none", 1),
    ],
)
def test_every_line_end_style_is_counted(data, style, lines):
    normalised, found = normalise_line_ends(data)
    assert found == style
    assert count_lines(normalised).lines == lines
    assert b"\r" not in normalised.replace(b"\r\n", b"")


def test_a_stray_cr_inside_an_lf_file_is_left_alone():
    data = b"id,note\n1,a\rb\n2,c\n"
    assert normalise_line_ends(data) == (data, "mixed")


def test_lines_inside_quotes_continue_their_record():
    count = count_lines(b'id,note\n1,"a\nb\nc"\n2,d\n3,"e\r\nf"\r\n')
    assert count.lines == 7
    assert count.records == 3
    assert count.continuation.tolist() == [3, 4, 7]
    assert count.multi_line_records() == [(1, 2, 4), (3, 6, 7)]
    assert [count.line_of_row(r) for r in (1, 2, 3)] == [2, 5, 6]


def test_an_unclosed_quote_names_its_line():
    count = count_lines(b'id,name\n1,Ann\n2,"Bob\n3,Cy\n')
    assert count.unclosed_at == 3
    assert count_lines(b'id,name\n1,"An""n"\n').unclosed_at is None


def test_a_quoted_line_break_in_the_header_makes_it_longer():
    count = count_lines(b'"rep\nid",team\nr1,North\n')
    assert count.header_lines == 2 and count.records == 1


def test_chunks_do_not_change_the_count():
    rng = random.Random(5)
    data = b"".join(
        rng.choice([b'a,"x\ny"\n', b"b,c\n", b'"q""",z\r\n', b"\n"]) for _ in range(2000)
    )
    whole = count_lines(data)
    small = count_lines(data, chunk=37)
    assert (whole.lines, whole.records, whole.longest_line) == (
        small.lines,
        small.records,
        small.longest_line,
    )
    assert whole.continuation.tolist() == small.continuation.tolist()


def test_records_match_pythons_csv_reader_on_random_files():
    """The count agrees with an independent parser on well-formed random CSV."""
    rng = random.Random(11)
    alphabet = ["a", "b", ",", '"', "\n", "\r\n", " ", "é"]
    for _ in range(200):
        rows = [
            ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(3)]
            for _ in range(rng.randint(1, 20))
        ]
        out = io.StringIO()
        csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"])).writerows(
            [["h1", "h2", "h3"], *rows]
        )
        data = out.getvalue().encode("utf-8")
        count = count_lines(data)
        parsed = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        assert count.records == len(parsed) - 1
        assert count.lines == data.replace(b"\r\n", b"\n").count(b"\n")
        assert count.unclosed_at is None


def test_line_ends_names_the_style():
    assert [line_ends(b) for b in (b"a\nb", b"a\r\nb", b"a\rb", b"a\rb\nc")] == [
        "LF",
        "CRLF",
        "CR",
        "mixed",
    ]


def test_the_report_flags_lines_that_were_not_read():
    from effortlens.loading import LoadReport, TableReport

    lost = TableReport("reps", "reps.csv", 8, 8, lines=12, blank_lines=1, quoted_lines=2)
    whole = TableReport("activities", "activities.csv", 5, 5, lines=6, blank_lines=1)
    text = LoadReport(tables=(lost, whole)).to_text()

    assert (lost.unaccounted, whole.unaccounted) == (1, 0)
    assert "LINES NOT READ:\n- reps (reps.csv): 1 of its 12 physical lines were not read" in text
    assert "activities (activities.csv):" not in text
    assert LoadReport(tables=(lost,)).to_dict()["reps"]["lines"] == {
        "physical": 12,
        "blank": 1,
        "quoted": 2,
    }
