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


DECLARED = SHIPPED_DIR / "declared.json"  # how the two shipped heads are mixed into the declared reader
SEEDS_DIR = SHIPPED_DIR / "seeds"  # the shipped recipe trained with other seeds: test predictions and facts


def declared_mix() -> dict | None:
    """The mix of the shipped heads chosen on validation (w, tau, prior, the validation table), or None."""
    import json

    return json.loads(DECLARED.read_text()) if DECLARED.is_file() else None


def seed_records() -> list[dict]:
    """The other training seeds of the shipped recipe: each record (seed, facts, its own mix, the fingerprint of
    the test images it predicted) with `probabilities`, the npz of both heads' test probabilities in
    content-hash order (femo_pipeline.factor_grid.by_content_rows)."""
    import json

    out = []
    for path in sorted(SEEDS_DIR.glob("seed*.json")) if SEEDS_DIR.is_dir() else []:
        npz = path.with_suffix(".npz")
        if npz.is_file():
            out.append({**json.loads(path.read_text()), "probabilities": npz})
    return out
