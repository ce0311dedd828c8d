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


class ShippedFileError(ValueError):
    """A file committed with the package is damaged (not JSON, or not the record it should be)."""


def package_json(path: Path, required: tuple[str, ...] = ()) -> dict:
    """A JSON record committed with the package, checked to be an object holding `required`; ShippedFileError
    saying which file and how to restore it otherwise."""
    import json

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = f"not readable JSON ({str(exc)[:100]})"
    else:
        missing = [k for k in required if k not in record] if isinstance(record, dict) else None
        if missing == []:
            return record
        why = f"lacks {missing}" if missing else f"is a JSON {type(record).__name__}, not an object"
    name = path.relative_to(SHIPPED_DIR.parent)
    raise ShippedFileError(f"femo's package file {name} is damaged: {why}; restore it from the repository "
                           f"(git checkout -- femo_pipeline/{name})")


def declared_mix() -> dict | None:
    """The mix of the shipped heads chosen on validation (w, tau, prior, the validation table), or None."""
    return package_json(DECLARED, ("w", "tau", "prior", "rule")) if DECLARED.is_file() else None


def seed_records() -> list[dict]:
    """The other training seeds of the shipped recipe: each record (seed, facts, its own mix, the fingerprint of
    the test images it predicted) with `probabilities`, the npz of both heads' test probabilities in
    content-hash order (femo_pipeline.factor_grid.by_content_rows)."""
    out = []
    for path in sorted(SEEDS_DIR.glob("seed*.json")) if SEEDS_DIR.is_dir() else []:
        npz = path.with_suffix(".npz")
        if npz.is_file():
            out.append({**package_json(path, ("seed",)), "probabilities": npz})
    return out
