"""Imported first by ``effortlens_widgets``: keeps every app kernel's start fast and its memory
small.

Every app kernel imports Altair, which imports jsonschema, which imports the optional
``rfc3987_syntax`` (installed with Jupyter Server's ``jsonschema[format-nongpl]``) only to check
the "iri" string format. That import builds a Lark grammar and costs about 2 s of CPU per
kernel, a third of a viewer's start on a busy server (jsonschema issue #1428). Altair never
checks string formats, so kernels skip the module (jsonschema then has no "iri" checker).

Polars allocates through its own jemalloc, which by default keeps freed pages for up to 1.5 s
(``dirty_decay_ms:500,muzzy_decay_ms:1000``) and purges them only when it allocates again: an
app kernel that has drawn its page and sits waiting for the viewer kept the working memory of
the draw (100–300 MB at 10M activities) as resident memory. :data:`KERNEL_JEMALLOC` returns
freed pages at once. It applies when this module runs before Polars is first imported (a
kernel's first cell imports ``effortlens_widgets``) and an explicit ``_RJEM_MALLOC_CONF`` wins.
"""

from __future__ import annotations

import os
import sys

#: jemalloc options of an app kernel (Polars appends them to its own defaults).
KERNEL_JEMALLOC = "dirty_decay_ms:0,muzzy_decay_ms:0"

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
if "polars" not in sys.modules:
    os.environ.setdefault("_RJEM_MALLOC_CONF", KERNEL_JEMALLOC)
