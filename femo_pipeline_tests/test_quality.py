"""Asset checks: each rule with passing and failing input, and a blocking check stopping what depends on it."""

from __future__ import annotations

import duckdb
import pytest

from femo_pipeline import quality
from femo_pipeline_tests.conftest import materialize, put_back


@pytest.fixture
def con():
    """Tables with the warehouse's names but without constraints, so bad rows can exist."""
    c = duckdb.connect()
    c.execute("CREATE TABLE data_sources (id INTEGER, source_key VARCHAR)")
    c.execute("INSERT INTO data_sources VALUES (3, 'kaggle'), (4, 'fer2013')")
    c.execute("CREATE TABLE emotions (id INTEGER)")
    c.execute("INSERT INTO emotions SELECT range FROM range(8)")
    c.execute("CREATE TABLE images (id BIGINT, source_id INTEGER, emotion_id INTEGER, split VARCHAR, content_hash VARCHAR)")
    c.execute("INSERT INTO images SELECT i, 4, i % 7, 'train', 'h' || i FROM range(70) t(i)")
    c.execute("CREATE TABLE image_pixels (image_id BIGINT)")
    c.execute("INSERT INTO image_pixels SELECT id FROM images")
    c.execute("CREATE TABLE balanced_sample (image_id BIGINT, source_id INTEGER, emotion_id INTEGER)")
    c.execute("INSERT INTO balanced_sample SELECT id, source_id, emotion_id FROM images")
    return c


def test_key_rule(con):
    assert quality.image_keys(con)[0]
    con.execute("INSERT INTO images VALUES (1, 4, 0, 'train', 'x'), (500, 9, 0, 'test', 'y'), (501, 4, 42, 'test', 'z')")
    passed, details = quality.image_keys(con)
    assert not passed
    assert details == {"duplicate_ids": 1, "unknown_source_ids": 1, "unknown_emotion_ids": 1, "images_without_pixels": 2}


def test_label_rule(con):
    assert quality.image_labels(con)[0]
    con.execute("INSERT INTO images VALUES (900, 4, NULL, 'train', 'n')")
    assert quality.image_labels(con) == (False, {"null_labels": 1, "null_sources": 0})


def test_train_duplicate_rule(con):
    assert quality.train_duplicates(con) == (True, {"duplicate_hash_groups_in_train": 0})
    con.execute("INSERT INTO images VALUES (901, 4, 1, 'train', 'h1'), (902, 4, 1, 'test', 'h2')")
    assert quality.train_duplicates(con) == (False, {"duplicate_hash_groups_in_train": 1})


def test_balance_rule(con):
    assert quality.class_balance(con, 10)[0]
    con.execute("INSERT INTO images SELECT 1000 + i, 4, 3, 'train', 'b' || i FROM range(200) t(i)")
    passed, details = quality.class_balance(con, 10)
    assert not passed and details["largest_over_smallest_class"] == {"fer2013": 21.0}


def test_quarantine_rule(con):
    con.execute("CREATE TABLE cat AS SELECT CASE WHEN range < 3 THEN 'quarantined' ELSE 'ok' END AS status FROM range(100)")
    assert quality.quarantine_share(con, "cat", 0.05)[0]
    assert not quality.quarantine_share(con, "cat", 0.02)[0]


def test_sample_rules(con):
    assert quality.sample_coverage(con)[0] and quality.sample_duplicates(con)[0]
    con.execute("DELETE FROM balanced_sample WHERE emotion_id = 5")
    con.execute("INSERT INTO images VALUES (950, 3, 0, 'train', 'k950')")
    con.execute("INSERT INTO balanced_sample VALUES (950, 3, 0)")  # a second source with only one emotion
    passed, details = quality.sample_coverage(con)
    assert not passed and "4/5" in details["missing_source_emotion"] and "3/6" in details["missing_source_emotion"]
    con.execute("UPDATE images SET content_hash = 'same' WHERE id IN (0, 1)")
    assert quality.sample_duplicates(con) == (False, {"duplicate_hash_groups": 1})
    con.execute("DELETE FROM balanced_sample")
    assert quality.sample_coverage(con) == (True, {"sources": [], "missing_source_emotion": [], "empty_sample": True})


def _checks(result) -> dict:
    return {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_demo_run_checks_and_a_blocking_failure_stops_downstream(demo_run, tmp_path):
    data_dir, result = demo_run  # the session's demo run (conftest.py): balanced_sample is put back at the end
    checks = _checks(result)
    assert {"images_keys_valid", "images_have_labels", "sample_covers_every_emotion", "sample_has_no_duplicates",
            "images_class_balance", "catalog_quarantine_share", "images_train_duplicates"} <= set(checks)
    assert all(checks[name].passed for name in ("images_keys_valid", "images_have_labels",
                                                 "sample_covers_every_emotion", "sample_has_no_duplicates"))
    warn = checks["images_train_duplicates"]  # the demo puts one duplicate inside train on purpose
    assert not warn.passed and warn.severity.value == "WARN"
    share = checks["catalog_quarantine_share"]  # 8 broken of 190 files: 4.2 %, under the 5 % limit
    assert share.passed and share.metadata["share"].value == round(8 / 190, 4)

    # exclude every Kaggle anger image: the sample misses an emotion, the blocking check fails, serving waits
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        hashes = [h for (h,) in con.execute("SELECT content_hash FROM images WHERE source_id = 3 AND emotion_id = 0").fetchall()]
    exclude = tmp_path / "exclude.csv"
    exclude.write_text("content_hash,reason\n" + "".join(f"{h},test\n" for h in hashes))
    config = {"ops": {"balanced_sample": {"config": {"exclude_csv": str(exclude)}}}}
    with put_back(data_dir, "balanced_sample"):  # the shared run's sample again afterwards
        blocked = materialize(data_dir, selection=["balanced_sample", "serving_snapshot"], run_config=config,
                              raise_on_error=False)
        assert not blocked.success
        assert _checks(blocked)["sample_covers_every_emotion"].passed is False
        assert not blocked.asset_materializations_for_node("serving_snapshot")
