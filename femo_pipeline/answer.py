"""The answer in words, from the benchmark tables: how many people the declared reader is worth, how it compares
with one person on both fair metrics, the same at more test-time views, and its spread over training seeds.
Pure module (pandas; no Dagster).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from femo_pipeline import benchmark, fair, panels

SYNTHETIC = "SYNTHETIC DEMO (made-up faces and votes; this shows the pipeline works, not the answer): "
VIEWS_SUFFIX = re.compile(r", (\d+) views? \(.*\)$")
SEED_READER = re.compile(r"^femo CNN \(seed (\d+), ")


def _pick(frame: pd.DataFrame, **where) -> pd.DataFrame:
    mask = np.ones(len(frame), bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def one_person(verdicts: pd.DataFrame, reader: str, metric: str) -> pd.Series | None:
    """The headline comparison of a reader with one person on a metric (None when absent)."""
    dataset, reference, variant = benchmark.HEADLINE
    if not len(verdicts) or "metric" not in verdicts:
        return None
    rows = _pick(verdicts, dataset=dataset, reference=reference, variant=variant, reader=reader, against=fair.HUMAN,
                 metric=metric)
    return rows.iloc[0] if len(rows) else None


def _phrase(row: pd.Series) -> str:
    word = {"better": "better", "worse": "worse"}.get(row["verdict"], "no detectable difference")
    return (f"{100 * row['accuracy_reader']:.1f} % vs {100 * row['accuracy_against']:.1f} %, "
            f"{row['difference_pp']:+.1f} points (95 % CI {row['ci_low_pp']:+.1f} to {row['ci_high_pp']:+.1f}): {word}")


def panel_sentence(panel: pd.DataFrame, reader: str, metric: str = "accuracy") -> str | None:
    """'agrees with the crowd like a panel of about 2.4 people (...)' from the panel rows, or None."""
    if not len(panel):
        return None
    rows = _pick(panel, reader=reader, reference="ferplus", metric=metric)
    if rows.empty:
        return None
    w = panels.worth(rows, reader, metric)
    size = {"below": f"fewer than {w['people']:g} person", "above": f"more than {w['people']:g} people"}.get(
        w["beyond"], f"about {w['people']:.1f} people")
    three = rows[rows["k"] == 3]
    versus = ""
    if len(three):
        r = three.iloc[0]
        versus = (f"; against a panel of 3: {100 * r['value']:.1f} % vs {100 * r['panel_value']:.1f} %, "
                  f"{r['difference_pp']:+.1f} points (95 % CI {r['ci_low_pp']:+.1f} to {r['ci_high_pp']:+.1f})")
    return f"agrees with the crowd like a panel of {size}{versus}"


def seed_spread(verdicts: pd.DataFrame, panel: pd.DataFrame, declared: str | None) -> pd.DataFrame:
    """The declared reader's headline figures beside the same recipe trained with other seeds: one row per
    figure with the value per seed, the mean, the sample sd and n (rows only when there is more than one seed)."""
    if declared is None or not len(verdicts) or "metric" not in verdicts:
        return pd.DataFrame(columns=["figure", "mean", "sd", "min", "max", "n"])
    dataset, reference, variant = benchmark.HEADLINE
    readers = [declared] + sorted({r for r in verdicts["reader"] if SEED_READER.match(r)})
    figures = {}
    for metric in ("accuracy", "balanced_recall"):
        rows = _pick(verdicts, dataset=dataset, reference=reference, variant=variant, against=fair.HUMAN,
                     metric=metric)
        values = rows.set_index("reader")["difference_pp"].reindex(readers).dropna()
        figures[f"{metric} minus one person (points)"] = values
        figures[f"{metric} (%)"] = 100 * rows.set_index("reader")["accuracy_reader"].reindex(readers).dropna()
    if len(panel):
        for k in (3, 5):
            rows = _pick(panel, reference="ferplus", metric="accuracy", k=k)
            figures[f"accuracy minus a panel of {k} (points)"] = (rows.set_index("reader")["difference_pp"]
                                                                   .reindex(readers).dropna())
    out = [{"figure": name, "values": ", ".join(f"{v:.1f}" for v in vals), "mean": vals.mean(),
            "sd": vals.std(ddof=1) if len(vals) > 1 else float("nan"), "min": vals.min(), "max": vals.max(),
            "n": len(vals)} for name, vals in figures.items() if len(vals)]
    return pd.DataFrame(out)


def views_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Each reader at one view beside the same reader with more test-time views (headline setting, accuracy):
    the difference from one person at each."""
    dataset, reference, variant = benchmark.HEADLINE
    if not len(verdicts) or "metric" not in verdicts:
        return pd.DataFrame()
    rows = _pick(verdicts, dataset=dataset, reference=reference, variant=variant, against=fair.HUMAN,
                 metric="accuracy")
    out = []
    for r in rows.itertuples(index=False):
        m = VIEWS_SUFFIX.search(r.reader)
        base = r.reader[: m.start()] if m else r.reader
        out.append({"reader": base, "views": int(m.group(1)) if m else 1, "accuracy": r.accuracy_reader,
                    "difference_pp": r.difference_pp, "ci_low_pp": r.ci_low_pp, "ci_high_pp": r.ci_high_pp,
                    "verdict": r.verdict})
    return pd.DataFrame(out).sort_values(["reader", "views"]).reset_index(drop=True)


def headline(verdicts: pd.DataFrame, panel: pd.DataFrame, declared: str | None, synthetic: bool,
             spread: pd.DataFrame | None = None) -> str:
    """The answer in a few sentences a person can repeat: how many people the declared reader is worth, and the
    one-person verdict on both fair metrics (saying so when they disagree), all at one view."""
    prefix = SYNTHETIC if synthetic else ""
    if declared is None:
        return prefix + "No verdict: no femo model (neither trained in this lineage nor shipped) was scored."
    acc, bal = one_person(verdicts, declared, "accuracy"), one_person(verdicts, declared, "balanced_recall")
    if acc is None:
        return prefix + "No verdict: no FER+ human votes exist for these test images."
    text = (f"{prefix}On the {int(acc['images'])} leak-free test images, at one view, {declared}")
    worth = panel_sentence(panel, declared)
    text += f" {worth}." if worth else "."
    text += f" Against one person: accuracy {_phrase(acc)}"
    if bal is not None:
        text += f"; class-balanced recall {_phrase(bal)}"
        if acc["verdict"] != bal["verdict"]:
            text += (". The two metrics disagree: the vote-weighted accuracy is carried by the frequent classes "
                     "(Neutral, Happiness), the balanced recall counts every emotion alike")
    text += "."
    if spread is not None and len(spread):
        row = spread[spread["figure"] == "accuracy minus one person (points)"]
        if len(row) and row.iloc[0]["n"] > 1:
            r = row.iloc[0]
            text += (f" Over {int(r['n'])} training seeds of its recipe the accuracy margin over one person ranges "
                     f"{r['min']:+.1f} to {r['max']:+.1f} points (sd {r['sd']:.1f}).")
    return text
