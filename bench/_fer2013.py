"""FER-2013 with its FER+ votes for the benchmarks, shaped like the model group's training_images and
evaluation_images ({"frame": ..., "x": N x 48 x 48 x 1 uint8}), read from the folder layout or from a pack.

A pack (`python bench/_fer2013.py pack OUT.npz`) holds the JPEG files' own bytes (56.5 MB for the 35,887 faces:
their decoded pixels compress to no less than 62 MB) with each file's split, label, FER+ votes and sha256, so a
machine without the folder (e.g. a remote GPU machine with little room for files) decodes the very same faces. The
duplicate flags are computed as the catalogue computes them: by content hash over the whole set.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from femo_pipeline import modeldata  # noqa: E402
from femo_pipeline.human_baseline import VOTE_COLUMNS  # noqa: E402
from femo_pipeline.vocab import FER2013_CLASSES  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
FER2013_DIR = SHARED / "fer2013"
VOTES_CSV = SHARED / "ferplus" / "ferplus_votes_by_file.csv"


def _read_votes(path: Path) -> dict[str, np.ndarray]:
    frame = pd.read_csv(path)
    return dict(zip(frame["path"], frame[list(VOTE_COLUMNS)].to_numpy(np.int64)))


def read_folder(root: Path = FER2013_DIR, votes: Path = VOTES_CSV, limit: int = 0) -> dict:
    """Every file as raw columns: rel path, split, label, JPEG bytes, sha256, FER+ votes (0 where none);
    `limit` files per split and emotion (0: all)."""
    votes_of = _read_votes(votes)
    cols = {"rel_path": [], "split": [], "emotion_id": [], "data": [], "content_hash": [], "votes": []}
    for split in ("train", "test"):
        for label, name in enumerate(FER2013_CLASSES):
            for path in sorted((root / split / name).glob("*.jpg"))[: (limit if split == "train" else limit // 4)
                                                                      or None]:
                data = path.read_bytes()
                rel = f"{split}/{name}/{path.name}"
                cols["rel_path"].append(rel)
                cols["split"].append(split)
                cols["emotion_id"].append(label)
                cols["data"].append(data)
                cols["content_hash"].append(hashlib.sha256(data).hexdigest())
                cols["votes"].append(votes_of.get(rel, np.zeros(len(VOTE_COLUMNS), np.int64)))
    return cols


def write_pack(cols: dict, out: Path) -> Path:
    sizes = np.array([len(d) for d in cols["data"]], np.int64)
    np.savez_compressed(out, blob=np.frombuffer(b"".join(cols["data"]), np.uint8), offsets=np.concatenate([[0], np.cumsum(sizes)]),
             rel_path=np.array(cols["rel_path"]), split=np.array(cols["split"]),
             emotion_id=np.array(cols["emotion_id"], np.int8),
             sha256=np.frombuffer(b"".join(bytes.fromhex(h) for h in cols["content_hash"]), np.uint8).reshape(-1, 32),
             votes=np.stack(cols["votes"]).astype(np.int8))
    return out


def read_pack(path: Path) -> dict:
    z = np.load(path)
    blob, offsets = z["blob"].tobytes(), z["offsets"]
    return {"rel_path": list(z["rel_path"]), "split": list(z["split"]), "emotion_id": z["emotion_id"].astype(int),
            "data": [blob[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)],
            "content_hash": [row.tobytes().hex() for row in z["sha256"]], "votes": list(z["votes"].astype(np.int64))}


def splits(cols: dict) -> tuple[dict, dict]:
    """(train, test) as {"frame", "x"}: the frame has id, rel_path, emotion_id, content_hash, the duplicate flags
    and the FER+ vote columns; ids are row numbers in (split, emotion, file name) order."""
    frame = pd.DataFrame({"id": np.arange(len(cols["rel_path"]), dtype=np.int64), "rel_path": cols["rel_path"],
                          "split": cols["split"], "emotion_id": np.asarray(cols["emotion_id"], int),
                          "content_hash": cols["content_hash"]})
    groups = frame.groupby("content_hash").agg(
        n=("id", "size"), splits=("split", "nunique"), labels=("emotion_id", "nunique"))
    frame["duplicate_count"] = frame["content_hash"].map(groups["n"]).astype(int)
    frame["duplicate_cross_split"] = frame["content_hash"].map(groups["splits"] > 1).astype(bool)
    frame["duplicate_label_conflict"] = frame["content_hash"].map(groups["labels"] > 1).astype(bool)
    frame[list(VOTE_COLUMNS)] = np.stack(cols["votes"])
    x = modeldata.stack(cols["data"], 48)
    out = []
    for split in ("train", "test"):
        mask = (frame["split"] == split).to_numpy()
        out.append({"frame": frame[mask].drop(columns="split").reset_index(drop=True), "x": x[mask]})
    return out[0], out[1]


def _first(cols: dict, limit: int) -> dict:
    """The first `limit` files of each Training emotion and limit // 4 of each test emotion (as read_folder)."""
    seen: dict = {}
    keep = []
    for split, label in zip(cols["split"], cols["emotion_id"]):
        seen[split, label] = seen.get((split, label), 0) + 1
        keep.append(seen[split, label] <= (limit if split == "train" else limit // 4))
    return {k: [v[i] for i in range(len(keep)) if keep[i]] for k, v in cols.items()}


def load(pack: str | None = None, limit: int = 0) -> tuple[dict, dict]:
    """(train, test) from a pack file, or from the shared folder; `limit` files per split and emotion (0: all)."""
    if not pack:
        return splits(read_folder(limit=limit))
    cols = read_pack(Path(pack))
    return splits(_first(cols, limit) if limit else cols)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "pack":
        sys.exit("usage: python bench/_fer2013.py pack OUT.npz")
    print(write_pack(read_folder(), Path(sys.argv[2])))
