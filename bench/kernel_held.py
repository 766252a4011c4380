"""What one app kernel holds after its first chart: prints its largest live frames and arrays.

Usage::

    python bench/kernel_held.py APP DATA [--reuse-build] [--top N]

Builds the app on ``DATA`` as ``kernel_probe.py`` does (``--reuse-build`` as there), then
lists the process's memory (``VmRSS`` split into anonymous and file-backed pages, ``RssAnon``
/ ``RssFile``), its largest resident mappings (files, anonymous memory, the heap: a build's
data mapped by a kernel would show by its path) and the ``N`` largest Polars frames and NumPy
arrays reachable from Python objects, with their rows and, per frame, the bytes of each
column. A frame's bytes are Polars's ``estimated_size``, but a text column's are 16 bytes a
row (its views, which that estimate leaves out: at 10M activities the roll-up's text
``rep_id`` is 66 MB, not 21) plus, when some string is longer than 12 bytes (held outside its
view), the estimate. Frames that share columns (a filtered view of the roll-up, a copy holding
fewer of its columns) are each counted whole, so the list says what is held, not a sum.
Arrays mapped from files (the habit touch codes) count in ``RssFile`` only for the pages read.
"""

from __future__ import annotations

import gc
import importlib
import sys
import time
from pathlib import Path

#: Bytes of a text column's view per row (Polars's ``String`` is a view array), and the
#: longest string a view holds itself.
_VIEW_BYTES, _INLINE = 16, 12


def _status() -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile`` and ``VmHWM`` of this process, MB."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = int(value.split()[0]) // 1024
    return out


def _mapped(top: int) -> list[tuple[str, int]]:
    """The ``top`` largest resident mappings of this process (``/proc/self/smaps``): file
    paths (a build's mapped data would show here), ``[anon]`` and ``[heap]``, bytes each."""
    import re

    rss: dict[str, int] = {}
    name = "[anon]"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            name = parts[5] if len(parts) > 5 else "[anon]"  # the path field
        elif parts and parts[0] == "Rss:":
            rss[name] = rss.get(name, 0) + int(parts[1]) * 1024
    return sorted(rss.items(), key=lambda x: -x[1])[:top]


def _frame_bytes(frame) -> dict[str, int]:
    """Bytes of each column of ``frame`` (text columns with their views)."""
    import polars as pl

    sizes = {}
    for column in frame.iter_columns():
        size = column.estimated_size()
        if column.dtype == pl.String and column.len():
            # a view of 16 bytes a row, which holds a string of up to 12 bytes itself; only
            # longer ones are in buffers (the estimate counts every string's bytes)
            longest = column.str.len_bytes().max() or 0
            size = _VIEW_BYTES * column.len() + (size if longest > _INLINE else 0)
        sizes[column.name] = size
    return sizes


def held(top: int) -> tuple[list, list]:
    """The ``top`` largest live frames (rows, bytes per column) and arrays (shape, dtype,
    bytes, whether mapped from a file)."""
    import numpy as np
    import polars as pl

    gc.collect()
    frames, arrays = {}, {}
    for obj in gc.get_objects():
        if isinstance(obj, pl.DataFrame):
            frames[id(obj)] = obj
        for ref in gc.get_referents(obj):  # arrays are not tracked: found through holders
            if isinstance(ref, np.ndarray) and ref.base is None or isinstance(ref, np.memmap):
                arrays[id(ref)] = ref
    listed = sorted(
        ((f.height, _frame_bytes(f)) for f in frames.values()), key=lambda x: -sum(x[1].values())
    )
    kept = sorted(arrays.values(), key=lambda a: -a.nbytes)
    return listed[:top], [
        (a.shape, str(a.dtype), a.nbytes, isinstance(a, np.memmap)) for a in kept[:top]
    ]


def _reuse_latest_build(data: str) -> None:
    """Accept ``data``'s latest build whatever code wrote it (as ``kernel_probe.py
    --reuse-build``: for what kernels hold of a build this code would write the same)."""
    import effortlens.facts as facts

    record = facts.latest_build_record(data)
    if record is None:
        raise SystemExit(f"kernel_held: --reuse-build, but {data} was never built")
    code = record["code"]
    facts.code_version = lambda: code


def main(app_name: str, data: str, *, reuse_build: bool, top: int) -> None:
    """Build the app, wait a second (a served kernel waiting for its viewer), print."""
    module = importlib.import_module(f"effortlens_widgets.apps.{app_name}")
    if reuse_build:
        _reuse_latest_build(data)
    before = _status()
    app = getattr(module, f"{app_name}_app")(data_dir=data)
    after = _status()
    time.sleep(1.0)
    settled = _status()
    print(f"{app_name} on {data}: imported {before}")
    print(f"  right after the first chart {after}")
    print(f"  1 s later {settled}")
    frames, arrays = held(top)
    print(f"  largest frames (MB, rows, columns by MB), {len(frames)} shown:")
    for rows, sizes in frames:
        columns = ", ".join(
            f"{c} {b / 1e6:.1f}" for c, b in sorted(sizes.items(), key=lambda x: -x[1])
        )
        print(f"    {sum(sizes.values()) / 1e6:8.1f} MB {rows:>11,} rows: {columns}")
    print("  largest resident mappings (MB):")
    for name, size in _mapped(top):
        print(f"    {size / 1e6:8.1f} MB {name}")
    print("  largest arrays (MB, shape, dtype, mapped):")
    for shape, dtype, nbytes, mapped in arrays:
        print(f"    {nbytes / 1e6:8.1f} MB {shape} {dtype}{' mapped' if mapped else ''}")
    del app


if __name__ == "__main__":
    args = sys.argv[1:]
    reuse = "--reuse-build" in args
    count = 12
    if "--top" in args:
        count = int(args[args.index("--top") + 1])
        del args[args.index("--top") : args.index("--top") + 2]
    positional = [a for a in args if not a.startswith("--")]
    if len(positional) != 2:
        raise SystemExit(__doc__)
    main(positional[0], positional[1], reuse_build=reuse, top=count)
