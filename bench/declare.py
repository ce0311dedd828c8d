"""Benchmark: which reader femo declares against people, chosen on validation only.

A training run gives two heads (FER-2013's labels, the FER+ crowd's votes). The declared reader mixes their
probabilities, p = w * p_ferplus + (1 - w) * p_fer2013, and may shift the result against the Training prior of
the crowd's plurality (logit adjustment: log p - tau * log prior), which removes the crowd head's pull towards the
classes people pick most (Neutral, Happiness) on faces that are not distributed like FER-2013. Every (w, tau) of a
small grid is scored on the run's own validation split (carved from Training with the run's seed) against the
crowd, seven-class votes, one view, by the mean of accuracy and class-balanced recall (each vote's reference is the
plurality of the other votes, as in the headline); the best is declared. Test images are scored only after the
choice, for the table.

    .venv/bin/python bench/declare.py --runs .gpu/runs/seed2013 .gpu/runs/seed2014 --pack .gpu/fer2013.npz
    .venv/bin/python bench/declare.py --runs femo_pipeline/shipped     # the shipped heads (fer2013/ferplus.keras)
    .venv/bin/python bench/declare.py --tiny                           # seconds, writes nothing
    .venv/bin/python bench/declare.py --runs A B C --ship              # ship run A (half-size files) and the
                                                                       # test predictions of seeds B, C
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _fer2013  # noqa: E402
from bench._report import machine  # noqa: E402
from femo_pipeline import (  # noqa: E402
    benchmark,
    devices,
    evaluation,
    factor_grid,
    fair,  # noqa: E402
)
from femo_pipeline import declared as mix  # noqa: E402
from femo_pipeline import model as femo_model  # noqa: E402


def heads_of(folder: Path) -> tuple[dict, dict]:
    """{head: network} of a run folder (.keras files, or weights.npz + facts.json from bench/train.py --export)
    and the run's facts (its validation split was drawn with facts' recipe seed)."""
    facts_file = folder / "facts.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    names = {k: folder / f"{k}.keras" for k in femo_model.HEADS}
    if not all(p.exists() for p in names.values()):
        names = {k: folder / f"femo_cnn_{k}.keras" for k in femo_model.HEADS}
    if not all(p.exists() for p in names.values()):
        from bench.train import rebuild

        rebuild(folder, facts)
        names = {k: folder / f"{k}.keras" for k in femo_model.HEADS}
    return {k: femo_model.load(p, "auto") for k, p in names.items()}, facts


def run_seed(facts: dict) -> int:
    return int((facts.get("recipe") or {}).get("seed", femo_model.TrainConfig().seed))


def crowd_figures(frame, readers: dict, n_boot: int) -> dict:
    """Each reader against one person on the leak-free test images, crowd reference, seven classes, one view:
    accuracy and balanced recall comparisons, and how often it says Neutral."""
    keep = benchmark.leak_free(frame)
    s = fair.score(frame[keep], {k: v[keep] for k, v in readers.items()},
                   frame.loc[keep, "emotion_id"].to_numpy(int), reference="ferplus", variant="seven_classes")
    return {name: {"accuracy": fair.compare(s, name, n_boot=n_boot),
                   "balanced_recall": fair.compare_balanced(s, name, n_boot=n_boot),
                   "says_neutral": float((readers[name] == 6).mean())} for name in readers}


def evaluate(folder: Path, train: dict, test: dict, n_boot: int) -> dict:
    """One run: the mix chosen on its validation split, the test-time views each head would use (validation),
    and its test probabilities and figures."""
    heads, facts = heads_of(folder)
    seed = run_seed(facts)
    labels = train["frame"]["emotion_id"].to_numpy(int)
    votes = train["frame"][list(fair.VOTE_COLUMNS)].to_numpy(np.int64)
    tr, va = femo_model.stratified_split(labels, 0.1, seed)
    prior = mix.crowd_prior(votes[tr], labels[tr])
    val = {k: femo_model.predict(net, train["x"][va]) for k, net in heads.items()}
    table = mix.choose(val, votes[va], labels[va], prior)
    best = table.iloc[0]
    va_plural = np.where(fair.answer_order(votes[va])[:, :7].sum(1) > 0,
                         fair.answer_order(votes[va])[:, :7].argmax(1), labels[va])
    truth = {"fer2013": labels[va], "ferplus": va_plural}
    tta = {}
    for k, net in heads.items():
        views = {m: (val[k] if m == "none" else femo_model.predict(net, train["x"][va], tta=m)) for m in
                 femo_model.TTA_MODES}
        scores = {m: float((p.argmax(1) == truth[k]).mean()) for m, p in views.items()}
        tta[k] = {"use": max(femo_model.TTA_MODES, key=lambda m, sc=scores: (sc[m], -femo_model.TTA_MODES.index(m))),
                  "validation": scores}
    probs = {k: femo_model.predict(net, test["x"]) for k, net in heads.items()}
    declared = mix.mix(probs, float(best.w), float(best.tau), prior)
    readers = {"ferplus head": probs["ferplus"].argmax(1), "fer2013 head": probs["fer2013"].argmax(1),
               "declared": declared.argmax(1)}
    frame = test["frame"]
    fer = {name: evaluation.score(frame["emotion_id"], pred, list(range(7)), n_boot=n_boot)
           for name, pred in readers.items()}
    return {"folder": folder, "heads": heads, "facts": facts, "seed": seed, "prior": prior, "table": table,
            "mix": {"w": float(best.w), "tau": float(best.tau)}, "tta": tta, "probs": probs, "declared": declared,
            "crowd": crowd_figures(frame, readers, n_boot), "fer2013": fer}


def show(result: dict) -> None:
    best = result["table"].iloc[0]
    print(f"\n{result['folder']} (seed {result['seed']}): best on validation w={best.w} tau={best.tau} "
          f"(criterion {100 * best.criterion:.2f}); views chosen on validation: "
          + ", ".join(f"{k} {t['use']}" for k, t in result["tta"].items()))
    print(result["table"].head(6).to_string(index=False))
    for name, c in result["crowd"].items():
        acc, bal = c["accuracy"], c["balanced_recall"]
        print(f"  test {name:13s}: FER-2013 labels {100 * result['fer2013'][name]['accuracy']:.1f}; crowd accuracy "
              f"{100 * acc['accuracy_reader']:.1f} ({acc['difference_pp']:+.1f} vs one person, "
              f"{acc['ci_low_pp']:+.1f} to {acc['ci_high_pp']:+.1f}); balanced recall "
              f"{100 * bal['accuracy_reader']:.1f} ({bal['difference_pp']:+.1f}, {bal['ci_low_pp']:+.1f} to "
              f"{bal['ci_high_pp']:+.1f}); says Neutral for {100 * c['says_neutral']:.0f} %")


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def ship(results: list[dict], test: dict) -> None:
    """The first run's heads as half-size (float16-weight) files in femo_pipeline/shipped/ with their sidecars;
    the declared mix in shipped/declared.json; the other runs (seeds) as test predictions in shipped/seeds/."""
    main, today, here = results[0], dt.date.today().isoformat(), machine()
    facts = main["facts"]
    device = facts.get("device") or devices.cpu_device()
    for k, net in main["heads"].items():
        path = femo_model.SHIPPED[k]
        femo_model.with_precision(net, "float16").save(path)
        crowd = main["crowd"][f"{k} head"]
        sidecar = {
            "label_source": k, "measured": today, "scored_on": here, "recipe": facts.get("recipe"),
            "backend": facts.get("backend"), "device": devices.describe(device), "device_record": device,
            "seconds": facts.get("seconds"), "epochs_run": facts.get("epochs_run"),
            "parameters": facts.get("parameters"), "train_images": facts.get("train_images"),
            "validation_images": facts.get("validation_images"), "weights": "float16",
            "best_epoch": facts["heads"][k]["best_epoch"],
            "best_validation_accuracy": facts["heads"][k]["best_validation_accuracy"],
            "validation_reference": "FER-2013 label" if k == "fer2013" else "FER+ vote plurality (seven classes)",
            "tta": main["tta"][k]["use"], "tta_on_validation": main["tta"][k]["validation"],
            "fer2013_test_one_view": main["fer2013"][f"{k} head"],
            "ferplus_loo_seven_classes_leakfree_one_view": crowd["accuracy"],
            "ferplus_loo_balanced_recall_leakfree_one_view": crowd["balanced_recall"],
        }
        path.with_suffix(".json").write_text(json.dumps(_plain(sidecar), indent=1, default=float) + "\n")
    declared = {
        "rule": "p = w * p_ferplus + (1 - w) * p_fer2013, then log p - tau * log(prior); (w, tau) chosen on the "
                "run's validation split by the mean of accuracy and class-balanced recall against the crowd",
        "w": main["mix"]["w"], "tau": main["mix"]["tau"], "prior": main["prior"].tolist(),
        "seed": main["seed"], "validation": main["table"].to_dict("records"), "measured": today,
        "test_leakfree_one_view": main["crowd"]["declared"],
    }
    (femo_model.SHIPPED_DIR / "declared.json").write_text(json.dumps(_plain(declared), indent=1) + "\n")
    seeds = femo_model.SHIPPED_DIR / "seeds"
    seeds.mkdir(exist_ok=True)
    for r in results[1:]:
        f = r["facts"]
        stem = seeds / f"seed{r['seed']}"
        arrays = {k: factor_grid.by_content_rows(test["frame"], p).astype(np.float16) for k, p in r["probs"].items()}
        np.savez_compressed(stem.with_suffix(".npz"), **arrays)
        record = {"seed": r["seed"], "recipe": f.get("recipe"), "backend": f.get("backend"),
                  "device": devices.describe(f.get("device") or devices.cpu_device()), "seconds": f.get("seconds"),
                  "epochs_run": f.get("epochs_run"), "parameters": f.get("parameters"),
                  "heads": f.get("heads"), "mix": r["mix"], "prior": r["prior"].tolist(), "measured": today,
                  "test_fingerprint": factor_grid.content_fingerprint(test["frame"]),
                  "predicted_on": here, "crowd_leakfree_one_view": r["crowd"]["declared"]}
        stem.with_suffix(".json").write_text(json.dumps(_plain(record), indent=1) + "\n")
    print(f"shipped to {femo_model.SHIPPED_DIR}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="*", default=[str(femo_model.SHIPPED_DIR)])
    parser.add_argument("--pack", default="")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    train, test = _fer2013.load(args.pack or None, limit=40 if args.tiny else 0)
    print(f"loaded in {time.perf_counter() - start:.0f} s")
    results = []
    for folder in map(Path, args.runs):
        results.append(evaluate(folder, train, test, 100 if args.tiny else args.n_boot))
        show(results[-1])
    if args.ship and not args.tiny:
        ship(results, test)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
