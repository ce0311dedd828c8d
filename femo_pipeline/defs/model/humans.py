"""Model-group assets about people: FER+ crowd votes (raw file, per-image table) and the human baseline."""

import hashlib
import json
import os

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import ferplus_map
from femo_pipeline import human_baseline as hb
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.model._bench import FER2013, GROUP, MODEL_WRITER, read_images, skipped
from femo_pipeline.files import InputFileError, read_input_file, write_bytes_atomic, write_text_atomic
from femo_pipeline.resources import PROJECT_ROOT, FemoStorage
from femo_pipeline.vocab import EMOTIONS

FERPLUS_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "ferplus"
DEFAULT_VOTES = FERPLUS_DIR / "ferplus_votes_by_file.csv"
DEFAULT_FER2013NEW = FERPLUS_DIR / "fer2013new.csv"


class Fer2013NewConfig(dg.Config):
    path: str = Field(default="", description="Microsoft's fer2013new.csv; empty: $FEMO_FER2013NEW at run time, else "
                      "../shared/datasets/ferplus/fer2013new.csv. Downloaded when absent.")
    download: bool = Field(default=True, description="Download it from the FERPlus repository when the path is absent.")
    url: str = Field(default=ferplus_map.FER2013NEW_URL, description="Where to download it from (pinned commit).")
    timeout_s: float = Field(default=30.0, gt=0, description="Download deadline in seconds.")


@dg.asset(group_name=GROUP, kinds={"csv"})
def fer2013new_csv(context: dg.AssetExecutionContext, config: Fer2013NewConfig, storage: FemoStorage) -> dg.Output:
    """FER+'s fer2013new.csv (10 crowd votes per FER-2013 row), from the configured path or FERPlus, sha256-checked;
    its value is {"path", "sha256"} of the checked copy, or {"skipped": reason}."""
    # the environment is read here, at run time, never when the code location loads
    config = config.model_copy(update={"path": config.path or os.environ.get("FEMO_FER2013NEW") or str(DEFAULT_FER2013NEW)})
    if storage.is_demo:
        return _skip(context, "demo profile: the synthetic faces have no FER+ votes "
                       "(human_votes draws synthetic ones)")
    if os.path.exists(config.path):
        try:
            data, origin = read_input_file(config.path), config.path
        except InputFileError as exc:
            raise dg.Failure(description=f"fer2013new.csv {exc}") from None
    elif not config.download:
        return _skip(context, f"not found at {config.path} and download is off")
    else:
        import time

        from femo_pipeline.webclient import PoliteClient, WebError

        try:
            response = PoliteClient(timeout=config.timeout_s, max_retries=1, min_interval=0).get(
                config.url, deadline_at=time.monotonic() + config.timeout_s)
            data, origin = response.content, config.url
        except (WebError, OSError) as exc:
            return _skip(context, f"not found at {config.path} and the download failed "
                           f"(offline?): {exc}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != ferplus_map.FER2013NEW_SHA256:
        raise dg.Failure(description=f"fer2013new.csv from {origin} has sha256 {digest[:16]}..., expected FERPlus "
                                     f"commit ae2128a's {ferplus_map.FER2013NEW_SHA256[:16]}...")
    target = storage.path("raw", "ferplus", "fer2013new.csv")
    write_bytes_atomic(data, target)
    return dg.Output({"path": str(target), "sha256": digest},
                     metadata={"path": dg.MetadataValue.path(str(target)), "sha256": digest, "origin": origin,
                               "bytes": len(data)})


def _skip(context, reason: str) -> dg.Output:
    context.log.warning(f"fer2013new_csv skipped: {reason}")
    return dg.Output({"skipped": reason}, metadata={"skipped": reason})


@dg.asset(deps=["images"], kinds={"duckdb"}, metadata=warehouse_tables("human_votes"), **MODEL_WRITER)
def human_votes(context: dg.AssetExecutionContext, fer2013new_csv: dict, duckdb: DuckDBResource,
                storage: FemoStorage) -> dg.MaterializeResult:
    """FER+ votes per FER-2013 image in the warehouse, joined by content hash (demo: drawn, marked synthetic)."""
    raw = fer2013new_csv or {}
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        images = read_images(con, FER2013, pixels=False)
        reason = None
        if storage.is_demo:
            votes = hb.synthetic_votes(images["id"], images["emotion_id"]).assign(synthetic=True)
        elif "path" not in raw:
            reason = f"no fer2013new.csv ({raw.get('skipped', 'fer2013new_csv not materialized')})"
        elif not os.path.exists(raw["path"]) or ferplus_map.sha256_file(raw["path"]) != raw["sha256"]:
            reason = "the recorded fer2013new.csv is gone or changed: materialize fer2013new_csv again"
        if reason:
            wh.replace_rows(con, "human_votes", pd.DataFrame(columns=["image_id"]))  # no stale votes stay
            return skipped(context, "human_votes", reason)
        if not storage.is_demo:
            votes = hb.votes_for_images(images, raw["path"]).assign(synthetic=False)
        rows = wh.replace_rows(con, "human_votes", votes)
        split = con.execute("SELECT i.split, count(*) FROM human_votes v JOIN images i ON i.id = v.image_id "
                            "GROUP BY 1 ORDER BY 1").fetchall()
    return dg.MaterializeResult(metadata={
        "rows": rows, "fer2013_images": len(images), "images_without_votes": len(images) - rows,
        "by_split": dg.MetadataValue.json(dict(split)), "synthetic": storage.is_demo,
        "preview": md_table(votes.head(10)),
    })


class HumanBaselineConfig(dg.Config):
    votes_csv: str = Field(default="", description="FER+ votes per FER-2013 file; empty: $FEMO_FERPLUS_VOTES at run "
                           "time, else ../shared/datasets/ferplus/ferplus_votes_by_file.csv. Skipped when absent.")
    usages: list[str] = Field(default=["PublicTest", "PrivateTest"], description="FER-2013 usages to score on.")
    n_boot: int = Field(default=1000, ge=1, description="Bootstrap resamples for the 95 % intervals.")
    seed: int = Field(default=0, ge=0, description="Bootstrap seed.")


@dg.asset(group_name=GROUP, kinds={"pandas", "json"})
def human_baseline(context: dg.AssetExecutionContext, config: HumanBaselineConfig, storage: FemoStorage) -> dg.MaterializeResult:
    """How often one FER+ annotator agrees with the FER-2013 label, and with the other nine, on the test images."""
    config = config.model_copy(update={"votes_csv": config.votes_csv or os.environ.get("FEMO_FERPLUS_VOTES")
                                       or str(DEFAULT_VOTES)})
    if not os.path.exists(config.votes_csv):
        return skipped(context, "human_baseline", f"FER+ votes not found at {config.votes_csv} (set FEMO_FERPLUS_VOTES)")
    try:
        votes = hb.read_votes(config.votes_csv)
    except hb.VotesFormatError as exc:
        raise dg.Failure(description=str(exc)) from exc
    chosen = votes[votes["usage"].isin(config.usages)]
    if chosen.empty:
        raise dg.Failure(description=f"no votes for usages {config.usages}; the file has {sorted(set(votes['usage']))}")
    summary = hb.summarise(chosen, n_boot=config.n_boot, seed=config.seed)
    summary["usages"] = config.usages
    summary["source"] = "FER+ crowd votes (Barsoum et al. 2016), 10 annotators per image, measured here"
    out = write_text_atomic(json.dumps(summary, indent=2), storage.path("reports", "human_baseline.json"))
    per_class = pd.DataFrame([{"emotion": EMOTIONS[k], "single_annotator_recall": f"{100 * v:.1f} %"}
                              for k, v in summary["single_annotator_recall_per_fer2013_class"].items()])
    lo, hi = summary["single_annotator_vs_fer2013_label_ci95"]
    lo9, hi9 = summary["single_annotator_vs_other_nine_ci95"]
    return dg.MaterializeResult(metadata={
        "images": summary["images"],
        "votes": summary["votes"],
        "single_annotator_vs_fer2013_label": f"{summary['single_annotator_vs_fer2013_label']:.1%} (95 % CI {lo:.1%}-{hi:.1%})",
        "single_annotator_vs_other_nine": f"{summary['single_annotator_vs_other_nine']:.1%} (95 % CI {lo9:.1%}-{hi9:.1%})",
        "ferplus_plurality_vs_fer2013_label": f"{summary['ferplus_plurality_vs_fer2013_label']:.1%}",
        "per_class": md_table(per_class),
        "report": dg.MetadataValue.path(str(out)),
    })
