"""Pictures and the benchmark report's text. Pure module (matplotlib, markdown; no Dagster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from femo_pipeline.eda import _figure, _save
from femo_pipeline.vocab import EMOTIONS

PUBLISHED_HUMAN = "65 +/- 5 % (Goodfellow et al. 2013, quoted, not measured here)"


def curves_png(history: dict, path: Path, note: str = "") -> Path:
    plt, fig, (ax_loss, ax_acc) = _figure_pair()
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        ax.plot(history.get(key, []), label="train")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label="validation")
        ax.set(title=f"{key}{note}", xlabel="epoch")
        ax.legend()
    return _save(plt, fig, path)


def _figure_pair():
    plt, fig, ax = _figure(10, 3.6)
    fig.delaxes(ax)
    return plt, fig, fig.subplots(1, 2)


def confusion_png(matrix: list[list[int]], classes: list[int], path: Path, title: str) -> Path:
    plt, fig, ax = _figure(6, 5.2)
    m = np.asarray(matrix, dtype=float)
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    names = [EMOTIONS[c] for c in classes]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return _save(plt, fig, path)


def pct(x: float) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f} %"


def ci(pair) -> str:
    return "n/a" if not pair or pair[0] != pair[0] else f"{100 * pair[0]:.1f}-{100 * pair[1]:.1f} %"


def pp(x) -> str:
    return "n/a" if x is None or x != x else f"{x:+.1f}"


def _md(frame, columns: dict[str, str]) -> list[str]:
    """A Markdown table of the frame's columns (renamed by `columns`); pre-formatted strings expected."""
    if frame is None or not len(frame):
        return ["_(none)_", ""]
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    rows = ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in frame.to_dict("records")]
    return [head, rule, *rows, ""]


def _verdict_rows(v):
    out = v.copy()
    out["model"] = [f"{pct(a)} ({pct(lo)}-{pct(hi)})" for a, lo, hi in
                    zip(out["accuracy_reader"], out["accuracy_reader_low"], out["accuracy_reader_high"])]
    out["other"] = [f"{pct(a)} ({pct(lo)}-{pct(hi)})" for a, lo, hi in
                    zip(out["accuracy_against"], out["accuracy_against_low"], out["accuracy_against_high"])]
    out["difference"] = [f"{pp(d)} ({pp(lo)} to {pp(hi)})" for d, lo, hi in
                         zip(out["difference_pp"], out["ci_low_pp"], out["ci_high_pp"])]
    out["verdict"] = [f"**{x}**" for x in out["verdict"]]
    return out


VERDICT_COLUMNS = {"reference": "reference", "variant": "variant", "reader": "reader", "images": "images",
                   "model": "reader accuracy (95 % CI)", "other": "against (95 % CI)",
                   "difference": "difference, points (95 % CI)", "verdict": "verdict"}
REFERENCE_NAMES = {"ferplus": "FER+ crowd (leave one annotator out)", "fer2013": "FER-2013 label"}


def render_markdown(report: dict) -> str:
    """The benchmark report as Markdown, from the dict that is also written as JSON (frames as records)."""
    import pandas as pd

    lines = ["# Is AI better than humans at reading facial emotions?", ""]
    if report.get("synthetic"):
        lines += ["**These numbers come from SYNTHETIC demo images and drawn votes: they show the pipeline works, "
                  "not the answer.**", ""]
    lines += [f"Generated {report['generated']}. Humans: FER+ crowd votes (10 annotators per image) measured here; "
              f"published figure {PUBLISHED_HUMAN}.", ""]
    lines += ["## The answer", "", report.get("headline", "No verdict."), "",
              "Headline: the **leak-free** test images (bytes not in Training, no conflicting duplicate), the "
              "**FER+ reference** (each annotator and the model scored against the plurality of the other "
              "annotators) restricted to **the seven classes** a model can answer: the one setting where humans "
              "and the model face the same task with the same choices. FER-2013's single label and the all-votes "
              "variant (a contempt/unknown/not-a-face vote is a human miss) are shown beside. Verdicts come from "
              "the paired bootstrap of the difference (same resampled images for both readers): better or worse "
              "when its 95 % interval excludes 0.", ""]
    verdicts = pd.DataFrame(report.get("verdicts", []))
    for dataset, description in report.get("datasets", {}).items():
        lines += [f"## {dataset[0].upper() + dataset[1:]}: models against humans", "", f"{description}.", ""]
        if len(verdicts):
            v = verdicts[(verdicts["dataset"] == dataset) & (verdicts["against"] == "human")]
            v = v.assign(reference=v["reference"].map(REFERENCE_NAMES))
            lines += _md(_verdict_rows(v), {**VERDICT_COLUMNS, "other": "one human (95 % CI)"})
        else:
            lines += ["No human votes for these images: no verdict.", ""]
    if len(verdicts) and (verdicts["against"] != "human").any():
        lines += ["## Models against the declared model (paired, leak-free)", ""]
        v = verdicts[(verdicts["against"] != "human") & (verdicts["dataset"] == "leak-free test")]
        v = v.assign(reference=v["reference"].map(REFERENCE_NAMES))
        lines += _md(_verdict_rows(v), {**VERDICT_COLUMNS, "against": "against"})
    if report.get("per_class_png"):
        lines += ["## Per emotion: where AI reads faces better than people, and where worse", "",
                  f"![per-class recall]({report['per_class_png']})", ""]
    per_class = pd.DataFrame(report.get("per_class", []))
    if len(per_class):
        per_class["reader recall"] = [f"{pct(a)} ({pct(lo)}-{pct(hi)})" for a, lo, hi in zip(
            per_class["recall_reader"], per_class["recall_reader_low"], per_class["recall_reader_high"])]
        per_class["human recall"] = [f"{pct(a)} ({pct(lo)}-{pct(hi)})" for a, lo, hi in zip(
            per_class["recall_against"], per_class["recall_against_low"], per_class["recall_against_high"])]
        per_class["difference"] = [f"{pp(d)} ({pp(lo)} to {pp(hi)})" for d, lo, hi in zip(
            per_class["difference_pp"], per_class["ci_low_pp"], per_class["ci_high_pp"])]
        lines += _md(per_class, {"emotion": "emotion", "reader recall": "model recall (95 % CI)",
                                 "human recall": "one human (95 % CI)", "difference": "difference, points",
                                 "verdict": "verdict"})
    scores = pd.DataFrame(report.get("scores", []))
    if len(scores):
        lines += ["## Every reader, one answer per image, against the FER-2013 label", ""]
        s = scores[(scores["variant"] == "per_image")].pivot_table(
            index=["dataset", "reader"], columns="metric", values=["value", "ci_low", "ci_high"], aggfunc="first")
        rows = [{"dataset": d, "reader": r, "accuracy": f"{pct(s.loc[(d, r), ('value', 'accuracy')])} "
                 f"({pct(s.loc[(d, r), ('ci_low', 'accuracy')])}-{pct(s.loc[(d, r), ('ci_high', 'accuracy')])})",
                 "macro_f1": pct(s.loc[(d, r), ("value", "macro_f1")])} for d, r in s.index]
        lines += _md(pd.DataFrame(rows), {"dataset": "dataset", "reader": "reader",
                                          "accuracy": "accuracy (95 % CI)", "macro_f1": "macro-F1"})
    lines += _factors_lines(report)
    runs = pd.DataFrame(report.get("model_runs", []))
    if len(runs):
        lines += ["## Readers, caveats and training cost", ""]
        runs = runs.assign(
            declared=["**declared**" if r == report.get("declared") else "" for r in runs["reader"]],
            minutes=[("n/a" if s is None or s != s else f"{s / 60:.1f}") for s in runs["train_seconds"]],
            val=[pct(v) for v in runs["validation_accuracy"]],
            params=[("n/a" if p is None or p != p else f"{int(p):,}") for p in runs["parameters"]],
            caveat=runs["caveat"].fillna(""), backend=runs["backend"].fillna("n/a"), device=runs["device"].fillna("n/a"))
        lines += _md(runs, {"reader": "reader", "declared": "", "origin": "origin", "id": "model run",
                            "val": "validation accuracy", "minutes": "training minutes", "backend": "backend",
                            "device": "device", "params": "parameters", "caveat": "caveat"})
    if report.get("not_run"):
        lines += ["## Not run or not used", ""] + [f"- {name}: {why}" for name, why in report["not_run"].items()] + [""]
    return "\n".join(lines)


def _factors_lines(report: dict) -> list[str]:
    """What affects the model (data_factors): the plot and one row per run and reference."""
    import pandas as pd

    factors = pd.DataFrame(report.get("data_factors", []))
    if not len(factors):
        return ["## What affects the model", "", "Not measured in this warehouse: materialize data_factors "
                "(about 50 minutes on 2 cores with the real data) and data_factors_table.", ""]
    lines = ["## What affects the model: quantity and quality of the training data", "",
             "femo's recipe (narrower, width of the first block as configured) trained on a share of Training "
             "drawn with one seed, with FER-2013's labels or the FER+ crowd's plurality on the same images, and "
             "without the duplicate and conflicting images. Every run sees the same number of training images "
             "(smaller shares train for more epochs), so the lines show the data, not the compute. Scored on the "
             "leak-free test images against each reference (seven-class votes)." , ""]
    if report.get("data_factors_png"):
        lines += [f"![what affects the model]({report['data_factors_png']})", ""]
    return lines + factors_table(factors)


def factors_table(factors) -> list[str]:
    """The data_factors rows as a Markdown table (the report and bench/answer.py --factors show the same)."""
    factors = factors.assign(
        share=[f"{100 * f:g} %" for f in factors["fraction"]],
        dedup=["yes" if d else "" for d in factors["without_duplicates"]],
        reference=factors["reference"].map(REFERENCE_NAMES),
        acc=[f"{pct(a)} ({pct(lo)}-{pct(hi)})" for a, lo, hi in
             zip(factors["accuracy"], factors["ci_low"], factors["ci_high"])],
        minutes=[f"{s / 60:.1f}{' (cut)' if c else ''}" for s, c in zip(factors["seconds"], factors["cut_by_budget"])])
    return _md(factors, {"label_source": "labels", "share": "share of Training", "dedup": "no duplicates",
                                 "train_images": "training images", "epochs": "epochs", "minutes": "minutes",
                                 "reference": "reference", "acc": "leak-free accuracy (95 % CI)"})


def per_class_png(per_class, path: Path, title: str) -> Path:
    """Grouped bars: recall per emotion of one human and of the model, with 95 % intervals."""
    plt, fig, ax = _figure(9, 4)
    names = list(per_class["emotion"])
    x = np.arange(len(names))
    for offset, who, label in ((-0.2, "against", "one human"), (0.2, "reader", "model")):
        value = 100 * per_class[f"recall_{who}"].to_numpy(float)
        low = 100 * per_class[f"recall_{who}_low"].to_numpy(float)
        high = 100 * per_class[f"recall_{who}_high"].to_numpy(float)
        err = np.nan_to_num(np.vstack([value - low, high - value]))
        ax.bar(x + offset, value, 0.4, yerr=err, capsize=3, label=label)
    ax.set_xticks(x, names, rotation=20)
    ax.set(ylabel="recall (%)", ylim=(0, 100), title=title)
    ax.legend()
    return _save(plt, fig, path)


def factors_png(results, path: Path, title: str) -> Path:
    """Accuracy against training images, one line per label source (dashed: duplicates removed)."""
    plt, fig, ax = _figure(8, 4.5)
    for (source, dedup, reference), group in results.groupby(["label_source", "without_duplicates", "reference"]):
        g = group.sort_values("train_images")
        ax.plot(g["train_images"], 100 * g["accuracy"], marker="o", linestyle="--" if dedup else "-",
                label=f"{source} labels{' (no duplicates)' if dedup else ''}, vs {REFERENCE_NAMES[reference]}")
    ax.set(xlabel="training images", ylabel="leak-free test accuracy (%)", title=title)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def to_html(markdown_text: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>femo benchmark</title><style>"
            "body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.2rem .5rem}</style></head><body>" + body + "</body></html>")
