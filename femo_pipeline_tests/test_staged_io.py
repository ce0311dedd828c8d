"""Data flows through Dagster: each materialization is a file of its own, and an asset reads exactly the file its
upstream's materialization recorded, never another file of the staging folder."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from femo_pipeline import io_managers
from femo_pipeline.defs.automation.automation import folder_changes
from femo_pipeline.io_managers import FILES, StagedParquetIOManager, StagedTable
from femo_pipeline.resources import FemoStorage
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, FOLDER_ASSETS, instance_for, materialize, staged_file

DEMO = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
# upstream asset -> (a downstream asset that loads it, what the two need first)
PAIRS = {
    "fer2013_images": ("image_catalog", ["demo_source_files", *(a for a in FOLDER_ASSETS if a != "fer2013_images")]),
    "image_catalog": ("images", ["demo_source_files", *FOLDER_ASSETS, "data_sources", "emotions"]),
    "everyday_emotions_survey": ("survey_responses", ["demo_source_files"]),
    "facs_action_units": ("facs_emotion_action_units", ["facs_page", "emotions"]),
}


def _failure_text(result) -> str:
    return " ".join(e.step_failure_data.error.to_string() for e in result.all_events
                    if e.event_type_value == "STEP_FAILURE")


def _files(result, asset: str) -> dict[str, str]:
    return result.asset_materializations_for_node(asset)[0].metadata[FILES].value


@pytest.mark.parametrize("upstream", list(PAIRS))
def test_each_materialization_is_a_file_of_its_own_and_only_the_recorded_one_is_read(tmp_path, upstream):
    """Materialized twice, an asset leaves two files (the first never overwritten); a downstream asset reads the
    one the latest materialization recorded, whatever else lies in the folder (a file planted there, newer, that
    is not even Parquet, is never opened); a recorded file that is gone fails with the fix."""
    downstream, first = PAIRS[upstream]
    data = tmp_path / "data"
    config = DEMO if "demo_source_files" in first else None
    one = _files(materialize(data, selection=[*first, upstream], run_config=config), upstream)
    two = _files(materialize(data, selection=[upstream]), upstream)
    assert set(one) == set(two) and all(one[n] != two[n] for n in one)
    assert all(Path(p).exists() for p in [*one.values(), *two.values()])
    assert all(Path(p).parent == data / "staging" / upstream for p in two.values())
    planted = data / "staging" / upstream / "zzzz-planted.parquet"
    planted.write_bytes(b"not a parquet file")
    os.utime(planted, (2**31, 2**31))  # the newest file of the folder by far
    assert materialize(data, selection=[downstream]).success
    for path in two.values():
        Path(path).unlink()
    result = materialize(data, selection=[downstream], raise_on_error=False)
    assert not result.success
    assert f"the staged file of {upstream} that its materialization recorded is gone" in _failure_text(result)
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
    result = materialize(data, selection=["demo_source_files", "fer2013_images", "extra_face_images", "image_catalog"],
                         run_config=DEMO, raise_on_error=False)
    assert not result.success
    assert "kaggle_face_images never materialized in this Dagster instance, but their source has files" \
        in _failure_text(result)
    result = materialize(data, selection=["kaggle_face_images", "image_catalog"])
    assert result.success
    meta = result.asset_materializations_for_node("image_catalog")[0].metadata
    assert set(meta["sources_never_materialized"].value) == {"pixabay_images", "duckduckgo_images"}
    sources = set(pq.read_table(staged_file(data, "image_catalog"), columns=["source_key"]).column(0).to_pylist())
    assert sources == {"fer2013", "kaggle", "extra"}
    assert meta["dagster/row_count"].value > 0


def test_the_sensor_compares_the_folder_with_the_latest_materialization(tmp_path):
    data = tmp_path / "data"
    storage = FemoStorage(data_dir=str(data))
    assert materialize(data, selection=["demo_source_files", *FOLDER_ASSETS], run_config=DEMO).success
    instance = instance_for(data)
    assert folder_changes(storage, instance) == {}
    # a newer file in the asset's folder that no materialization recorded is not what the sensor compares with
    recorded = staged_file(data, "kaggle_face_images")
    stray = recorded.with_name("zzzz-stray.parquet")
    pq.write_table(pq.read_table(recorded).slice(0, 3), stray)
    os.utime(stray, (2**31, 2**31))
    assert folder_changes(storage, instance) == {}
    # the recorded file gone: nothing staged to compare with, every file counts as new
    recorded.unlink()
    changes = folder_changes(storage, instance)
    assert set(changes) == {"kaggle"} and changes["kaggle"]["added"] > 0 and changes["kaggle"]["removed"] == 0
    # another instance never materialized anything: every folder is new to it
    assert set(folder_changes(storage, dg.DagsterInstance.ephemeral())) == {"fer2013", "kaggle", "extra"}


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
    def reader(context, single: StagedTable, named: dict, moved: StagedTable) -> None:
        assert single.read().column("a").to_pylist() == [1, 2] and single.rows == 2
        assert named["y"].to_pandas()["c"].tolist() == [0.5, 1.5] and named["x"].rows == 1
        assert moved.rows == 3 and moved.path == tmp_path / "staging" / "moved" / f"{context.run_id}.parquet"

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([single, named, moved, reader], instance=instance,
                                resources={"staged": StagedParquetIOManager(storage=storage)})
    assert result.success
    assert not streamed.exists()  # moved into place, not copied
    run = result.run_id
    assert sorted(str(p.relative_to(tmp_path / "staging")) for p in (tmp_path / "staging").rglob("*.parquet")) == [
        f"moved/{run}.parquet", f"named/{run}.x.parquet", f"named/{run}.y.parquet", f"single/{run}.parquet"]
    assert _files(result, "named") == {"x": str(tmp_path / "staging" / "named" / f"{run}.x.parquet"),
                                       "y": str(tmp_path / "staging" / "named" / f"{run}.y.parquet")}


def test_a_run_reads_its_own_upstream_version_even_after_another_run_made_a_newer_one(tmp_path):
    """Inside a run, the upstream's materialization of that run is loaded, even when another run materialized
    the upstream in between (here from inside the run, before the reader starts); from outside, the latest."""
    storage = FemoStorage(data_dir=str(tmp_path))
    value = {"n": 1}
    resources = {"staged": StagedParquetIOManager(storage=storage)}

    @dg.asset(io_manager_key="staged")
    def up() -> pa.Table:
        return pa.table({"n": [value["n"]]})

    @dg.asset(deps=[up])
    def meanwhile(context) -> None:  # another run makes a newer version of up
        value["n"] = 2
        assert dg.materialize([up], instance=context.instance, resources=resources).success

    @dg.asset(deps=[meanwhile])
    def reader(up: StagedTable) -> list:
        return up.read().column("n").to_pylist()

    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.materialize([up, meanwhile, reader], instance=instance, resources=resources)
        assert first.output_for_node("reader") == [1]
        again = dg.materialize([up, meanwhile, reader], selection=[reader], instance=instance, resources=resources)
        assert again.output_for_node("reader") == [2]  # up not in this run: its latest materialization
        key = dg.AssetKey("up")
        mine = io_managers.load_recorded(io_managers.recorded_metadata(instance, key, first.run_id), key)
        latest = io_managers.load_recorded(io_managers.recorded_metadata(instance, key), key)
    assert mine.read().column("n").to_pylist() == [1] and latest.read().column("n").to_pylist() == [2]


def test_old_versions_go_after_a_day_and_the_newest_two_always_stay(tmp_path):
    folder = tmp_path / "asset"
    folder.mkdir()
    now = 10 * io_managers.STALE_S
    ages = {"a": 5, "b": 4, "c": 3, "d": 0.5, "e": 2}  # days old (e: a dict output, two files)
    for version, days in ages.items():
        names = [f"{version}.files.parquet", f"{version}.downloads.parquet"] if version == "e" else [
            f"{version}.parquet"]
        for name in names:
            (folder / name).write_bytes(b"x")
            os.utime(folder / name, (now - days * io_managers.STALE_S,) * 2)
    removed = io_managers.remove_old_versions(folder, now=now)
    # d and e are the newest two (e a day old, kept anyway); a, b, c are over a day old and older than both
    assert sorted(p.name for p in removed) == ["a.parquet", "b.parquet", "c.parquet"]
    assert sorted(p.name for p in folder.iterdir()) == ["d.parquet", "e.downloads.parquet", "e.files.parquet"]
    (folder / "f.parquet").write_bytes(b"x")  # a new version: e is no longer among the newest two
    os.utime(folder / "f.parquet", (now,) * 2)
    assert sorted(p.name for p in io_managers.remove_old_versions(folder, now=now)) == [
        "e.downloads.parquet", "e.files.parquet"]
    assert sorted(p.name for p in folder.iterdir()) == ["d.parquet", "f.parquet"]



def test_streamed_files_a_failed_run_left_behind_are_cleaned_after_a_day(tmp_path):
    from femo_pipeline.io_managers import STALE_S, incoming_path

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
    assert STALE_S >= 3600


def test_days_load_only_if_materialized_here(tmp_path):
    storage = FemoStorage(data_dir=str(tmp_path))
    days = dg.StaticPartitionsDefinition(["2026-11-20", "2026-11-21", "2026-11-22"])

    @dg.asset(io_manager_key="staged", partitions_def=days)
    def hits(context) -> pa.Table:
        return pa.table({"day": [context.partition_key if context.has_partition_key else "none"]})

    @dg.asset(io_manager_key="staged")
    def whole() -> pa.Table:
        return pa.table({"x": [1]})

    @dg.asset
    def seen(hits: dict) -> dict:
        return {day: table.read().column("day").to_pylist() for day, table in hits.items()}

    resources = {"staged": StagedParquetIOManager(storage=storage)}
    with dg.DagsterInstance.ephemeral() as instance:
        for day in ("2026-11-20", "2026-11-21"):
            assert dg.materialize([hits], partition_key=day, instance=instance, resources=resources).success
        stray = tmp_path / "staging" / "hits" / "2026-11-22" / "stray.parquet"  # on disk, never materialized here
        stray.parent.mkdir()
        pq.write_table(pa.table({"day": ["old"]}), stray)
        result = dg.materialize([hits, seen], selection=[seen], instance=instance, resources=resources)
        assert result.success
        assert result.output_for_node("seen") == {"2026-11-20": ["2026-11-20"], "2026-11-21": ["2026-11-21"]}
        for path in (tmp_path / "staging" / "hits" / "2026-11-21").iterdir():
            path.unlink()
        result = dg.materialize([hits, seen], selection=[seen], instance=instance, resources=resources,
                                raise_on_error=False)
        assert not result.success and "materialize hits again" in _failure_text(result)
        # a partitioned asset stored as a whole would be lost to its readers: refused
        bad = dg.materialize([hits], instance=instance, resources=resources, raise_on_error=False)
        assert not bad.success and "partitioned by day" in _failure_text(bad)
        assert dg.materialize([whole], instance=instance, resources=resources).success
