"""Imported first by ``effortlens_widgets``: keeps every app kernel's start fast.

Every app kernel imports Altair, which imports jsonschema, which imports the optional
``rfc3987_syntax`` (installed with Jupyter Server's ``jsonschema[format-nongpl]``) only to check
the "iri" string format. That import builds a Lark grammar and costs about 2 s of CPU per
kernel, a third of a viewer's start on a busy server (jsonschema issue #1428). Altair never
checks string formats, so kernels skip the module (jsonschema then has no "iri" checker).
"""

from __future__ import annotations

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
