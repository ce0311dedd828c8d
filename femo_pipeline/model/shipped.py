"""The femo models committed with the package (femo_pipeline/shipped/, one per label source) and where to find
them. Pure module (no Dagster)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped"  # femo_pipeline/shipped
SHIPPED = {
    "fer2013": SHIPPED_DIR / "femo_cnn_fer2013.keras",  # trained on FER-2013's labels
    "ferplus": SHIPPED_DIR / "femo_cnn_ferplus.keras",  # trained on the FER+ crowd's vote distributions
}


def shipped_path(kind: str = "fer2013") -> Path | None:
    """The model file committed with the package for this label source, or None when it is not there."""
    path = SHIPPED.get(kind)
    if path is None:
        raise ValueError(f"unknown shipped model {kind!r}; known: {sorted(SHIPPED)}")
    return path if path.is_file() else None
