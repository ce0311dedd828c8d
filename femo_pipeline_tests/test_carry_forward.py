"""A run whose source is not configured (a daemon's environment without the API key, the survey path or a
folder path) keeps what the source staged before, so the warehouse tables built on it are not emptied; what
another profile staged is never carried over."""

from __future__ import annotations

import json
import shutil

import cv2
import dagster as dg
import numpy as np

from femo_pipeline.definitions import all_assets, web_resources
from femo_pipeline.io_managers import latest_staged
from femo_pipeline_tests.conftest import TODAY, resources_for
from femo_pipeline_tests.fake_web import Answer, FakeWeb


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_a_web_refresh_without_the_key_keeps_the_days_hits_and_the_downloaded_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    with FakeWeb() as web:
        hits = []
        for i in range(3):
            image = cv2.imencode(".png", rng.integers(0, 255, (64, 64), dtype=np.uint8))[1].tobytes()
            web.routes[f"/img/{i}.png"] = [Answer(200, image, {"Content-Type": "image/png"})]
            hits.append({"id": i, "largeImageURL": f"{web.url}/img/{i}.png", "imageWidth": 64, "imageHeight": 64})
        web.routes["/api/"] = [Answer(200, json.dumps({"hits": hits, "totalHits": 3}).encode())]
        instance = dg.DagsterInstance.ephemeral()
        resources = resources_for(tmp_path, web_resources(pixabay_url=web.url + "/api/", ddg_url="http://127.0.0.1:9/x",
                                                          min_interval=0, max_retries=0), profile="real")
        config = {"ops": {"pixabay_hits": {"config": {"queries": {"Happiness": "happy face"}, "per_emotion": 3,
                                                      "per_page": 3}}}}

        def run(selection):
            result = dg.materialize(all_assets, instance=instance, selection=selection, resources=resources,
                                    partition_key=TODAY if selection == ["pixabay_hits"] else None,
                                    run_config=config if selection == ["pixabay_hits"] else None)
            assert result.success
            return result

        monkeypatch.setenv("PIXABAY_API_KEY", "K1234567")
        run(["pixabay_hits"])
        run(["pixabay_images"])
        monkeypatch.delenv("PIXABAY_API_KEY")
        again = run(["pixabay_hits"])
        meta = _meta(again, "pixabay_hits")
        assert "PIXABAY_API_KEY is not set; the day's 3 hits found before are kept" == meta["skipped"]
        assert meta["dagster/row_count"] == 3
        images = _meta(run(["pixabay_images"]), "pixabay_images")
        assert images["files"] == 3  # the downloaded files stay staged, so the catalog keeps their images
        staged = latest_staged(instance, "pixabay_images")["files"].to_pandas(["status"])
        assert list(staged["status"]) == ["ok"] * 3
        # the demo profile on the same data folder never takes the real hits or downloads in
        resources = resources_for(tmp_path, web_resources(pixabay_url=web.url + "/api/", ddg_url="http://127.0.0.1:9/x",
                                                          min_interval=0, max_retries=0), profile="demo")
        assert _meta(run(["pixabay_hits"]), "pixabay_hits")["dagster/row_count"] == 0
        assert latest_staged(instance, "pixabay_images")["files"].rows == 3  # before the demo's own run
        assert _meta(run(["pixabay_images"]), "pixabay_images")["skipped"] == "no hits from pixabay_hits"
        assert latest_staged(instance, "pixabay_images")["files"].rows == 0


def test_a_run_without_a_folder_or_survey_path_keeps_what_they_staged_but_never_another_profiles(
        tmp_path, demo_inputs, monkeypatch):
    for name in ("FEMO_KAGGLE_DIR", "FEMO_SURVEY_CSV"):
        monkeypatch.delenv(name, raising=False)
    instance = dg.DagsterInstance.ephemeral()
    selection = ["kaggle_face_images", "everyday_emotions_survey"]

    def run(**storage):
        result = dg.materialize(all_assets, instance=instance, selection=selection,
                                resources=resources_for(tmp_path, **storage))
        assert result.success
        return _meta(result, "kaggle_face_images"), _meta(result, "everyday_emotions_survey")

    folder, answers = run(profile="real", kaggle_dir=str(demo_inputs / "kaggle"),
                          survey_csv=str(demo_inputs / "survey.csv"))
    files, responses = folder["dagster/row_count"], answers["responses"]
    assert files > 0 and responses > 0 and folder["synthetic"] is False
    folder, answers = run(profile="real")  # the settings gone: what was staged stays, and says so
    assert folder["dagster/row_count"] == files and folder["carried_forward"] is True
    assert f"the {files:,} files it staged before are kept" in folder["skipped"]
    assert answers["responses"] == responses and "answers staged before are kept" in answers["skipped"]
    assert latest_staged(instance, "everyday_emotions_survey")["responses"].rows == responses
    # what the demo profile staged (synthetic) is never carried into a real run
    shutil.copytree(demo_inputs, tmp_path / "demo")  # where the demo profile reads its sources
    run(profile="demo")
    folder, answers = run(profile="real")
    assert folder["dagster/row_count"] == 0 and folder["carried_forward"] is False
    assert answers["responses"] == 0
