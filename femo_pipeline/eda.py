"""Exploratory summaries of the survey and the images, as tables and matplotlib figures. Pure module (no Dagster).

Survey definitions follow the study (tables in ../shared/reference/seed-project/eda_*.csv):
- night hours 0-5 are left out of everything but the raw per-hour/per-day counts;
- counts: sum of each emotion's 0/1 answers per hour or per weekday;
- frequency per day (%): that count over the questionnaires answered on that day;
- hourly percentages: each emotion's share of all emotion reports in that hour (rows sum to 100);
- good vs bad (%): the good emotions' share of all reports in the hour (or day).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from femo_pipeline.files import atomic_path
from femo_pipeline.survey import BAD_EMOTIONS, EMOTION_COLUMNS, GOOD_EMOTIONS

NIGHT_HOURS = range(0, 6)
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}


def counts_by(responses: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sum of each emotion's answers per value of `key` ('Hours' or 'Day')."""
    return responses.groupby(key)[list(EMOTION_COLUMNS)].sum().astype(float)


def share_of_reports(counts: pd.DataFrame) -> pd.DataFrame:
    """Each emotion's share (%) of all reports in the row."""
    return counts.div(counts.sum(axis=1), axis=0) * 100


def good_bad(counts: pd.DataFrame) -> pd.DataFrame:
    good = counts[list(GOOD_EMOTIONS)].sum(axis=1)
    bad = counts[list(BAD_EMOTIONS)].sum(axis=1)
    total = good + bad
    return pd.DataFrame({"good": good / total * 100, "bad": bad / total * 100})


def frequency_per(responses: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per value of `key`, the share (%) of questionnaires that report each emotion."""
    return counts_by(responses, key).div(responses.groupby(key).size(), axis=0) * 100


def survey_summary(responses: pd.DataFrame) -> dict[str, pd.DataFrame | int]:
    day = responses[~responses["Hours"].isin(NIGHT_HOURS)]
    totals = responses[list(EMOTION_COLUMNS)].sum()
    hourly = counts_by(day, "Hours")
    daily = counts_by(day, "Day")
    return {
        "questionnaires": len(responses),
        "night_questionnaires_excluded": int(len(responses) - len(day)),
        "per_weekday": responses.groupby("Day").size().rename("questionnaires").to_frame(),
        "per_hour": responses.groupby("Hours").size().rename("questionnaires").to_frame(),
        "emotion_totals_all_hours": totals.rename("Count").to_frame(),
        "emotion_share_pct": (totals / max(len(responses), 1) * 100).sort_values(ascending=False).rename("pct").to_frame(),
        "hourly_emotion_counts": hourly,
        "hourly_emotion_percentages": share_of_reports(hourly),
        "day_emotion_counts": daily,
        "emotion_frequency_per_day_pct": frequency_per(day, "Day"),
        "good_bad_hourly_percentage": good_bad(hourly),
        "good_bad_daily_percentage": good_bad(daily),
    }


def _figure(width: float = 10, height: float = 4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height))


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def survey_plots(summary: dict, folder: Path, note: str = "") -> dict[str, Path]:
    out = {}
    plt, fig, (ax) = _figure()
    summary["per_hour"]["questionnaires"].plot.bar(ax=ax, color="#2b6cb0")
    ax.set(title=f"Questionnaires per hour{note}", xlabel="hour", ylabel="questionnaires")
    out["per_hour"] = _save(plt, fig, folder / "survey_per_hour.png")

    plt, fig, ax = _figure(7, 3.5)
    per_day = summary["per_weekday"]["questionnaires"].rename(index=WEEKDAYS)
    per_day.plot.bar(ax=ax, color="#2b6cb0")
    ax.set(title=f"Questionnaires per weekday{note}", xlabel="", ylabel="questionnaires")
    out["per_weekday"] = _save(plt, fig, folder / "survey_per_weekday.png")

    plt, fig, ax = _figure(10, 4)
    summary["emotion_share_pct"]["pct"].plot.bar(ax=ax, color=["#38a169" if e in GOOD_EMOTIONS else "#c53030"
                                                                  for e in summary["emotion_share_pct"].index])
    ax.set(title=f"Share of questionnaires reporting each emotion (green: good, red: bad){note}", ylabel="%")
    out["emotion_share"] = _save(plt, fig, folder / "survey_emotion_share.png")

    plt, fig, ax = _figure(9, 4)
    summary["good_bad_hourly_percentage"].plot(ax=ax, marker="o", color=["#38a169", "#c53030"])
    ax.set(title=f"Good vs bad emotions by hour, 6-23 h{note}", xlabel="hour", ylabel="% of reports")
    out["good_bad_hourly"] = _save(plt, fig, folder / "survey_good_bad_hourly.png")

    plt, fig, ax = _figure(7, 3.5)
    summary["good_bad_daily_percentage"].rename(index=WEEKDAYS).plot.bar(ax=ax, color=["#38a169", "#c53030"])
    ax.set(title=f"Good vs bad emotions by weekday, 6-23 h{note}", ylabel="% of reports")
    out["good_bad_daily"] = _save(plt, fig, folder / "survey_good_bad_daily.png")
    return out


def image_plots(images: pd.DataFrame, folder: Path, note: str = "") -> dict[str, Path]:
    """images: one row per usable image with source, emotion, height, width, aspect_ratio, color_space."""
    out = {}
    plt, fig, ax = _figure(10, 4)
    images.pivot_table(index="emotion", columns="source", values="height", aggfunc="count", fill_value=0).plot.bar(ax=ax)
    ax.set(title=f"Images per emotion and source{note}", ylabel="images", xlabel="")
    out["balance"] = _save(plt, fig, folder / "images_balance.png")

    plt, fig, ax = _figure(7, 4)
    for source, group in images.groupby("source"):
        ax.scatter(group["width"], group["height"], s=8, alpha=0.5, label=source)
    ax.set(title=f"Image sizes{note}", xlabel="width (px)", ylabel="height (px)")
    ax.legend()
    out["sizes"] = _save(plt, fig, folder / "images_sizes.png")

    plt, fig, ax = _figure(7, 3.5)
    classes = pd.cut(images["aspect_ratio"], [0, 0.9999, 1.0001, float("inf")], labels=["< 1", "= 1", "> 1"])
    pd.crosstab(images["source"], classes).plot.bar(ax=ax)
    ax.set(title=f"Aspect ratio (width / height){note}", ylabel="images", xlabel="")
    out["aspect"] = _save(plt, fig, folder / "images_aspect_ratio.png")

    plt, fig, ax = _figure(7, 3.5)
    pd.crosstab(images["source"], images["color_space"]).plot.bar(ax=ax, stacked=True, color=["#718096", "#d69e2e"])
    ax.set(title=f"Colour vs grayscale (measured on the pixels){note}", ylabel="images", xlabel="")
    out["colour"] = _save(plt, fig, folder / "images_colour.png")
    return out
