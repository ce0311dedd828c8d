"""The benchmark report's text: Markdown from the report dict (which is also written as JSON). Pure module
(pandas; no Dagster)."""

from __future__ import annotations

PUBLISHED_HUMAN = "65 +/- 5 % (Goodfellow et al. 2013, quoted, not measured here)"


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


VERDICT_COLUMNS = {"reference": "reference", "variant": "variant", "metric": "metric", "reader": "reader",
                   "images": "images",
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
    people = ("SYNTHETIC votes drawn around the demo's labels (no person voted)" if report.get("synthetic") else
              "FER+ crowd votes (Barsoum et al. 2016, 10 annotators per image)")
    lines += [f"Generated {report['generated']}. Humans: {people}; published figure {PUBLISHED_HUMAN}.", ""]
    lines += ["## The answer", "", report.get("headline", "No verdict."), "",
              "Headline: the **leak-free** test images (bytes not in Training, no conflicting duplicate), the "
              "**FER+ reference** (each annotator and the model scored against the plurality of the other "
              "annotators) restricted to **the seven classes** a model can answer, and **one view** per face for "
              "every reader. FER-2013's single label and the all-votes variant (a contempt/unknown/not-a-face vote "
              "is a human miss) are shown beside. Verdicts come from the paired bootstrap of the difference (same "
              "resampled images for both readers): better or worse when its 95 % interval excludes 0.", ""]
    lines += panel_lines(report) + fair_metric_lines(report) + views_lines(report) + seed_lines(report)
    verdicts = pd.DataFrame(report.get("verdicts", []))
    for dataset, description in report.get("datasets", {}).items():
        lines += [f"## {dataset[0].upper() + dataset[1:]}: models against humans", "", f"{description}.", ""]
        if len(verdicts):
            v = verdicts[(verdicts["dataset"] == dataset) & (verdicts["against"] == "human")]
            v = v.assign(reference=v["reference"].map(REFERENCE_NAMES))
            lines += _md(_verdict_rows(v), {**VERDICT_COLUMNS, "other": "one person (95 % CI)"})
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
        s = scores[(scores["variant"] == "per_image") & (scores["reference"] == "fer2013")].pivot_table(
            index=["dataset", "reader"], columns="metric", values=["value", "ci_low", "ci_high"], aggfunc="first")
        rows = [{"dataset": d, "reader": r, "accuracy": f"{pct(s.loc[(d, r), ('value', 'accuracy')])} "
                 f"({pct(s.loc[(d, r), ('ci_low', 'accuracy')])}-{pct(s.loc[(d, r), ('ci_high', 'accuracy')])})",
                 "macro_f1": pct(s.loc[(d, r), ("value", "macro_f1")])} for d, r in s.index]
        lines += _md(pd.DataFrame(rows), {"dataset": "dataset", "reader": "reader",
                                          "accuracy": "accuracy (95 % CI)", "macro_f1": "macro-F1"})
    lines += other_faces_lines(report) + _factors_lines(report)
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
    """What affects the model: the curves over the cells of the data-factor grid that exist, with the seed spread."""
    import pandas as pd

    factors = report.get("data_factors") or {}
    curves = pd.DataFrame(factors.get("curves", []))
    if not len(curves):
        return ["## What affects the model", "", "No cell of the data-factor grid in this warehouse: materialize "
                "partitions of data_factors and data_factors_table (`femo factors --cells ...`, or the UI's "
                "partition launcher).", ""]
    lines = ["## What affects the model: quantity and quality of the training data", "",
             f"{factors['cells']} cells of the grid measured, {len(factors['missing'])} missing (trained on: "
             f"{'; '.join(factors['devices'])}). Each cell trains femo's shipped network on a share of Training "
             "with one label source, a share of labels replaced at random, duplicates kept or removed (at as many "
             "training steps) and a seed, and is scored on the leak-free test images at one view. Mean over "
             "seeds, range and number of seeds.", ""]
    if report.get("data_factors_png"):
        lines += [f"![what affects the model]({report['data_factors_png']})", ""]
    return lines + curves_table(curves)


def curves_table(curves) -> list[str]:
    """The curves of the grid as a Markdown table (the report and bench/grid.py show the same)."""
    curves = curves.assign(
        reference=curves["reference"].map(REFERENCE_NAMES),
        x=[("removed" if c == "duplicates" and x else "kept" if c == "duplicates" else f"{x} %")
           for c, x in zip(curves["curve"], curves["x"])],
        mean=[pct(v) for v in curves["mean"]],
        range=[f"{pct(lo)}-{pct(hi)}" for lo, hi in zip(curves["min"], curves["max"])],
        sd=[("-" if s != s else f"{100 * s:.1f}") for s in curves["sd"]])
    return _md(curves, {"curve": "curve", "labels": "labels", "x": "x", "reference": "reference",
                        "metric": "metric", "mean": "mean", "sd": "sd (points)", "range": "range",
                        "n": "seeds"})


def panel_lines(report: dict) -> list[str]:
    """How many people each reader is worth: panels of k people against every reader at one view."""
    import pandas as pd

    panel = pd.DataFrame(report.get("panels", []))
    if not len(panel):
        return []
    lines = ["## How many people is the model worth?", "",
             "For each image, its votes are split at random into a panel of k people and the rest (20 splits per "
             "image, the same for every reader); the panel answers with its plurality; the panel and the model are "
             "scored against the plurality of the rest. Each image counts once. Images with fewer than k + 1 "
             "seven-class votes are left out at that k.", ""]
    if report.get("panels_png"):
        lines += [f"![accuracy against panel size]({report['panels_png']})", ""]
    rows = panel[(panel["reference"] == "ferplus") & (panel["metric"] == "accuracy")
                 & ~panel["reader"].str.contains(" views ")]
    order = {r: i for i, r in enumerate([report.get("declared"), *sorted(set(rows["reader"]))])}
    rows = rows.assign(_o=rows["reader"].map(order)).sort_values(["_o", "k"]).drop(columns="_o")
    lines += _md(_panel_rows(rows), PANEL_COLUMNS)
    return lines


PANEL_COLUMNS = {"reader": "reader", "k": "people", "images": "images", "panel": "panel (95 % CI)",
                 "model": "reader (95 % CI)", "difference": "difference, points (95 % CI)", "verdict": "verdict"}


def _panel_rows(rows):
    return rows.assign(
        panel=[f"{pct(v)} ({pct(lo)}-{pct(hi)})" for v, lo, hi in
               zip(rows["panel_value"], rows["panel_ci_low"], rows["panel_ci_high"])],
        model=[f"{pct(v)} ({pct(lo)}-{pct(hi)})" for v, lo, hi in zip(rows["value"], rows["ci_low"], rows["ci_high"])],
        difference=[f"{pp(d)} ({pp(lo)} to {pp(hi)})" for d, lo, hi in
                    zip(rows["difference_pp"], rows["ci_low_pp"], rows["ci_high_pp"])],
        verdict=[f"**{v}**" for v in rows["verdict"]])


def fair_metric_lines(report: dict) -> list[str]:
    """The declared reader on both fair metrics, against one person and panels, side by side."""
    import pandas as pd

    panel = pd.DataFrame(report.get("panels", []))
    declared = report.get("declared")
    if not len(panel) or declared is None:
        return []
    rows = panel[(panel["reader"] == declared) & (panel["reference"] == "ferplus")].sort_values(["metric", "k"])
    return ["## Both fair metrics, side by side", "",
            "Vote-weighted accuracy is carried by the classes people name most (Neutral and Happiness); "
            "class-balanced recall (the mean of the seven per-class recalls) counts every emotion alike. The "
            f"declared reader, {declared}, against panels of people on each:", ""] + _md(
        _panel_rows(rows), {"metric": "metric", **PANEL_COLUMNS})


def views_lines(report: dict) -> list[str]:
    """Every reader at one view and with the same extra test-time views."""
    import pandas as pd

    views = pd.DataFrame(report.get("views", []))
    if not len(views) or views["views"].nunique() < 2:
        return []
    views = views.assign(acc=[pct(a) for a in views["accuracy"]],
                         difference=[f"{pp(d)} ({pp(lo)} to {pp(hi)})" for d, lo, hi in
                                     zip(views["difference_pp"], views["ci_low_pp"], views["ci_high_pp"])])
    return ["## Equal test-time views", "", "The headline gives every reader one view of each face. Averaging "
            "more views (the face and its mirror) helps some readers; every reader that can take them gets the "
            "same views here, against one person (leak-free test, crowd reference, seven classes):", ""] + _md(
        views, {"reader": "reader", "views": "views", "acc": "accuracy", "difference": "minus one person, points",
                "verdict": "verdict"})


def seed_lines(report: dict) -> list[str]:
    """The declared reader's figures over training seeds of its recipe."""
    import pandas as pd

    spread = pd.DataFrame(report.get("seed_spread", []))
    if not len(spread) or spread["n"].max() < 2:
        return []
    spread = spread.assign(mean=[f"{m:.1f}" for m in spread["mean"]],
                           sd=[("-" if s != s else f"{s:.1f}") for s in spread["sd"]])
    return ["## Training seeds", "", "The declared reader beside the same recipe trained with other seeds (each "
            "seed's two heads mixed by the rule chosen on its own validation split; the other seeds' budgets are "
            "in their model runs). Every interval above covers the sampling of test images only; this is the "
            "spread from training.", ""] + _md(
        spread, {"figure": "figure", "values": "per seed", "mean": "mean", "sd": "sd", "n": "seeds"})


def _with_ci(rows, metric: str, variant: str = "per_image"):
    """{(dataset, reader): 'value (low-high)'} of one metric of the other-faces rows."""
    sel = rows[(rows["metric"] == metric) & (rows["variant"] == variant)]
    return {(d, r): f"{pct(v)} ({ci((lo, hi))})" for d, r, v, lo, hi in
            zip(sel["dataset"], sel["reader"], sel["value"], sel["ci_low"], sel["ci_high"])}


def other_faces_lines(report: dict) -> list[str]:
    """Every reader on the labelled sets other than FER-2013 (Kaggle's web images, the extra sets): one table."""
    import pandas as pd

    other = report.get("other_faces") or {}
    rows = pd.DataFrame(other.get("scores", []))
    if not other.get("sets"):
        return []
    lines = ["## Other faces: every reader on labelled sets it never trained on", "",
             "Each reader's one answer per image (one view) against the emotion folder the file sits in. These sets "
             "(Kaggle's web images; each folder of the extra labelled sets, FEMO_EXTRA_DIR) are only scored: never "
             "used for training, tuning or selection. Class-balanced recall is the mean over the set's classes of "
             "each class's recall. The 95 % intervals resample images, or subjects where the file names say who "
             "is shown (frames of one person are not independent); per subject is the mean of the subjects' own "
             "accuracies. The mirrored-views rows are in benchmark_scores.", ""]
    for s in other["sets"]:
        left = ", ".join(f"{n} {e}" for e, n in s["left_out"].items())
        who = (f", {s['subjects']} subjects" + (f", {s['sequences']} sequences" if s["sequences"] else "")
               if s["subjects"] else "")
        lines.append(f"- {s['dataset']}: {s['images']} images of {len(s['classes'])} classes{who}"
                     + (f"; left out (no reader answers it): {left}" if left else "")
                     + f"; intervals resample {s['resampled']}"
                     + (f"; not scored: {', '.join(s['not_scored'])}" if s.get("not_scored") else "") + ".")
    lines.append("")
    if not len(rows):
        return lines + ["No reader predicted these images.", ""]
    rows = rows[~rows["reader"].str.contains(" views ")]
    accuracy, balanced = _with_ci(rows, "accuracy"), _with_ci(rows, "balanced_recall")
    subject = _with_ci(rows, "accuracy", "per_subject")
    position = {s["dataset"]: i for i, s in enumerate(other["sets"])}
    order = rows[(rows["variant"] == "per_image") & (rows["metric"] == "accuracy")]
    order = order.assign(_set=order["dataset"].map(position)).sort_values(["_set", "value"], ascending=[True, False])
    table = pd.DataFrame([{"dataset": d, "reader": r, "images": n, "accuracy": accuracy[d, r],
                           "balanced": balanced.get((d, r), "n/a"), "subject": subject.get((d, r), "-")}
                          for d, r, n in zip(order["dataset"], order["reader"], order["n"])])
    return lines + _md(table, {"dataset": "set", "reader": "reader", "images": "images",
                               "accuracy": "accuracy (95 % CI)", "balanced": "balanced recall (95 % CI)",
                               "subject": "per subject (95 % CI)"})
