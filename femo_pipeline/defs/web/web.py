"""Web collection assets: search hits (metadata) first, then resumable downloads, for Pixabay and DuckDuckGo."""

import time
from collections.abc import Callable

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from femo_pipeline import folders, web_sources
from femo_pipeline.defs._meta import column_schema, md_table
from femo_pipeline.io_managers import STAGED, carried_forward
from femo_pipeline.resources import FemoStorage, WebSearchResource
from femo_pipeline.vocab import EMOTIONS, emotion_id
from femo_pipeline.webclient import WebError

GROUP = "ingest"
DEFAULT_QUERIES = {
    "Anger": "angry face", "Disgust": "disgusted face", "Fear": "scared face", "Happiness": "happy face",
    "Sadness": "sad face", "Surprise": "surprised face", "Neutral": "neutral face",
}
HITS_SCHEMA = pa.schema([
    ("source", pa.string()), ("emotion_id", pa.int32()), ("query", pa.string()), ("remote_id", pa.string()),
    ("image_url", pa.string()), ("page_url", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
    ("tags", pa.string()),
])
DOWNLOAD_SCHEMA = pa.schema([
    ("image_url", pa.string()), ("emotion_id", pa.int32()), ("path", pa.string()), ("status", pa.string()),
    ("reason", pa.string()), ("file_size_bytes", pa.int64()), ("content_hash", pa.string()),
])


# One partition per day of pulls: each day's search results are kept apart, and a backfill re-runs one day.
WEB_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_offset=1, timezone="UTC")


def newest_hits(days: dict) -> list[dict]:
    """Hits of every day pulled so far ({day: StagedTable}), newest first, one per image (its newest pull wins)."""
    rows, seen = [], set()
    for day in sorted(days, reverse=True):
        for hit in days[day].read().to_pylist():
            if hit["remote_id"] not in seen:
                seen.add(hit["remote_id"])
                rows.append(hit)
    return rows


class WebSearchConfig(dg.Config):
    queries: dict[str, str] = Field(default=DEFAULT_QUERIES, description="Emotion name -> search term.")
    per_emotion: int = Field(default=50, ge=1, description="Hits to collect per emotion (pagination stops there).")
    per_page: int = Field(default=50, ge=3, le=200, description="Results per API page (Pixabay: 3-200).")


class WebDownloadConfig(dg.Config):
    deadline_s: float = Field(default=60.0, gt=0, description="Total seconds one image download may take (a server that "
                              "drips bytes is cut off there; the per-read timeout alone would not stop it).")


def _skip(context, reason: str, value) -> dg.Output:
    context.log.warning(f"{context.asset_key.to_user_string()} skipped: {reason}")
    return dg.Output(value, metadata={"skipped": reason})


def collect_hits(context: dg.AssetExecutionContext, config: WebSearchConfig, api: WebSearchResource,
                 storage: FemoStorage, search: Callable) -> dg.Output:
    """Run the search per emotion; failures are recorded per query, and hits that are not what the API documents
    per hit, with the reason. Shared by both sources."""
    name = context.asset_key.path[-1]
    key = api.api_key()
    if not key:  # the day's hits found before stay: a run without the key never empties the day (real profile:
        # the demo never carries real hits)
        kept = None if storage.is_demo else carried_forward(context, storage, synthetic=False)
        reason = f"{api.api_key_env} is not set" + (f"; the day's {kept.rows} hits found before are kept" if kept else "")
        return _skip(context, reason, kept or HITS_SCHEMA.empty_table())
    unknown = [e for e in config.queries if emotion_id(e) is None]
    if unknown:
        raise dg.Failure(description=f"queries name unknown emotions {unknown}; use {list(EMOTIONS.values())}")
    client = api.client()
    hits, failures, rejected = [], [], []
    for emotion, query in config.queries.items():
        try:
            found = search(client, key, query, emotion_id(emotion), config.per_emotion, config.per_page, api.base_url,
                           rejected)
        except (WebError, web_sources.SearchError) as exc:
            failures.append({"emotion": emotion, "query": query, "reason": str(exc)})
            context.log.warning(f"{name}: query {query!r} failed: {exc}")
            continue
        context.log.info(f"{name}: {len(found)} hits for {query!r}")
        hits.extend(found)
    if failures and not hits:
        raise dg.Failure(description=f"every query failed: {failures}")
    table = pa.Table.from_pylist(hits, schema=HITS_SCHEMA)
    frame = table.to_pandas()
    return dg.Output(table, metadata={
        "dagster/column_schema": column_schema(HITS_SCHEMA),
        "hits_per_emotion": md_table(frame.groupby("emotion_id").size().rename("hits").reset_index()),
        "failed_queries": md_table(pd.DataFrame(failures, columns=["emotion", "query", "reason"])),
        "rejected_hits": md_table(pd.DataFrame(rejected, columns=["remote_id", "reason"])),
        "retry_waits_s": round(sum(client.waits), 2),
        "preview": md_table(frame.drop(columns=["tags"]), 10),
    })


def download_hits(context: dg.AssetExecutionContext, config: WebDownloadConfig, api: WebSearchResource,
                  storage: FemoStorage, days: dict, hits_asset: str, source_key: str) -> dg.Output:
    """Download the hits of every day into data/raw/<source>/<emotion>/ (resumable), then inspect the folder.
    Two staged tables: files (the folder inspected, as the folder ingest stages it) and downloads (per URL)."""
    name = context.asset_key.path[-1]
    hits = newest_hits(days)
    folder = storage.root / "raw" / source_key
    if not hits and storage.is_demo:  # the demo has no web images (and never takes real downloads in)
        return _skip(context, f"no hits from {hits_asset}",
                     {"files": folders.SCHEMA.empty_table(), "downloads": DOWNLOAD_SCHEMA.empty_table()})
    if not hits:  # nothing to download; the files downloaded before are still staged (they stay in the warehouse)
        context.log.warning(f"{name}: no hits from {hits_asset}; the download folder is inspected as it is")
    client = api.client()
    rows = []
    start = time.perf_counter()
    for i, hit in enumerate(hits, 1):
        emotion_folder = folder / EMOTIONS[hit["emotion_id"]].lower()
        result = web_sources.download_image(client, hit["image_url"], emotion_folder, web_sources.safe_stem(hit["remote_id"]),
                                            deadline=config.deadline_s)
        rows.append({**result.__dict__, "emotion_id": hit["emotion_id"]})
        if result.status == "failed":
            context.log.warning(f"{name}: {result.reason}")
        if i % 25 == 0 or i == len(hits):
            context.log.info(f"{name}: {i}/{len(hits)} processed ({i / (time.perf_counter() - start):.1f}/s)")
    manifest = pa.Table.from_pylist(rows, schema=DOWNLOAD_SCHEMA)
    entries = folders.scan_folder(folder, with_splits=False) if folder.exists() else []
    table = folders.inspect_folder(folder, entries, workers=1) if entries else folders.SCHEMA.empty_table()
    frame = manifest.to_pandas()
    return dg.Output({"files": table, "downloads": manifest}, metadata={
        **({"skipped": f"no hits from {hits_asset}"} if not hits else {}),
        "files": table.num_rows,
        "hits_all_days": len(hits),
        "downloads": dg.MetadataValue.json(frame["status"].value_counts().to_dict()),
        "failures": md_table(frame[frame["status"] == "failed"][["image_url", "reason"]]),
        "folder": dg.MetadataValue.path(str(folder)),
        "seconds": round(time.perf_counter() - start, 2),
    })


def _pixabay(client, key, query, emotion, count, per_page, base_url, rejected):
    return web_sources.pixabay_search(client, key, query, emotion, count, per_page=per_page, base_url=base_url,
                                      rejected=rejected)


def _ddg(client, key, query, emotion, count, per_page, base_url, rejected):
    return web_sources.ddg_search(client, key, query, emotion, count, base_url=base_url, rejected=rejected)


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=WEB_PARTITIONS, io_manager_key=STAGED)
def pixabay_hits(context: dg.AssetExecutionContext, config: WebSearchConfig, pixabay: WebSearchResource,
                 storage: FemoStorage) -> dg.Output:
    """Pixabay API search results per emotion and day (photo, people, safesearch): image URLs and sizes, no uploader data."""
    return collect_hits(context, config, pixabay, storage, _pixabay)


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, io_manager_key=STAGED)
def pixabay_images(context: dg.AssetExecutionContext, config: WebDownloadConfig, pixabay: WebSearchResource,
                   storage: FemoStorage, pixabay_hits: dict) -> dg.Output:
    """The Pixabay hits downloaded (resumable, type from the bytes) into data/raw/pixabay/<emotion>/ and inspected."""
    return download_hits(context, config, pixabay, storage, pixabay_hits, "pixabay_hits", "pixabay")


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=WEB_PARTITIONS, io_manager_key=STAGED)
def duckduckgo_hits(context: dg.AssetExecutionContext, config: WebSearchConfig,
                    duckduckgo: WebSearchResource, storage: FemoStorage) -> dg.Output:
    """DuckDuckGo image search results per emotion and day (RapidAPI, strict safe search): image URLs only."""
    return collect_hits(context, config, duckduckgo, storage, _ddg)


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, io_manager_key=STAGED)
def duckduckgo_images(context: dg.AssetExecutionContext, config: WebDownloadConfig, duckduckgo: WebSearchResource,
                      storage: FemoStorage, duckduckgo_hits: dict) -> dg.Output:
    """The DuckDuckGo hits downloaded (resumable, type from the bytes) into data/raw/ddg/<emotion>/ and inspected."""
    return download_hits(context, config, duckduckgo, storage, duckduckgo_hits, "duckduckgo_hits", "ddg")
