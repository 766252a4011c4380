"""``python -m effortlens_serve``: the same as ``effortlens serve``."""

from __future__ import annotations

import sys

from effortlens_serve import main

sys.exit(main())
