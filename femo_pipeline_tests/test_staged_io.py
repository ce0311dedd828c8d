"""Data flows through Dagster: each asset reads exactly its upstream's output, never a leftover file."""

from __future__ import annotations

import os

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from femo_pipeline.defs.automation.automation import folder_changes
from femo_pipeline.io_managers import StagedParquetIOManager, StagedTable
from femo_pipeline.resources import FemoStorage
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, instance_for, materialize

DEMO = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
# upstream asset -> (its staged file(s) under staging/, a downstream asset that loads it, what it needs first)
PAIRS = {
    "fer2013_images": (["fer2013_images.parquet"], "image_catalog", ["demo_source_files", "kaggle_face_images"]),
    "image_catalog": (["image_catalog.parquet"], "images",
                      ["demo_source_files", "fer2013_images", "kaggle_face_images", "data_sources", "emotions"]),
    "everyday_emotions_survey": (["everyday_emotions_survey.responses.parquet",
                                  "everyday_emotions_survey.rejected.parquet"], "survey_responses",
                                 ["demo_source_files"]),
    "facs_action_units": (["facs_action_units.links.parquet", "facs_action_units.units.parquet"],
                          "facs_emotion_action_units", ["facs_page", "emotions"]),
}


def _failure_text(result) -> str:
    return " ".join(e.step_failure_data.error.to_string() for e in result.all_events
                    if e.event_type_value == "STEP_FAILURE")


@pytest.mark.parametrize("upstream", list(PAIRS))
def test_a_replaced_staged_file_is_refused_and_a_fresh_materialization_is_read(tmp_path, upstream):
    files, downstream, first = PAIRS[upstream]
    data = tmp_path / "data"
    assert materialize(data, selection=[*first, upstream],
                       run_config=DEMO if "demo_source_files" in first else None).success
    target = data / "staging" / files[0]
    stale = pq.read_table(target).slice(0, 1)  # a leftover: a valid table, but not the latest materialization
    tmp = target.with_suffix(".other")
    pq.write_table(stale, tmp)
    os.replace(tmp, target)
    result = materialize(data, selection=[downstream], raise_on_error=False)
    assert not result.success
    assert "not the one its latest materialization wrote" in _failure_text(result)
    assert f"materialize {upstream} again" in _failure_text(result)
    assert materialize(data, selection=[upstream, downstream]).success  # materialized again: read again


def test_an_upstream_never_materialized_is_a_clear_failure_not_an_old_file(tmp_path):
    """A staged file left on disk by another instance (e.g. a deleted DAGSTER_HOME) is never picked up."""
    data = tmp_path / "data"
    assert materialize(data, selection=["demo_source_files", "everyday_emotions_survey"], run_config=DEMO).success
    other = dg.DagsterInstance.ephemeral()  # the files are there, this instance never materialized the survey
    result = materialize(data, selection=["survey_responses"], raise_on_error=False, instance=other)
    assert not result.success
    assert "everyday_emotions_survey was never materialized in this Dagster instance" in _failure_text(result)


def test_the_catalog_leaves_out_only_sources_without_files(tmp_path):
    """A source never materialized here whose folder has files would be dropped from the warehouse: refused.
    The web sources (no key, no downloads) have nothing to lose and are left out, said in the metadata."""
    data = tmp_path / "data"
    result = materialize(data, selection=["demo_source_files", "fer2013_images", "image_catalog"], run_config=DEMO,
                         raise_on_error=False)
    assert not result.success
    assert "kaggle_face_images never materialized in this Dagster instance, but their source has files" \
        in _failure_text(result)
    result = materialize(data, selection=["kaggle_face_images", "image_catalog"])
    assert result.success
    meta = result.asset_materializations_for_node("image_catalog")[0].metadata
    assert set(meta["sources_never_materialized"].value) == {"pixabay_images", "duckduckgo_images"}
    sources = set(pq.read_table(data / "staging" / "image_catalog.parquet", columns=["source_key"])
                  .column(0).to_pylist())
    assert sources == {"fer2013", "kaggle"}
    assert meta["staged_stamp"].value and meta["dagster/row_count"].value > 0


def test_the_sensor_compares_the_folder_with_the_latest_materialization(tmp_path):
    data = tmp_path / "data"
    storage = FemoStorage(data_dir=str(data))
    assert materialize(data, selection=["demo_source_files", "fer2013_images", "kaggle_face_images"],
                       run_config=DEMO).success
    instance = instance_for(data)
    assert folder_changes(storage, instance) == {}
    # the staged file replaced behind Dagster's back: not trusted, every file counts as new
    target = data / "staging" / "kaggle_face_images.parquet"
    pq.write_table(pq.read_table(target).slice(0, 3), target)
    changes = folder_changes(storage, instance)
    assert set(changes) == {"kaggle"} and changes["kaggle"]["added"] > 0 and changes["kaggle"]["removed"] == 0
    # another instance never materialized anything: both folders are new to it
    assert set(folder_changes(storage, dg.DagsterInstance.ephemeral())) == {"fer2013", "kaggle"}


def test_the_io_manager_stores_tables_named_tables_and_streamed_files(tmp_path):
    storage = FemoStorage(data_dir=str(tmp_path))
    streamed = tmp_path / "staging" / ".incoming" / "x.parquet"
    streamed.parent.mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2, 3]}), streamed)

    @dg.asset(io_manager_key="staged")
    def single() -> pa.Table:
        return pa.table({"a": [1, 2]})

    @dg.asset(io_manager_key="staged")
    def named() -> dict:
        return {"x": pa.table({"b": ["u"]}), "y": pa.table({"c": [0.5, 1.5]})}

    @dg.asset(io_manager_key="staged")
    def moved() -> StagedTable:
        return StagedTable(streamed, 3)

    @dg.asset
    def reader(single: StagedTable, named: dict, moved: StagedTable) -> None:
        assert single.read().column("a").to_pylist() == [1, 2] and single.rows == 2
        assert named["y"].to_pandas()["c"].tolist() == [0.5, 1.5] and named["x"].rows == 1
        assert moved.rows == 3 and moved.path == tmp_path / "staging" / "moved.parquet"

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([single, named, moved, reader], instance=instance,
                                resources={"staged": StagedParquetIOManager(storage=storage)})
    assert result.success
    assert not streamed.exists()  # moved into place, not copied
    assert sorted(p.name for p in (tmp_path / "staging").glob("*.parquet")) == [
        "moved.parquet", "named.x.parquet", "named.y.parquet", "single.parquet"]


def test_streamed_files_a_failed_run_left_behind_are_cleaned_after_a_day(tmp_path):
    from femo_pipeline.io_managers import STALE_INCOMING_S, incoming_path

    storage = FemoStorage(data_dir=str(tmp_path))
    first = incoming_path(storage)
    old, recent = first.parent / "old.parquet", first.parent / "recent.parquet"
    for path in (old, recent):
        path.write_bytes(b"x")
    os.utime(old, (0, 0))
    # spool folders of folder inspections a killed run left: the old one goes, a running one stays, and a link
    # that only looks like one is never followed
    old_spool, live_spool = first.parent / "femo-inspect-old", first.parent / "femo-inspect-live"
    for folder in (old_spool, live_spool):
        folder.mkdir()
        (folder / "0000000.arrow").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"x")
    link = first.parent / "femo-inspect-link"
    link.symlink_to(outside)
    for path in (old_spool, link):
        os.utime(path, (0, 0), follow_symlinks=False)
    second = incoming_path(storage)
    assert second != first and second.parent == first.parent
    assert not old.exists() and recent.exists()
    assert not old_spool.exists() and (live_spool / "0000000.arrow").exists()
    assert (outside / "keep").exists()
    assert STALE_INCOMING_S >= 3600


def test_days_load_only_if_materialized_here_and_unchanged(tmp_path):
    storage = FemoStorage(data_dir=str(tmp_path))
    days = dg.StaticPartitionsDefinition(["2026-11-20", "2026-11-21", "2026-11-22"])

    @dg.asset(io_manager_key="staged", partitions_def=days)
    def hits(context) -> pa.Table:
        return pa.table({"day": [context.partition_key if context.has_partition_key else "none"]})

    @dg.asset(io_manager_key="staged")
    def whole() -> pa.Table:
        return pa.table({"x": [1]})

    @dg.asset
    def seen(hits: dict) -> list:
        return sorted(hits)

    resources = {"staged": StagedParquetIOManager(storage=storage)}
    with dg.DagsterInstance.ephemeral() as instance:
        for day in ("2026-11-20", "2026-11-21"):
            assert dg.materialize([hits], partition_key=day, instance=instance, resources=resources).success
        stray = tmp_path / "staging" / "hits" / "2026-11-22.parquet"  # on disk, never materialized here
        pq.write_table(pa.table({"day": ["old"]}), stray)
        result = dg.materialize([hits, seen], selection=[seen], instance=instance, resources=resources)
        assert result.success and result.output_for_node("seen") == ["2026-11-20", "2026-11-21"]
        day = tmp_path / "staging" / "hits" / "2026-11-21.parquet"
        pq.write_table(pa.table({"day": ["replaced"]}), day)
        result = dg.materialize([hits, seen], selection=[seen], instance=instance, resources=resources,
                                raise_on_error=False)
        assert not result.success and "materialize hits again" in _failure_text(result)
        # a partitioned asset stored as a whole would be lost to its readers: refused
        bad = dg.materialize([hits], instance=instance, resources=resources, raise_on_error=False)
        assert not bad.success and "partitioned by day" in _failure_text(bad)
        assert dg.materialize([whole], instance=instance, resources=resources).success


def test_a_file_replaced_by_a_run_that_has_not_recorded_it_yet_is_read_once_it_has(tmp_path, monkeypatch):
    """Another run's os.replace lands before its materialization is stored: the reader looks again shortly and
    reads the new file once the event is there; a file no materialization recorded is still refused."""
    import types

    import dagster as dg
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from femo_pipeline import io_managers

    base = tmp_path / "image_catalog"
    path = tmp_path / "image_catalog.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    old = io_managers.stamp(path)
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "new.parquet")
    (tmp_path / "new.parquet").replace(path)
    new = io_managers.stamp(path)

    def event(value):
        meta = {"staged_stamp": dg.MetadataValue.json({"": value})}
        return types.SimpleNamespace(asset_materialization=types.SimpleNamespace(metadata=meta))

    monkeypatch.setattr(io_managers, "REPLACED_WAIT_S", 0.01)
    seen = iter([event(old), event(old), event(new)])  # the new event is stored on the third look
    instance = types.SimpleNamespace(get_latest_materialization_event=lambda key: next(seen))
    table = io_managers.load_latest(instance, dg.AssetKey("image_catalog"), base)
    assert table.rows == 3
    stale = types.SimpleNamespace(get_latest_materialization_event=lambda key: event(old))
    with pytest.raises(dg.Failure, match="replaced since"):
        io_managers.load_latest(stale, dg.AssetKey("image_catalog"), base)
