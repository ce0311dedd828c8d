"""The benchmark report's pictures and its HTML file. Pure module (matplotlib, markdown, Jinja2; no Dagster)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from femo_pipeline.eda import _figure, _save
from femo_pipeline.vocab import EMOTIONS


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


def factors_png(curves, path: Path, title: str) -> Path:
    """What affects the model: accuracy against the crowd (mean over seeds, bars: min to max) by share of Training,
    one line per label source; beside it, by share of labels replaced at random."""
    plt, fig, axes = _figure_pair()
    shown = curves[(curves["reference"] == "ferplus") & (curves["metric"] == "accuracy")]
    for ax, curve, xlabel in ((axes[0], "size", "share of Training (%)"),
                              (axes[1], "noise", "labels replaced at random (%)")):
        for labels, group in shown[shown["curve"] == curve].groupby("labels"):
            g = group.sort_values("x")
            mean = 100 * g["mean"].to_numpy(float)
            err = np.vstack([mean - 100 * g["min"].to_numpy(float), 100 * g["max"].to_numpy(float) - mean])
            ax.errorbar(g["x"], mean, yerr=err, marker="o", capsize=3, label=f"{labels} labels")
        ax.set(xlabel=xlabel, ylabel="accuracy vs the crowd (%)", title=title if curve == "size" else "label noise")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(plt, fig, path)


def panels_png(panel, path: Path, title: str) -> Path:
    """Accuracy against panel size: the panel's points (people) and each reader as a horizontal line."""
    plt, fig, ax = _figure(8, 4.5)
    rows = panel[(panel["reference"] == "ferplus") & (panel["metric"] == "accuracy")]
    people = rows.groupby("k")[["panel_value", "panel_ci_low", "panel_ci_high"]].first().sort_index()
    value = 100 * people["panel_value"].to_numpy(float)
    err = np.vstack([value - 100 * people["panel_ci_low"].to_numpy(float),
                     100 * people["panel_ci_high"].to_numpy(float) - value])
    ax.errorbar(people.index, value, yerr=np.nan_to_num(err), marker="o", color="black", capsize=3,
                label="a panel of k people")
    readers = rows[~rows["reader"].str.contains(" views ")].groupby("reader")["value"].mean().sort_values()
    for i, (reader, v) in enumerate(readers.items()):
        ax.axhline(100 * v, linestyle="--", color=f"C{i % 10}", label=reader)
    ax.set(xlabel="people in the panel", ylabel="agreement with the other votes (%)", title=title,
           xticks=list(people.index))
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


@functools.cache
def _templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("femo_pipeline", "templates"), autoescape=True)


def to_html(markdown_text: str, title: str = "femo benchmark") -> str:
    """The report as one self-contained HTML file (templates/report_file.html; no link to any other host)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return _templates().get_template("report_file.html").render(title=title, body=body)
