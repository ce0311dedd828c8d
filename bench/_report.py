"""Shared by the benchmarks: write one marked section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# femo benchmarks\n\nEach section is written by the script named in its title.\n"


def write_section(name: str, section: str) -> Path:
    """Replace the text between <!-- name:start --> and <!-- name:end --> (or append it); `section` has the markers."""
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = rf"<!-- {name}:start -->.*?<!-- {name}:end -->"
    if re.search(pattern, text, flags=re.S):
        text = re.sub(pattern, lambda m: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    return DOC
