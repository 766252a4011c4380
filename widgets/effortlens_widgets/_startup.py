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
the draw (100–300 MB at 10M activities) as resident memory. :data:`KERNEL_JEMALLOC` has a
background thread return freed pages to the system 0.2 s after they are freed: at 1M
activities a kernel holds 192 MB instead of 250 MB a second after its first draw. (Returning
them at once, ``dirty_decay_ms:0``, did the same but made scans up to twice as costly in CPU,
re-faulting fresh pages.) It applies when this module runs before Polars is first imported
(a kernel's first cell imports ``effortlens_widgets``); an explicit ``_RJEM_MALLOC_CONF``
wins.
"""

from __future__ import annotations

import os
import sys

#: jemalloc options of an app kernel (Polars appends them to its own defaults).
KERNEL_JEMALLOC = "background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0"

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
if "polars" not in sys.modules:
    os.environ.setdefault("_RJEM_MALLOC_CONF", KERNEL_JEMALLOC)
