"""Settings from the environment are read when an asset runs, not when the code location is imported: each test
sets a variable after femo_pipeline.definitions was imported and the run uses it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from femo_pipeline.definitions import all_assets
from femo_pipeline.resources import FacsPageResource
from femo_pipeline_tests.conftest import materialize, resources_for


def _skipped(result, asset: str) -> str:
    return result.asset_materializations_for_node(asset)[0].metadata["skipped"].value


def test_ferplus_votes_path_comes_from_the_environment_at_run_time(tmp_path, monkeypatch):
    votes = tmp_path / "set-after-import" / "votes.csv"
    monkeypatch.setenv("FEMO_FERPLUS_VOTES", str(votes))
    result = materialize(tmp_path / "data", selection=["human_baseline"])
    assert result.success
    assert str(votes) in _skipped(result, "human_baseline")


def test_fer2013new_path_comes_from_the_environment_at_run_time(tmp_path, monkeypatch):
    path = tmp_path / "set-after-import" / "fer2013new.csv"
    monkeypatch.setenv("FEMO_FER2013NEW", str(path))
    result = materialize(tmp_path / "data", selection=["fer2013new_csv"], profile="real",
                         run_config={"ops": {"fer2013new_csv": {"config": {"download": False}}}})
    assert result.success
    assert str(path) in _skipped(result, "fer2013new_csv")


def test_explicit_config_still_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMO_FERPLUS_VOTES", str(tmp_path / "from-env.csv"))
    chosen = tmp_path / "from-config.csv"
    result = materialize(tmp_path / "data", selection=["human_baseline"],
                         run_config={"ops": {"human_baseline": {"config": {"votes_csv": str(chosen)}}}})
    assert str(chosen) in _skipped(result, "human_baseline")


def test_facs_page_url_comes_from_the_environment_at_run_time(tmp_path, monkeypatch):
    """FEMO_FACS_URL=fixture set after import: a real-profile run uses the shipped page instead of the network."""
    from femo_pipeline.definitions import defs

    monkeypatch.setenv("FEMO_FACS_URL", "fixture")
    assert defs.resources["facs_source"].page_url() == "fixture"
    resources = {**resources_for(tmp_path / "data", profile="real"),
                 "facs_source": FacsPageResource(max_retries=0, timeout=5)}  # no URL configured: as shipped
    result = dg.materialize([*all_assets], selection=["facs_page"], resources=resources)
    assert result.success
    assert result.asset_materializations_for_node("facs_page")[0].metadata["origin"].value == "femo fixture"


def test_the_code_location_reads_the_data_folder_and_profile_at_run_time(tmp_path, monkeypatch):
    """definitions.defs was imported before these variables existed: its run still writes the warehouse and the
    staged tables under FEMO_DATA_DIR and runs the real profile on FEMO_KAGGLE_DIR."""
    from femo_pipeline.definitions import defs
    from femo_pipeline_tests.test_hostile_ingest import face

    source = tmp_path / "kaggle"
    (source / "anger").mkdir(parents=True)
    (source / "anger" / "a.png").write_bytes(face(1, ".png", size=48))
    monkeypatch.setenv("FEMO_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("FEMO_KAGGLE_DIR", str(source))
    storage = defs.resources["storage"]
    assert storage.resolved_profile() == "real" and storage.root == tmp_path / "from-env"
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, asset_selection=[
            dg.AssetKey(k) for k in ("kaggle_face_images", "data_sources")])
    assert result.success
    staged = result.asset_materializations_for_node("kaggle_face_images")[0].metadata["staged_file"].value
    assert Path(staged).parent == tmp_path / "from-env" / "staging" / "kaggle_face_images" and Path(staged).exists()
    assert (tmp_path / "from-env" / "warehouse" / "femo.duckdb").exists()
    meta = result.asset_materializations_for_node("kaggle_face_images")[0].metadata
    assert meta["usable_images"].value == 1 and meta["synthetic"].value is False
