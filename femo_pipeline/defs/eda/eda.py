"""EDA assets: survey and image summaries with plots shown in the UI and saved under data/plots/."""

import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from femo_pipeline import eda
from femo_pipeline.defs._meta import md_table, png_md
from femo_pipeline.defs.faces.faces import face_crops
from femo_pipeline.defs.warehouse.warehouse import WRITER, images, survey_responses
from femo_pipeline.files import write_text_atomic
from femo_pipeline.resources import FemoStorage
from femo_pipeline.survey import COLUMNS

READER = {**WRITER, "group_name": "eda"}  # a read-write open of the DuckDB file locks it: same pool


def _note(storage: FemoStorage) -> str:
    return " (SYNTHETIC demo data)" if storage.is_demo else ""


@dg.asset(kinds={"duckdb", "pandas"}, deps=[survey_responses], **READER)
def survey_answers(duckdb: DuckDBResource) -> dg.Output[pd.DataFrame]:
    """The cleaned survey answers read from the warehouse for survey_eda (a short read under the duckdb pool)."""
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    with duckdb.get_connection() as con:
        responses = con.execute(f"SELECT {columns} FROM survey_responses").df()
    return dg.Output(responses, metadata={"dagster/row_count": len(responses)})


@dg.asset(kinds={"pandas", "matplotlib"}, group_name="eda")
def survey_eda(context: dg.AssetExecutionContext, storage: FemoStorage,
               survey_answers: pd.DataFrame) -> dg.MaterializeResult:
    """Survey answers per weekday and hour, emotion shares, good vs bad by hour and weekday (night hours 0-5 left out)."""
    start = time.perf_counter()
    responses = survey_answers
    if responses.empty:
        context.log.warning("survey_eda: no survey responses (survey skipped?)")
        return dg.MaterializeResult(metadata={"skipped": "no survey responses in the warehouse"})
    summary = eda.survey_summary(responses)
    folder = storage.root / "plots"
    for name, table in summary.items():
        if hasattr(table, "to_csv"):
            write_text_atomic(table.to_csv(), storage.path("eda", f"survey_{name}.csv"))
    plots = eda.survey_plots(summary, folder, _note(storage))
    share = summary["emotion_share_pct"]["pct"]
    return dg.MaterializeResult(metadata={
        "questionnaires": summary["questionnaires"],
        "night_questionnaires_excluded (0-5 h)": summary["night_questionnaires_excluded"],
        "top_emotions_pct": dg.MetadataValue.json({k: round(v, 1) for k, v in share.head(5).items()}),
        "good_bad_by_weekday": md_table(summary["good_bad_daily_percentage"].round(1).reset_index()),
        **{f"plot_{k}": png_md(p, k) for k, p in plots.items()},
        "tables_folder": dg.MetadataValue.path(str(storage.root / "eda")),
        "synthetic": storage.is_demo,
        "seconds": round(time.perf_counter() - start, 2),
    })


@dg.asset(kinds={"duckdb", "pandas"}, deps=[images, face_crops], **READER)
def image_profile(duckdb: DuckDBResource) -> dg.Output[dict]:
    """Per-image size, colour and duplicate facts, quarantine reasons and face outcomes, read for image_eda."""
    with duckdb.get_connection() as con:
        frame = con.execute(
            "SELECT ds.source_key AS source, e.emotion, i.height, i.width, i.aspect_ratio, i.color_space, "
            "i.duplicate_count FROM images i JOIN data_sources ds ON ds.id = i.source_id "
            "JOIN emotions e ON e.id = i.emotion_id").df()
        quarantine = con.execute(
            "SELECT ds.source_key AS source, q.reason, count(*) AS files FROM quarantined_files q "
            "JOIN data_sources ds ON ds.id = q.source_id GROUP BY ALL ORDER BY ALL").df()
        face_outcomes = con.execute(
            "SELECT ds.source_key AS source, f.status, count(*) AS images FROM face_crops f "
            "JOIN images i ON i.id = f.image_id JOIN data_sources ds ON ds.id = i.source_id GROUP BY ALL ORDER BY ALL").df()
    return dg.Output({"images": frame, "quarantine": quarantine, "faces": face_outcomes},
                     metadata={"dagster/row_count": len(frame)})


@dg.asset(kinds={"pandas", "matplotlib"}, group_name="eda")
def image_eda(context: dg.AssetExecutionContext, storage: FemoStorage, image_profile: dict) -> dg.MaterializeResult:
    """Class balance per source, sizes, aspect ratios, colour vs grayscale, duplicates, quarantine, faces found."""
    start = time.perf_counter()
    frame, quarantine, face_outcomes = (image_profile[k] for k in ("images", "quarantine", "faces"))
    if frame.empty:
        return dg.MaterializeResult(metadata={"skipped": "no images in the warehouse"})
    balance = frame.pivot_table(index="emotion", columns="source", values="height", aggfunc="count", fill_value=0)
    plots = eda.image_plots(frame, storage.root / "plots", _note(storage))
    sizes = frame.groupby(["source", "height", "width"]).size().rename("images").reset_index()
    return dg.MaterializeResult(metadata={
        "images": len(frame),
        "balance": md_table(balance.reset_index()),
        "imbalance_ratio_per_source": dg.MetadataValue.json(
            {s: round(float(c[c > 0].max() / c[c > 0].min()), 2) for s, c in balance.items()}),
        "sizes": md_table(sizes, 20),
        "colour": md_table(frame.groupby(["source", "color_space"]).size().rename("images").reset_index()),
        "files_in_duplicate_groups": int((frame["duplicate_count"] > 1).sum()),
        "quarantined": md_table(quarantine),
        "faces": md_table(face_outcomes),
        **{f"plot_{k}": png_md(p, k) for k, p in plots.items()},
        "seconds": round(time.perf_counter() - start, 2),
    })
