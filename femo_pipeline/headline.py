"""The answer in one sentence, as the benchmark report last wrote it (reports/benchmark.json), for the places
that show it outside the report: the end of a command-line run, the gallery's banner and /benchmark.
Pure module (no Dagster)."""

from __future__ import annotations

import json
from pathlib import Path

SYNTHETIC = "SYNTHETIC DEMO"
REPORT_JSON = "benchmark.json"


def shown(text: str, synthetic: bool) -> str:
    """The headline as shown: under the demo profile it always says it is a synthetic demo."""
    text = " ".join(str(text).split())
    if synthetic and SYNTHETIC not in text:
        return f"{SYNTHETIC} (drawn faces, made-up votes): {text}"
    return text


def read(reports_dir: str | Path) -> dict | None:
    """{headline (as shown), synthetic, generated, path} from the report's JSON, or None when there is no
    report (or it cannot be read: a report being replaced is never half-read, see files.write_text_atomic)."""
    path = Path(reports_dir) / REPORT_JSON
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or not report.get("headline"):
        return None
    synthetic = bool(report.get("synthetic"))
    return {"headline": shown(report["headline"], synthetic), "synthetic": synthetic,
            "generated": report.get("generated"), "path": str(path)}
