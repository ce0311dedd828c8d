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


def render_markdown(report: dict) -> str:
    """The benchmark report as Markdown, from the dict that is also written as JSON."""
    lines = ["# Is AI better than humans at reading facial emotions?", ""]
    if report.get("synthetic"):
        lines += ["**These numbers come from SYNTHETIC demo images: they show the pipeline works, not the answer.**", ""]
    lines += [f"Generated {report['generated']}. Human figures: FER+ crowd votes measured here; published figure "
              f"{PUBLISHED_HUMAN}.", ""]
    for ds in report["datasets"]:
        lines += [f"## {ds['name']}", "", ds.get("description", ""), ""]
        lines += ["| reader | images | accuracy | 95 % CI | macro-F1 | verdict vs humans |", "| --- | --- | --- | --- | --- | --- |"]
        for row in ds["rows"]:
            lines.append(f"| {row['reader']} | {row.get('images', 'n/a')} | {pct(row.get('accuracy'))} | "
                         f"{ci(row.get('accuracy_ci95'))} | {pct(row.get('macro_f1'))} | {row.get('verdict', '')} |")
        lines += ["", f"**Verdict:** {ds['verdict']}", ""]
    if report.get("not_run"):
        lines += ["## Not run", ""] + [f"- {name}: {why}" for name, why in report["not_run"].items()] + [""]
    lines += ["## Training cost", "", f"{report.get('training', {})}", ""]
    return "\n".join(lines)


def to_html(markdown_text: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>femo benchmark</title><style>"
            "body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.2rem .5rem}</style></head><body>" + body + "</body></html>")
