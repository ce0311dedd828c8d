"""The benchmark's assets on hand-made small data: model runs, predictions, votes, verdicts, lineage, the floor."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from femo_pipeline import benchmark, model
from femo_pipeline import human_baseline as hb
from femo_pipeline.definitions import all_assets, all_checks
from femo_pipeline_tests.conftest import FER2013_DIR, SHARED, TODAY, _selects_partitioned, resources_for
from femo_pipeline_tests.test_model import _faces

SMALL = {"demo_source_files": {"config": {"fer_train_per_class": 8, "fer_test_per_class": 4, "kaggle_per_class": 5,
                                          "survey_rows": 300, "extra_per_class": 2}},
         "emotion_model": {"config": {"epochs": 2, "width": 8}},
         "model_evaluation": {"config": {"n_boot": 50}}, "contender_predictions": {"config": {"n_boot": 50}},
         "benchmark_report": {"config": {"n_boot": 200}}}
MODEL_GROUP = (dg.AssetSelection.groups("model").upstream()
               - dg.AssetSelection.assets("data_factors", "data_factors_table", "human_baseline"))


def _run(data_dir, instance, selection, ops=None, **storage):
    names = ([k.path[-1] for k in selection.resolve(all_assets)] if isinstance(selection, dg.AssetSelection)
             else selection)
    return dg.materialize([*all_assets, *all_checks], selection=names, instance=instance,
                          partition_key=TODAY if _selects_partitioned(names) else None,
                          resources=resources_for(data_dir, **storage),
                          run_config={"ops": {k: v for k, v in (ops or {}).items()
                                              if k in names or k.startswith("predictions_")}},
                          raise_on_error=False)


def _q(data_dir, sql, params=None):
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture()
def shipped(tmp_path, monkeypatch):
    """A tiny femo model standing in for the committed one (with a model card giving its validation accuracy)."""
    x, y = _faces(3)
    net, _, _ = model.train(x, y, model.TrainConfig(epochs=1, width=8, augment=False), log=lambda _: None)
    path = tmp_path / "shipped" / "femo_cnn_fer2013.keras"
    path.parent.mkdir()
    net.save(path)
    path.with_suffix(".json").write_text(json.dumps({"best_validation_accuracy": 0.7, "backend": "tensorflow"}))
    # in place: SHIPPED is one dict, read by femo_pipeline.model.shipped and through the package
    monkeypatch.setitem(model.SHIPPED, "fer2013", path)
    monkeypatch.setitem(model.SHIPPED, "ferplus", tmp_path / "shipped" / "absent.keras")
    return path


@pytest.mark.slow
def test_benchmark_tables_lineage_and_the_floor(tmp_path, shipped):
    data_dir = tmp_path / "data"
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(data_dir, instance, MODEL_GROUP, SMALL)
        assert result.success
        fer_images = 7 * (8 + 4) + 2
        test_images, kaggle = 7 * 4 + 1, 7 * 5
        extra = 6 * 2 + 7 * 2  # the posed set's six classes a reader answers (contempt is not one), the web set's seven
        # drawn (synthetic) FER+ votes for every FER-2013 image, ten each
        assert _q(data_dir, "SELECT count(*), min(neutral + happiness + surprise + sadness + anger + disgust + fear "
                            "+ contempt + unknown + \"NF\"), bool_and(synthetic) FROM human_votes") == [(fer_images, 10, True)]
        runs = dict(_q(data_dir, "SELECT origin, count(*) FROM model_runs GROUP BY 1"))
        # one view and the extra views row of each femo model; the shipped fixture has one head, so no mix
        assert runs["trained"] == 2 and runs["shipped"] == 2 and runs["baseline"] == 1
        assert "shipped seed" not in runs  # the recorded seeds predicted the real test images, not these
        trained_id, synthetic = _q(data_dir, "SELECT id, synthetic FROM model_runs WHERE origin = 'trained' "
                                             "AND NOT ends_with(id, '-flip')")[0]
        assert synthetic is True and trained_id.startswith("femo-trained-fer2013-")
        meta = result.asset_materializations_for_node("emotion_model")[0].metadata
        assert meta["model_run_id"].value == trained_id
        # every reader predicted every FER-2013 test, Kaggle and extra image, probabilities summing to 1
        counts = _q(data_dir, "SELECT model_run_id, count(*), max(abs(p_anger + p_disgust + p_fear + p_happiness + "
                              "p_sadness + p_surprise + p_neutral - 1)) FROM predictions GROUP BY 1")
        assert len(counts) >= 5 and all(n == test_images + kaggle + extra and err < 1e-4 for _, n, err in counts)
        # declared: the model with the best validation accuracy, at one view; every reader vs humans on 2 sets x 2
        # refs x 2 variants, and on class-balanced recall (seven classes)
        declared = _q(data_dir, "SELECT value FROM warehouse_info WHERE key = 'declared_model_run'")[0][0]
        assert declared in {r for r, _, _ in counts} and not declared.endswith("-flip")
        metrics = _q(data_dir, "SELECT metric, variant, count(*) FROM verdicts WHERE against = 'human' AND model_run_id "
                               "= ? GROUP BY ALL ORDER BY ALL", [declared])
        assert metrics == [("accuracy", "all_votes", 4), ("accuracy", "seven_classes", 4),
                           ("balanced_recall", "seven_classes", 4)]
        panel = _q(data_dir, "SELECT DISTINCT k FROM panel_scores WHERE model_run_id = ? ORDER BY 1", [declared])
        assert panel == [(1,), (2,), (3,), (4,), (5,)]
        verdicts = _q(data_dir, "SELECT dataset, reference, variant, reader, verdict FROM verdicts WHERE against = 'human'")
        assert {(d, r, v) for d, r, v, _, _ in verdicts} == {
            (d, r, v) for d in benchmark.DATASETS for r in ("ferplus", "fer2013") for v in ("seven_classes", "all_votes")}
        assert {v for *_, v in verdicts} <= {"better", "worse", "no detectable difference"}
        leak = _q(data_dir, "SELECT DISTINCT n FROM benchmark_scores WHERE dataset = 'leak-free test' AND variant = 'per_image'")
        assert leak == [(test_images - 1,)]  # the demo's one test image copied from Training is left out
        assert _q(data_dir, "SELECT count(*) FROM verdicts_per_class WHERE against = 'human'")[0][0] % 7 == 0
        assert _q(data_dir, "SELECT count(*) FROM benchmark_scores WHERE reader = 'human' AND metric = 'accuracy'")[0][0] == 8
        _q(data_dir, "SELECT * FROM disagreements")  # the view answers
        report = json.loads((data_dir / "reports" / "benchmark.json").read_text())
        assert report["synthetic"] is True and "leak-free test images" in report["headline"]
        assert report["headline"].startswith("SYNTHETIC DEMO") and "like a panel of" in report["headline"]
        md = (data_dir / "reports" / "benchmark.md").read_text()
        assert "SYNTHETIC" in md and "benchmark_per_class.png" in md and "difference, points" in md
        assert (data_dir / "reports" / "benchmark_per_class.png").stat().st_size > 1000
        [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "declared_model_accuracy_floor"]
        assert check.passed and "demo profile" in check.metadata["description"].value
        # the answer first in the UI; the other tables' columns after it
        shown = list(result.asset_materializations_for_node("benchmark_report")[0].metadata)
        assert shown[0] == "headline" and shown.index("verdicts") < shown.index("columns of panel_scores")
        assert {f"columns of {t}" for t in ("benchmark_scores", "verdicts_per_class", "panel_scores")} <= set(shown)

        # the same warehouse read under the real profile: the demo-trained model is refused, the shipped one used
        real = _run(data_dir, instance, ["model_evaluation", "contender_predictions", "predictions",
                                         "benchmark_report"], SMALL, profile="real")
        assert real.success
        meta = real.asset_materializations_for_node("model_evaluation")[0].metadata
        assert "SYNTHETIC" in meta["not_used"].value["femo CNN (trained here)"]
        scored = json.loads(_q(data_dir, "SELECT value FROM warehouse_info WHERE key = 'scored_model_runs'")[0][0])
        shipped_ids = {r for (r,) in _q(data_dir, "SELECT id FROM model_runs WHERE origin = 'shipped'")}
        assert {r for r in scored if r.startswith("femo")} == shipped_ids
        readers = {r for (r,) in _q(data_dir, "SELECT DISTINCT model_run_id FROM benchmark_scores WHERE model_run_id IS NOT NULL")}
        synthetic_runs = {r for (r,) in _q(data_dir, "SELECT id FROM model_runs WHERE synthetic")}
        # the trained model (one view and two) and the majority baseline
        assert trained_id in synthetic_runs and len(synthetic_runs) == 3
        assert not readers & synthetic_runs and set(scored) - synthetic_runs <= readers
        report = json.loads((data_dir / "reports" / "benchmark.json").read_text())
        assert report["synthetic"] is False and "FER+ votes" in report["not_run"]
        assert all("trained here" not in r["reader"] for r in report["model_runs"])

        # the floor blocks the report in the real profile
        floor = {"predictions_declared_model_accuracy_floor": {"config": {"floor": 0.99}}}
        blocked = _run(data_dir, instance, ["model_evaluation", "predictions", "benchmark_report"],
                       {**SMALL, **floor}, profile="real")
        assert not blocked.success
        [check] = [c for c in blocked.get_asset_check_evaluations() if c.check_name == "declared_model_accuracy_floor"]
        assert not check.passed and "below the floor" in check.metadata["description"].value
        assert not blocked.asset_materializations_for_node("benchmark_report")


def test_lineage_rules():
    run = {"model_sha256": "a", "synthetic": True, "data_fingerprint": "f"}
    ok = dict(synthetic_profile=True, current_fingerprint="f", file_sha256="a")
    assert benchmark.trained_run_usable(run, **ok) is None
    assert "not been materialized" in benchmark.trained_run_usable(None, **ok)
    assert "skipped" in benchmark.trained_run_usable({"skipped": "no data"}, **ok)
    assert "gone" in benchmark.trained_run_usable(run, **{**ok, "file_sha256": None})
    assert "changed" in benchmark.trained_run_usable(run, **{**ok, "file_sha256": "b"})
    assert "SYNTHETIC" in benchmark.trained_run_usable(run, **{**ok, "synthetic_profile": False})
    assert "other images" in benchmark.trained_run_usable(run, **{**ok, "current_fingerprint": "g"})
    trained = {"origin": "trained", "validation_accuracy": 0.6}
    shipped = {"origin": "shipped", "validation_accuracy": 0.7}
    assert benchmark.declare([trained, shipped]) is shipped
    assert benchmark.declare([trained, {**shipped, "validation_accuracy": None}]) is trained
    assert benchmark.declare([]) is None
    # a model of the headline's label source (FER+ votes) faces the humans, whatever another source's validation says
    labels = {"origin": "shipped", "label_source": "fer2013", "validation_accuracy": 0.66}
    votes = {"origin": "shipped", "label_source": "ferplus", "validation_accuracy": 0.64}
    assert benchmark.declare([labels, votes]) is votes
    assert benchmark.declare([labels, {**votes, "origin": "trained", "validation_accuracy": 0.6}, votes]) is votes


def test_accuracy_floor_passes_fails_and_skips_in_the_demo():
    assert benchmark.accuracy_floor(("femo", 0.62), 0.55, demo=False)[0]
    passed, details = benchmark.accuracy_floor(("femo", 0.41), 0.55, demo=False)
    assert not passed and details["validation_accuracy"] == "41.0 %" and "below" in details["description"]
    passed, details = benchmark.accuracy_floor(None, 0.55, demo=False)
    assert passed and "without a declared model" in details["description"]
    assert not benchmark.accuracy_floor(("femo", None), 0.55, demo=False)[0]
    passed, details = benchmark.accuracy_floor(("femo", 0.2), 0.55, demo=True)
    assert passed and "not enforced" in details["description"]


def test_synthetic_votes_are_seeded_and_mostly_the_label():
    labels = np.repeat(np.arange(7), 30)
    votes = hb.synthetic_votes(np.arange(len(labels)), labels)
    again = hb.synthetic_votes(np.arange(len(labels)), labels)
    assert votes.equals(again)
    m = votes[list(hb.VOTE_COLUMNS)].to_numpy()
    assert (m.sum(axis=1) == 10).all()
    seven = hb.seven_class_votes(votes)
    assert (seven.argmax(axis=1) == labels).mean() > 0.8


def test_fingerprint_depends_on_ids_hashes_and_labels():
    a = benchmark.data_fingerprint([2, 1], ["h2", "h1"], [0, 3])
    assert a == benchmark.data_fingerprint([1, 2], ["h1", "h2"], [3, 0])  # order does not matter
    assert a != benchmark.data_fingerprint([1, 2], ["h1", "h2"], [3, 1])
    assert a != benchmark.data_fingerprint([1, 2], ["h1", "hX"], [3, 0])


FERPLUS = SHARED / "datasets" / "ferplus"


@pytest.mark.skipif(not (FERPLUS / "fer2013new.csv").exists() or not (FER2013_DIR / "train").is_dir(),
                    reason="real FER-2013 and FER+ files not present")
def test_human_votes_by_content_hash_reproduce_the_shared_table(tmp_path):
    """A copy of a few real FER-2013 files gets exactly the votes of ../shared's table, through the shipped map."""
    import shutil


    expected = pd.read_csv(FERPLUS / "ferplus_votes_by_file.csv")
    picked = pd.concat([g.head(3) for _, g in expected.groupby(["split", "fer2013_label"])])
    root = tmp_path / "fer2013"
    for rel in picked["path"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FER2013_DIR / rel, root / rel)
    selection = ["fer2013_images", "kaggle_face_images", "image_catalog", "data_sources", "emotions", "images",
                 "fer2013new_csv", "human_votes"]
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(tmp_path / "data", instance, selection, profile="real", fer2013_dir=str(root))
    assert result.success
    meta = result.asset_materializations_for_node("fer2013new_csv")[0].metadata
    assert meta["sha256"].value == "9206e20d62f56475939f516847d61753e4860caeac9718b560129541b776fc2c"
    got = pd.DataFrame(_q(tmp_path / "data", "SELECT i.rel_path, v.* EXCLUDE (image_id, fer2013new_rows, synthetic) "
                                             "FROM human_votes v JOIN images i ON i.id = v.image_id ORDER BY 1"),
                       columns=["path", *hb.VOTE_COLUMNS])
    want = picked.sort_values("path")[["path", *hb.VOTE_COLUMNS]].reset_index(drop=True)
    assert len(got) == len(picked) == 2 * 7 * 3
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_votes_file_absent_and_offline_is_skipped_with_the_reason(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        ops = {"fer2013new_csv": {"config": {"path": str(tmp_path / "none.csv"), "url": "http://127.0.0.1:9/x.csv",
                                             "timeout_s": 2}}}
        result = _run(tmp_path / "data", instance, ["fer2013new_csv"], ops, profile="real")
    assert result.success
    reason = result.asset_materializations_for_node("fer2013new_csv")[0].metadata["skipped"].value
    assert "not found at" in reason and "download failed" in reason


@pytest.mark.slow
def test_data_factors_cells_are_partitions_that_train_once_and_aggregate(tmp_path):
    """Two cells of the grid materialized as partitions in the demo (tiny training): each stores its rows in the
    warehouse and its record in the cell folder; a cell materialized again takes its record instead of training;
    the report draws the cells that exist and says how many are missing."""
    from femo_pipeline import factor_grid
    from femo_pipeline.definitions import defs

    data_dir = tmp_path / "data"
    keys = ["fer2013-s050-n00-kept-seed0", "fer2013-s100-n40-kept-seed0"]
    with dg.DagsterInstance.ephemeral() as instance:
        inputs = dg.AssetSelection.assets("training_images", "evaluation_images").upstream()
        assert _run(data_dir, instance, inputs, SMALL).success
        job = defs.resolve_job_def("data_factor_grid")
        for key in keys:
            result = job.execute_in_process(instance=instance, partition_key=key,
                                            resources=resources_for(data_dir))
            assert result.success
            meta = result.asset_materializations_for_node("data_factors")[0].metadata
            assert meta["how"].value == "trained in this run" and "(CPU)" in meta["device"].value
            said = [e.user_message for e in instance.all_logs(result.run_id)]
            assert any(m.startswith(f"cell {key}: epoch 1/") for m in said)  # progress as it trains
            record = json.loads((data_dir / "factors" / f"{key}.json").read_text())
            assert len(record["validation_accuracy_by_epoch"]) == record["epochs_run"] >= 1
        again = job.execute_in_process(instance=instance, partition_key=keys[0], resources=resources_for(data_dir))
        assert "earlier measurement" in again.asset_materializations_for_node("data_factors")[0].metadata["how"].value
        rows = _q(data_dir, "SELECT cell, reference, metric, value, noise, synthetic FROM data_factors ORDER BY ALL")
        assert {r[0] for r in rows} == set(keys) and len(rows) == 2 * 2 * 2
        assert all(0 <= r[3] <= 1 and r[5] for r in rows) and {r[4] for r in rows} == {0, 40}
        assert sorted(p.name for p in (data_dir / "factors").glob("*.json")) == sorted(f"{k}.json" for k in keys)
        # a record naming another cell is passed over with the reason: it never replaces that cell's rows
        before = _q(data_dir, f"SELECT * EXCLUDE (created) FROM data_factors WHERE cell = '{keys[0]}' ORDER BY ALL")
        forged = {**json.loads((data_dir / "factors" / f"{keys[0]}.json").read_text()), "cell": keys[0]}
        (data_dir / "factors" / f"{keys[1]}.json").write_text(json.dumps(forged))
        retrained = job.execute_in_process(instance=instance, partition_key=keys[1], resources=resources_for(data_dir))
        assert retrained.asset_materializations_for_node("data_factors")[0].metadata["how"].value == "trained in this run"
        said = [e.user_message for e in instance.all_logs(retrained.run_id)]
        assert any(f"names cell '{keys[0]}', not {keys[1]}" in m for m in said)
        assert _q(data_dir, f"SELECT * EXCLUDE (created) FROM data_factors WHERE cell = '{keys[0]}' ORDER BY ALL") == before
        report = _run(data_dir, instance, ["predictions", "benchmark_report", "model_evaluation",
                                           "contender_predictions"], SMALL)
        assert report.success
        saved = json.loads((data_dir / "reports" / "benchmark.json").read_text())
        assert saved["data_factors"]["cells"] == 2
        assert len(saved["data_factors"]["missing"]) == len(factor_grid.GRID) - 2
        assert "2 cells of the grid measured" in (data_dir / "reports" / "benchmark.md").read_text()
