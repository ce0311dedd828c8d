"""Shared by the benchmarks: the machine's description, one marked section of docs/benchmarks.md, and the
machine-readable records in docs/benchmarks.json."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOC = DOCS / "benchmarks.md"
RECORDS = DOCS / "benchmarks.json"
HEADER = "# femo benchmarks\n\nEach section is written by the script named in its title.\n"


def machine() -> str:
    """This machine: CPU cores and model, memory, Python, and its GPUs (nvidia-smi) or "no GPU"."""
    from femo_pipeline import devices

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpus = devices.visible_gpus()
    gpu = f"{len(gpus)} x {gpus[0]}" if gpus else "no GPU"
    return (f"{os.cpu_count()} cores ({devices.cpu_model()}), {mem:.0f} GiB RAM, {gpu}, "
            f"Python {platform.python_version()}, {platform.system()}")


def tune_convolutions() -> None:
    """Under Keras' torch backend on a GPU, let cuDNN pick the fastest convolution for each shape (the shapes
    repeat every step); nothing elsewhere. Imports torch only where it is the backend."""
    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.backends.cudnn.benchmark = True


def write_section(name: str, section: str, doc: Path = DOC) -> Path:
    """Replace the text between <!-- name:start --> and <!-- name:end --> (or append it); `section` has the markers."""
    text = doc.read_text() if doc.exists() else HEADER
    pattern = rf"<!-- {name}:start -->.*?<!-- {name}:end -->"
    if re.search(pattern, text, flags=re.S):
        text = re.sub(pattern, lambda m: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(text)
    return doc


def write_records(records: list[dict], path: Path = RECORDS) -> Path:
    """Merge {"name", "value", "unit", "machine", "date"} records into the JSON list, replacing same-named ones."""
    for r in records:
        missing = {"name", "value", "unit", "machine", "date"} - set(r)
        if missing:
            raise ValueError(f"benchmark record {r.get('name')!r} lacks {sorted(missing)}")
    old = json.loads(path.read_text()) if path.exists() else []
    names = {r["name"] for r in records}
    merged = sorted([r for r in old if r["name"] not in names] + records, key=lambda r: r["name"])
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=1) + "\n")
    tmp.replace(path)
    return path
