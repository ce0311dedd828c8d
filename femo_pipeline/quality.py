"""Data-quality rules behind the asset checks. Pure module (duckdb; no Dagster).

Each rule takes a DuckDB connection holding the warehouse tables and returns (passed, details). DuckDB already
enforces the declared keys; the key rules stay so that the same checks hold on a store that does not (views,
another database, a partial copy).
"""

from __future__ import annotations

import duckdb

BASIC_EMOTIONS = tuple(range(7))  # the seven FER-2013 classes; contempt is extra where a source has it


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def image_keys(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict]:
    details = {
        "duplicate_ids": _one(con, "SELECT count(*) - count(DISTINCT id) FROM images"),
        "unknown_source_ids": _one(con, "SELECT count(*) FROM images WHERE source_id NOT IN (SELECT id FROM data_sources)"),
        "unknown_emotion_ids": _one(con, "SELECT count(*) FROM images WHERE emotion_id NOT IN (SELECT id FROM emotions)"),
        "images_without_pixels": _one(con, "SELECT count(*) FROM images WHERE id NOT IN (SELECT image_id FROM image_pixels)"),
    }
    return not any(details.values()), details


def image_labels(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict]:
    details = {"null_labels": _one(con, "SELECT count(*) FROM images WHERE emotion_id IS NULL"),
               "null_sources": _one(con, "SELECT count(*) FROM images WHERE source_id IS NULL")}
    return not any(details.values()), details


def train_duplicates(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict]:
    groups = _one(con, "SELECT count(*) FROM (SELECT content_hash FROM images WHERE split = 'train' "
                       "GROUP BY content_hash HAVING count(*) > 1)")
    return groups == 0, {"duplicate_hash_groups_in_train": groups}


def class_balance(con: duckdb.DuckDBPyConnection, max_ratio: float) -> tuple[bool, dict]:
    rows = con.execute(
        "SELECT ds.source_key, max(n) / min(n) FROM (SELECT source_id, emotion_id, count(*) AS n FROM images "
        "GROUP BY ALL) c JOIN data_sources ds ON ds.id = c.source_id GROUP BY ds.source_key ORDER BY 1").fetchall()
    ratios = {k: round(float(r), 2) for k, r in rows}
    return all(r <= max_ratio for r in ratios.values()), {"largest_over_smallest_class": ratios, "max_ratio": max_ratio}


def quarantine_share(con: duckdb.DuckDBPyConnection, catalog_relation: str, max_share: float) -> tuple[bool, dict]:
    total, bad = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE status <> 'ok') FROM {catalog_relation}").fetchone()
    share = bad / total if total else 0.0
    return share <= max_share, {"files": total, "quarantined": bad, "share": round(share, 4), "max_share": max_share}


def sample_coverage(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict]:
    present = con.execute("SELECT DISTINCT source_id, emotion_id FROM balanced_sample").fetchall()
    sources = sorted({s for s, _ in present})
    have = set(present)
    missing = [f"{s}/{e}" for s in sources for e in BASIC_EMOTIONS if (s, e) not in have]
    # an empty sample (no source configured) passes: nothing in it lacks an emotion, and the flag says so
    return not missing, {"sources": sources, "missing_source_emotion": missing, "empty_sample": not present}


def sample_duplicates(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict]:
    dupes = _one(con, "SELECT count(*) FROM (SELECT i.content_hash FROM balanced_sample s JOIN images i "
                      "ON i.id = s.image_id GROUP BY i.content_hash HAVING count(*) > 1)")
    return dupes == 0, {"duplicate_hash_groups": dupes}
