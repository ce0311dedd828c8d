"""The study's question "how do the quantity and quality of data affect the model?" as a grid of cells.

A cell is one training run of femo's network: a share of FER-2013 Training (10/25/50/100 %), a label source
(FER-2013's labels, the FER+ crowd's plurality, or its vote distributions), a share of labels replaced at random
(0/10/20/40 %), duplicates kept or removed (at an equal number of training steps), and a seed. Each cell trains
with the shipped network, epochs scaled to the share (smaller shares get more passes), the checkpoint of its best
validation epoch and early stopping on validation, then is scored on the leak-free test images against both
references. Cells are independent: they run in any order, on any machine, and a record says which.
`aggregate` turns the records that exist into curves (mean, spread and count over seeds) and says what is missing.
Pure module (numpy, pandas; no Dagster; Keras only inside `run_cell`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from femo_pipeline import benchmark, devices, fair
from femo_pipeline import human_baseline as hb

SHARES = (10, 25, 50, 100)
LABELS = ("fer2013", "ferplus", "ferplus_votes")
NOISE = (0, 10, 20, 40)
DUPLICATES = ("kept", "removed")
SEEDS = (0, 1, 2)
EPOCHS_AT_FULL = 30  # passes over all of Training; a share f trains EPOCHS_AT_FULL / sqrt(f) (capped)
MAX_EPOCHS = 150
NETWORK = {"width": 32, "block_convs": (1, 2, 2, 2)}  # the shipped network


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    labels: str
    share: int
    noise: int = 0
    duplicates: str = "kept"
    seed: int = 0

    def __post_init__(self):
        if self.labels not in LABELS or self.share not in SHARES or self.noise not in NOISE \
                or self.duplicates not in DUPLICATES or self.seed not in SEEDS:
            raise ValueError(f"not a grid cell: {self}")
        if self.noise and self.labels == "ferplus_votes":
            raise ValueError("label noise replaces hard labels; the vote distributions have none")

    @property
    def key(self) -> str:
        return f"{self.labels}-s{self.share:03d}-n{self.noise:02d}-{self.duplicates}-seed{self.seed}"

    @classmethod
    def parse(cls, key: str) -> Cell:
        try:
            labels, share, noise, duplicates, seed = key.rsplit("-", 4)
            return cls(labels, int(share.removeprefix("s")), int(noise.removeprefix("n")), duplicates,
                       int(seed.removeprefix("seed")))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a grid cell key: {key!r} (e.g. {GRID[0].key})") from exc

    @property
    def curves(self) -> list[str]:
        """The curves this cell is a point of."""
        out = []
        if self.noise == 0 and self.duplicates == "kept":
            out.append("size")
        if self.share == 100 and self.duplicates == "kept" and self.labels != "ferplus_votes":
            out.append("noise")
        if self.share == 100 and self.noise == 0 and self.labels != "ferplus_votes":
            out.append("duplicates")
        return out


def _grid() -> list[Cell]:
    cells = [Cell(lab, s, seed=seed) for lab in LABELS for s in SHARES for seed in SEEDS]
    cells += [Cell(lab, 100, n, seed=seed) for lab in LABELS[:2] for n in NOISE[1:] for seed in SEEDS]
    cells += [Cell(lab, 100, 0, "removed", seed) for lab in LABELS[:2] for seed in SEEDS]
    return cells


GRID = _grid()
KEYS = [c.key for c in GRID]
# the cells that answer the question first: 4 sizes x 2 label sources x 2 seeds, the noise curve on FER-2013's
# labels and duplicates removed on both sources (one seed), then the rest
PRIORITY = ([Cell(lab, s, seed=seed) for seed in (0, 1) for lab in LABELS[:2] for s in SHARES]
            + [Cell("fer2013", 100, n) for n in NOISE[1:]] + [Cell(lab, 100, 0, "removed") for lab in LABELS[:2]])
ORDER = [*PRIORITY, *[c for c in GRID if c not in PRIORITY]]


def cells(keys: Iterable[str] | None = None) -> list[Cell]:
    """Cells by key (all of the grid, in priority order, for None); an unknown key is a ValueError."""
    if keys is None:
        return list(ORDER)
    out = [Cell.parse(k) for k in keys]
    stray = [c.key for c in out if c not in GRID]
    if stray:
        raise ValueError(f"not in the grid: {stray}")
    return out


def noisy_labels(labels: np.ndarray, share: float, seed: int, n_classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(labels with exactly round(share * n) of them replaced by another class drawn at random, the indices
    replaced). Seeded: the same call gives the same labels."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    k = int(round(share * len(labels)))
    idx = np.sort(rng.choice(len(labels), size=k, replace=False)) if k else np.array([], dtype=np.int64)
    out = labels.copy()
    out[idx] = (labels[idx] + rng.integers(1, n_classes, size=k)) % n_classes  # never the old class
    return out, idx


def _subset_seed(cell: Cell) -> int:
    return 2013 + cell.seed


def training_rows(frame: pd.DataFrame, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """(rows of Training, targets) of a cell. The share is drawn from all of Training with the cell's seed, so
    every label source trains on the same images (FER+ less those nobody voted an emotion for); removing
    duplicates drops every image with a byte copy (in Training or Test) and every conflicting one; noise then
    replaces that share of the cell's hard labels."""
    n = len(frame)
    pick = np.sort(np.random.default_rng(_subset_seed(cell)).permutation(n)[: max(14, int(round(cell.share / 100 * n)))])
    if cell.duplicates == "removed":
        clean = benchmark.leak_free(frame) & (frame["duplicate_count"].to_numpy() <= 1)
        pick = pick[clean[pick]]
    if cell.labels == "fer2013":
        targets = frame["emotion_id"].to_numpy(np.int64)[pick]
    else:
        votes = hb.seven_class_votes(frame)[pick]
        keep = votes.sum(axis=1) > 0
        pick, votes = pick[keep], votes[keep]
        targets = votes if cell.labels == "ferplus_votes" else votes.argmax(axis=1).astype(np.int64)
    if cell.noise:
        targets, _ = noisy_labels(targets, cell.noise / 100, _subset_seed(cell) + 7919)
    return pick, targets


def epochs_for(cell: Cell, n_rows: int, n_rows_kept: int | None = None) -> int:
    """Passes over the cell's images: EPOCHS_AT_FULL / sqrt(share), capped; with duplicates removed, as many
    training steps as the same cell with them kept (n_rows_kept rows)."""
    epochs = EPOCHS_AT_FULL / math.sqrt(cell.share / 100)
    if cell.duplicates == "removed" and n_rows_kept:
        epochs *= n_rows_kept / max(1, n_rows)
    return int(min(MAX_EPOCHS, round(epochs)))


def batch_for(n_train: int) -> int:
    """A batch that keeps about 40 or more steps per epoch: 64 for the smallest shares up to 256."""
    return int(min(256, max(64, 2 ** math.floor(math.log2(max(n_train, 1) / 40)))))


def train_config(cell: Cell, n_rows: int, n_rows_kept: int | None = None, **overrides):
    """The TrainConfig of a cell (femo's recipe with the shipped network)."""
    from femo_pipeline.model.config import TrainConfig

    epochs = epochs_for(cell, n_rows, n_rows_kept)
    n_train = int(n_rows * 0.9)
    base = dict(NETWORK, epochs=epochs, batch_size=batch_for(n_train), seed=2013 + cell.seed,
                targets="votes" if cell.labels == "ferplus_votes" else "labels", patience=max(8, epochs // 4),
                precision="auto")
    return TrainConfig(**{**base, **overrides})


def content_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the sorted (content hash, label) pairs of a set of images: the same for any copy of the same
    faces, whatever ids or paths a warehouse gives them (a cell's record says which data it measured)."""
    import hashlib

    pairs = sorted(f"{h}|{y}" for h, y in zip(frame["content_hash"], frame["emotion_id"]))
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()


def by_content_rows(frame: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Rows of `values` (one per row of frame) in the order of the sorted distinct content hashes, the first row
    of each hash (copies of one face get one answer), so they map back onto any copy of the same test images
    (`from_content`)."""
    values = np.asarray(values)
    hashes = frame["content_hash"].to_numpy()
    order = np.argsort(hashes, kind="stable")
    first = np.ones(len(order), bool)
    first[1:] = hashes[order][1:] != hashes[order][:-1]
    return values[order[first]]


def by_content(frame: pd.DataFrame, pred: np.ndarray) -> list[int]:
    """Class predictions in content-hash order (by_content_rows), as a JSON-ready list."""
    return by_content_rows(frame, np.asarray(pred, dtype=int)).astype(int).tolist()


def from_content(frame: pd.DataFrame, values) -> np.ndarray:
    """Rows recorded in content-hash order (`by_content_rows`) as one per row of `frame`; a ValueError when they
    are for another set of faces."""
    values = np.asarray(values)
    hashes = np.unique(frame["content_hash"].to_numpy())
    if len(hashes) != len(values):
        raise ValueError("the recorded rows are for another set of test images")
    return values[np.searchsorted(hashes, frame["content_hash"].to_numpy())]


def test_set(frame: pd.DataFrame) -> np.ndarray:
    """The cells' test images: leak-free, with at least one seven-class FER+ vote (a boolean mask)."""
    return benchmark.leak_free(frame) & (hb.seven_class_votes(frame).sum(axis=1) > 0)


def scores(test_frame: pd.DataFrame, pred: np.ndarray, n_boot: int = 1000) -> list[dict]:
    """Accuracy and class-balanced recall (with 95 % bootstrap intervals) of predictions on the cells' test
    images, against the FER-2013 labels and the FER+ crowd (leave one out), seven-class votes."""
    keep = test_set(test_frame)
    frame, p = test_frame[keep], np.asarray(pred)[keep]
    out = []
    for reference in fair.REFERENCES:
        s = fair.score(frame, {"model": p}, frame["emotion_id"].to_numpy(int), reference=reference,
                       variant="seven_classes", human=None)
        acc = fair.paired_bootstrap(s.image_credit("model"), s.image_credit("model"), s.weight, n_boot, 0)
        bal = fair.paired_balanced_bootstrap(s.credit["model"], s.credit["model"], s.mass, n_boot, 0)
        for metric, r in (("accuracy", acc), ("balanced_recall", bal)):
            out.append({"reference": reference, "metric": metric, "value": float(r["a"]),
                        "ci_low": float(r["a_low"]), "ci_high": float(r["a_high"]), "test_images": int(keep.sum())})
    return out


def run_cell(cell: Cell, train: Mapping, test: Mapping, log: Callable[[str], None] = print,
             **overrides) -> dict:
    """Train and score one cell. train/test: {"frame": DataFrame, "x": N x 48 x 48 x 1 uint8} as the model
    group's training_images/evaluation_images. Returns the cell's record (JSON-ready): the cell, what it trained
    on and for how long, on which device, its scores and its test predictions (for later metrics)."""
    from femo_pipeline import model as femo_model

    rows, targets = training_rows(train["frame"], cell)
    kept = None
    if cell.duplicates == "removed":
        kept = len(training_rows(train["frame"], dataclasses.replace(cell, duplicates="kept"))[0])
    config = train_config(cell, len(rows), kept, **overrides)
    start = time.perf_counter()
    net, history, facts = femo_model.train(train["x"][rows], targets, config,
                                           log=lambda m: log(f"cell {cell.key}: {m}"))
    pred = femo_model.predict(net, test["x"]).argmax(axis=1)
    record = {
        "cell": cell.key, **dataclasses.asdict(cell), "curves": cell.curves,
        "rows": int(len(rows)), "train_images": facts["train_images"],
        "validation_images": facts["validation_images"], "epochs": config.epochs, "epochs_run": facts["epochs_run"],
        "best_epoch": facts["best_epoch"], "best_validation_accuracy": facts["best_validation_accuracy"],
        "validation_accuracy_by_epoch": [round(v, 4) for v in history.get("val_accuracy", [])],
        "batch_size": config.batch_size, "width": config.width, "block_convs": list(config.block_convs),
        "train_seconds": facts["seconds"], "seconds": round(time.perf_counter() - start, 1),
        "images_per_second": facts["train_images_per_second"], "precision": femo_model.resolve_precision(
            config.precision), "backend": facts["backend"], "device": facts["device"],
        "device_text": devices.describe(facts["device"]),
        "training_fingerprint": content_fingerprint(train["frame"]),
        "test_fingerprint": content_fingerprint(test["frame"]),
        "scores": scores(test["frame"], pred), "predictions": by_content(test["frame"], pred),
    }
    shown = {f"{s['reference']} {s['metric']}": round(100 * s["value"], 1) for s in record["scores"]}
    log(f"cell {cell.key}: {record['train_images']} images, {facts['epochs_run']}/{config.epochs} epochs, "
        f"{record['seconds']:.0f} s on {record['device_text']}: {shown}")
    return record


SCORE_COLUMNS = ["cell", "labels", "share", "noise", "duplicates", "seed", "reference", "metric", "value", "ci_low",
                 "ci_high", "test_images", "train_images", "epochs", "epochs_run", "best_validation_accuracy",
                 "train_seconds", "device_text"]


_SCORE_FIELDS = ("reference", "metric", "value", "ci_low", "ci_high", "test_images")


def record_problem(record: object, key: str) -> str | None:
    """Why a cell record read from a file cannot stand for cell `key` (another cell, a shape that is not a
    record), or None. A record names the rows it replaces, so one that names another cell is refused."""
    if not isinstance(record, dict):
        return f"not a cell record (a JSON {type(record).__name__})"
    if record.get("cell") != key:
        return f"it names cell {str(record.get('cell'))[:80]!r}, not {key}"
    scores = record.get("scores")
    if not isinstance(scores, list) or not scores or not all(
            isinstance(s, dict) and all(f in s for f in _SCORE_FIELDS) for s in scores):
        return f"its scores are not a list of {', '.join(_SCORE_FIELDS)}"
    numbers = [record.get(f) for f in ("train_images", "epochs", "epochs_run", "train_seconds")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return "train_images, epochs, epochs_run and train_seconds are not all numbers"
    return None


def score_rows(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per (cell, reference, metric) from cell records."""
    rows = [{**{k: r[k] for k in SCORE_COLUMNS if k in r}, **s} for r in records for s in r["scores"]]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def records_from_rows(frame: pd.DataFrame) -> list[dict]:
    """Cell records (cell and scores only) from rows of the warehouse table data_factors, for `aggregate`."""
    return [{"cell": cell, "scores": group[["reference", "metric", "value", "ci_low", "ci_high",
                                            "test_images"]].to_dict("records")}
            for cell, group in frame.groupby("cell", sort=True)]


def aggregate(records: Iterable[Mapping], expected: Iterable[Cell] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Curves from the cell records that exist: one row per (curve, label source, x, reference, metric) (x: the
    share of Training in %, the share of labels replaced in %, or 1 for duplicates removed and 0 kept) with
    the mean over seeds, the spread (sample standard deviation; NaN for one seed), min, max and n; plus the keys
    of the expected cells (default: the whole grid) that have no record."""
    records = list(records)
    have = {r["cell"] for r in records}
    missing = [c.key for c in (GRID if expected is None else expected) if c.key not in have]
    rows = []
    for r in records:
        cell = Cell.parse(r["cell"])
        for curve in cell.curves:
            x = {"size": cell.share, "noise": cell.noise, "duplicates": int(cell.duplicates == "removed")}[curve]
            for s in r["scores"]:
                rows.append({"curve": curve, "labels": cell.labels, "x": x, "reference": s["reference"],
                             "metric": s["metric"], "seed": cell.seed, "value": s["value"]})
    columns = ["curve", "labels", "x", "reference", "metric", "mean", "sd", "min", "max", "n"]
    if not rows:
        return pd.DataFrame(columns=columns), missing
    frame = pd.DataFrame(rows)
    g = frame.groupby(["curve", "labels", "x", "reference", "metric"], sort=True)["value"]
    out = g.agg(mean="mean", sd="std", min="min", max="max", n="count").reset_index()
    return out[columns], missing
