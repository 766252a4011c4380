"""What a full disk looks like to the build (effortlens.build_failure.is_disk_full): besides
ENOSPC, a short write, and Polars' Parquet writer failing on its footer where the disk has
(almost) no room left."""

from __future__ import annotations

import polars as pl

from effortlens import build_failure


def _thrift_failure() -> BaseException:
    """Polars' error as a child's Parquet write hit a full disk (seen on a 2 MB tmpfs),
    raised from the writer's own OSError-less failure."""
    try:
        try:
            raise pl.exceptions.ComputeError("parquet: Invalid thrift: transport error")
        except pl.exceptions.ComputeError as err:
            raise RuntimeError("the partition's write failed") from err
    except RuntimeError as outer:
        return outer


def test_a_footer_write_failure_is_a_full_disk_only_where_the_disk_is_nearly_full(
    tmp_path, monkeypatch
):
    err = _thrift_failure()
    assert not build_failure.is_disk_full(err)  # no folder: it may be a damaged file
    free = build_failure.shutil.disk_usage(tmp_path).free
    monkeypatch.setattr(build_failure, "NEARLY_FULL_BYTES", free + (1 << 30))
    assert build_failure.is_disk_full(err, tmp_path / "gone" / "staging")  # a parent of it
    monkeypatch.setattr(build_failure, "NEARLY_FULL_BYTES", 1 << 20)
    assert not build_failure.is_disk_full(err, tmp_path)  # this disk has room


def test_a_short_write_is_a_full_disk_and_other_errors_are_not():
    assert build_failure.is_disk_full(OSError("3990 requested and 3568 written"))
    assert not build_failure.is_disk_full(OSError("1 requested"))
    assert not build_failure.is_disk_full(ValueError("invalid literal for int(): 'x'"))
