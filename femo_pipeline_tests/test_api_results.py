"""The benchmark routes (/benchmark, /images/{id}/predictions) over a hand-made warehouse snapshot."""

from __future__ import annotations

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from femo_pipeline import warehouse as wh
from femo_pipeline.api import SnapshotReader
from femo_pipeline.api_results import router


@pytest.fixture()
def client(tmp_path):
    path = tmp_path / "snapshot.duckdb"
    con = duckdb.connect(str(path))
    wh.ensure_schema(con)
    wh.upsert_data_sources(con, set())
    wh.upsert_emotions(con)
    for image_id, label in ((11, 2), (12, 3)):
        con.execute("INSERT INTO images VALUES (?, 4, ?, 'test', 'PublicTest', ?, 'x', 48, 48, 1.0, 'JPEG', "
                    "'Grayscale', 1, 100, 'h', 1, false, false, false)", [image_id, label, f"test/{image_id}.jpg"])
    wh.record_model_run(con, {"id": "femo-shipped-fer2013-ab", "reader": "femo CNN", "origin": "shipped",
                              "created": "2026-01-01T00:00:00", "synthetic": False, "validation_accuracy": 0.6})
    wh.replace_predictions(con, "femo-shipped-fer2013-ab", [11, 12], [[0, 0, .9, .1, 0, 0, 0], [0, 0, .6, .4, 0, 0, 0]])
    con.execute("INSERT INTO human_votes VALUES (11, 1, 0, 0, 0, 0, 0, 8, 0, 1, 0, '5', false)")
    con.execute("INSERT INTO benchmark_scores VALUES ('leak-free test', 'ferplus', 'seven_classes', "
                "'femo CNN', 'femo-shipped-fer2013-ab', 'accuracy', 0.7, 0.6, 0.8, 2)")
    con.execute("INSERT INTO verdicts VALUES ('leak-free test', 'ferplus', 'seven_classes', 'femo CNN', 'human', "
                "'femo-shipped-fer2013-ab', 2, 18, 0.7, 0.6, 0.8, 0.8, 0.7, 0.9, -10.0, -15.0, -5.0, 'worse', true, "
                "'accuracy')")
    wh.set_info(con, {"declared_model_run": "femo-shipped-fer2013-ab", "synthetic": "false"})
    con.close()
    app = FastAPI()
    app.state.reader = SnapshotReader(path)
    app.include_router(router)
    with TestClient(app) as c:
        yield c


def test_benchmark_route(client):
    answer = client.get("/benchmark").json()
    assert answer["declared_model_run"] == "femo-shipped-fer2013-ab" and answer["synthetic"] is False
    assert answer["headline"]["verdict"] == "worse" and answer["headline"]["ci_high_pp"] == -5.0
    assert [s["value"] for s in answer["scores"]] == [0.7]
    assert [r["id"] for r in answer["model_runs"]] == ["femo-shipped-fer2013-ab"]
    assert client.get("/benchmark", params={"dataset": "full test"}).json()["verdicts"] == []
    assert client.get("/benchmark", params={"reference": "fer2013"}).json()["verdicts"] == []
    bad = client.get("/benchmark", params={"dataset": "everything"})
    assert bad.status_code == 422


def test_image_predictions_route(client):
    answer = client.get("/images/11/predictions").json()
    assert answer["label"] == "Fear" and answer["human_votes"]["fear"] == 8
    [p] = answer["predictions"]
    assert p["emotion"] == "Fear" and p["correct"] is True and p["probabilities"]["fear"] == 0.9
    assert client.get("/images/12/predictions").json()["human_votes"] is None
    missing = client.get("/images/99/predictions")
    assert missing.status_code == 404 and "99" in missing.json()["detail"]
    assert client.get(f"/images/{2**63}/predictions").status_code == 422
    assert client.get("/images/abc/predictions").status_code == 422
    assert "snapshot" not in client.get("/images/11/predictions").text
