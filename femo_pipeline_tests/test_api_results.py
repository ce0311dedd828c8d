"""The benchmark routes (/benchmark, /images/{id}/predictions) over a hand-made warehouse snapshot."""

from __future__ import annotations

import contextlib

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from femo_pipeline import warehouse as wh
from femo_pipeline.api import SnapshotReader
from femo_pipeline.api_results import router


@pytest.fixture()
def client(tmp_path):
    with _client(tmp_path) as c:
        yield c


@contextlib.contextmanager
def _client(tmp_path, *extra_sql: str):
    path = tmp_path / "snapshot.duckdb"
    con = duckdb.connect(str(path))
    wh.ensure_schema(con)
    wh.upsert_data_sources(con, set())
    wh.upsert_emotions(con)
    for image_id, label in ((11, 2), (12, 3)):
        con.execute("INSERT INTO images BY NAME SELECT ? AS id, 4 AS source_id, ? AS emotion_id, 'test' AS split, "
                    "'PublicTest' AS usage, ? AS rel_path, 'x' AS label_raw, 48 AS height, 48 AS width, "
                    "1.0 AS aspect_ratio, 'JPEG' AS image_format, 'Grayscale' AS color_space, 1 AS channels, "
                    "100 AS file_size_bytes, 'h' AS content_hash, 1 AS duplicate_count, false AS "
                    "duplicate_cross_split, false AS duplicate_label_conflict, false AS synthetic",
                    [image_id, label, f"test/{image_id}.jpg"])
    wh.record_model_run(con, {"id": "femo-shipped-fer2013-ab", "reader": "femo CNN", "origin": "shipped",
                              "created": "2026-01-01T00:00:00", "synthetic": False, "validation_accuracy": 0.6})
    wh.replace_predictions(con, "femo-shipped-fer2013-ab", [11, 12], [[0, 0, .9, .1, 0, 0, 0], [0, 0, .6, .4, 0, 0, 0]])
    con.execute("INSERT INTO human_votes VALUES (11, 1, 0, 0, 0, 0, 0, 8, 0, 1, 0, '5', false)")
    con.execute("INSERT INTO benchmark_scores VALUES ('leak-free test', 'ferplus', 'seven_classes', "
                "'femo CNN', 'femo-shipped-fer2013-ab', 'accuracy', 0.7, 0.6, 0.8, 2)")
    con.execute("INSERT INTO verdicts VALUES ('leak-free test', 'ferplus', 'seven_classes', 'femo CNN', 'human', "
                "'femo-shipped-fer2013-ab', 2, 18, 0.7, 0.6, 0.8, 0.8, 0.7, 0.9, -10.0, -15.0, -5.0, 'worse', true, "
                "'accuracy')")
    con.execute("INSERT INTO verdicts VALUES ('leak-free test', 'ferplus', 'seven_classes', 'femo CNN', 'human', "
                "'femo-shipped-fer2013-ab', 2, 18, 0.6, 0.5, 0.7, 0.65, 0.6, 0.7, -5.0, -9.0, -1.0, 'worse', true, "
                "'balanced_recall')")
    con.execute("INSERT INTO panel_scores VALUES ('leak-free test', 'ferplus', 'seven_classes', 'femo CNN', "
                "'femo-shipped-fer2013-ab', 3, 'accuracy', 2, 0.7, 0.6, 0.8, 0.8, 0.7, 0.9, -10.0, -15.0, -5.0, "
                "'worse')")
    wh.set_info(con, {"declared_model_run": "femo-shipped-fer2013-ab", "synthetic": "false"})
    for sql in extra_sql:
        con.execute(sql)
    con.close()
    app = FastAPI()
    app.state.reader = SnapshotReader(path)
    app.include_router(router)
    with TestClient(app) as c:
        yield c


def test_benchmark_route(client):
    answer = client.get("/benchmark").json()
    assert answer["declared_model_run"] == "femo-shipped-fer2013-ab" and answer["synthetic"] is False
    # the headline is the accuracy row (the balanced-recall row sits beside it among the verdicts)
    assert answer["headline"]["verdict"] == "worse" and answer["headline"]["ci_high_pp"] == -5.0
    assert answer["headline"]["metric"] == "accuracy"
    assert sorted(v["metric"] for v in answer["verdicts"]) == ["accuracy", "balanced_recall"]
    assert [(p["k"], p["panel_value"], p["verdict"]) for p in answer["panels"]] == [(3, 0.8, "worse")]
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


def test_probabilities_that_are_not_numbers_are_refused_at_the_door_and_never_break_the_api(tmp_path):
    con = duckdb.connect()
    wh.ensure_schema(con)
    with pytest.raises(ValueError, match="1 images probabilities that are not numbers"):
        wh.replace_predictions(con, "r", [1, 2], [[0, 0, 1, 0, 0, 0, 0], [float("nan"), 0, 1, 0, 0, 0, 0]])
    assert con.execute("SELECT count(*) FROM predictions").fetchone() == (0,)
    # a snapshot written before that check: the NaN answers as null, not as a server error
    with _client(tmp_path, "UPDATE predictions SET p_anger = 'NaN'::DOUBLE WHERE image_id = 12") as c:
        answer = c.get("/images/12/predictions")
        assert answer.status_code == 200
        assert answer.json()["predictions"][0]["probabilities"]["anger"] is None


def test_several_tables_are_replaced_in_one_transaction_or_not_at_all():
    con = duckdb.connect()
    con.execute("CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER NOT NULL); INSERT INTO a VALUES (1); "
                "INSERT INTO b VALUES (1)")
    import pandas as pd

    assert wh.replace_tables(con, {"a": pd.DataFrame({"x": [2, 3]}), "b": pd.DataFrame({"y": [4]})}) == {"a": 2, "b": 1}
    with pytest.raises(duckdb.Error):  # the second table refuses its rows: the first keeps its own
        wh.replace_tables(con, {"a": pd.DataFrame({"x": [9]}), "b": pd.DataFrame({"y": [None]})})
    assert con.execute("SELECT * FROM a ORDER BY x").fetchall() == [(2,), (3,)]
    assert con.execute("SELECT * FROM b").fetchall() == [(4,)]
