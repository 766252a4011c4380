"""``python -m effortlens.sample``: write a sample data set (see ``sample.command``)."""

from __future__ import annotations

import sys

from effortlens.sample.command import main

if __name__ == "__main__":
    sys.exit(main())
