"""The source registry (femo_pipeline/sources.py) is the one place a source is described: a made-up folder source
added there, and nowhere else, is ingested, catalogued, loaded, viewed, watched and sampled."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from femo_pipeline import sources
from femo_pipeline.resources import PROJECT_ROOT, FemoStorage

# Runs in a fresh interpreter: the entry is added to the registry before anything else of femo is imported, as an
# edit of sources.py would be, and this test process keeps the four real sources.
SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path

    import cv2
    import numpy as np

    from femo_pipeline import sources
    sources.SOURCES["lab"] = sources.Source(
        6, "lab", "Lab photos", "https://example.org/lab", "A made-up folder source.", asset="lab_images")

    import dagster as dg
    import duckdb

    from femo_pipeline import demo_data
    from femo_pipeline.defs.automation.automation import folder_changes, folder_ingest_job
    from femo_pipeline.defs.faces.faces import FaceCropConfig, SampleConfig
    from femo_pipeline.definitions import all_assets, all_checks, core_resources, defs
    from femo_pipeline.resources import FemoStorage

    root = Path(sys.argv[1])
    folder = root / "lab"
    for i, emotion in enumerate(["happiness", "sadness", "anger"] * 2):
        (folder / emotion).mkdir(parents=True, exist_ok=True)
        ok, png = cv2.imencode(".png", demo_data.draw_face(demo_data.FER_FOLDERS[i % 7], 64, np.random.default_rng(i)))
        (folder / emotion / f"{i}.png").write_bytes(png.tobytes())
    os.environ["FEMO_LAB_DIR"] = str(folder)
    storage = FemoStorage(data_dir=str(root / "data"), profile="real")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([*all_assets, *all_checks], instance=instance,
                                resources={**defs.resources, **core_resources(storage)},
                                selection=["lab_images", "image_catalog", "data_sources", "emotions", "images"])
        (folder / "sadness" / "new.png").write_bytes((folder / "sadness" / "1.png").read_bytes())
        changes = folder_changes(storage, instance)
    with duckdb.connect(str(root / "data" / "warehouse" / "femo.duckdb"), read_only=True) as con:
        out = {
            "success": result.success,
            "data_sources": con.execute("SELECT id, source_key, source FROM data_sources WHERE id = 6").fetchall(),
            "view_rows": con.execute("SELECT count(*) FROM images_lab").fetchone()[0],
            "view_comment": con.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'images_lab'").fetchone()[0],
            "source_ids": con.execute("SELECT DISTINCT source_id FROM images").fetchall(),
        }
    job = defs.get_job_def(folder_ingest_job.name)
    out.update(changes=changes, in_folder_job="lab_images" in {k.to_user_string() for k in job.asset_layer.executable_asset_keys},
               crop=FaceCropConfig().sources, sample=SampleConfig().sources,
               description=next(a.descriptions_by_key[dg.AssetKey("lab_images")] for a in all_assets
                                if dg.AssetKey("lab_images") in a.keys))
    print(json.dumps(out))
''')


@pytest.mark.slow  # end to end in its own interpreter
def test_a_source_added_to_the_registry_alone_flows_through_the_pipeline(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=PROJECT_ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                 "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["success"]
    assert out["data_sources"] == [[6, "lab", "Lab photos"]]
    assert out["view_rows"] == 6 and out["source_ids"] == [[6]]
    assert "restricted to source 6, Lab photos" in out["view_comment"]
    assert out["changes"]["lab"]["added"] == 1 and out["changes"]["lab"]["removed"] == 0  # the sensor watches it
    assert out["in_folder_job"] and "lab" in out["crop"] and "lab" in out["sample"]
    assert out["description"] == "Lab photos image files (<emotion>/) read, inspected and staged with their bytes."


def test_the_registry_keeps_the_studys_ids_and_derives_names_from_the_key(monkeypatch):
    assert {k: s.id for k, s in sources.SOURCES.items()} == {"pixabay": 1, "ddg": 2, "kaggle": 3, "fer2013": 4,
                                                             "extra": 5}
    assert [s.key for s in sources.folder_sources()] == ["kaggle", "fer2013", "extra"]
    assert sources.SOURCES["fer2013"].view == "images_fer2013" and sources.SOURCES["ddg"].view == "images_ddg"
    assert sources.SOURCES["kaggle"].env == "FEMO_KAGGLE_DIR"
    storage = FemoStorage(data_dir="/nonexistent", profile="demo")
    plan = storage.source_plan("fer2013")
    assert plan.synthetic and plan.path.name == "fer2013"
    # a folder source the demo profile does not generate is skipped there with the reason, never read
    monkeypatch.setitem(sources.SOURCES, "lab", sources.Source(6, "lab", "Lab", "", "", asset="lab_images"))
    assert storage.source_plan("lab").path is None and \
        storage.source_plan("lab").skip_reason == "the demo profile has no lab folder"
    real = FemoStorage(data_dir="/nonexistent", profile="real", kaggle_dir="/somewhere")
    assert real.source_plan("kaggle").path.as_posix() == "/somewhere"
    assert real.source_plan("fer2013").skip_reason == "real profile and FEMO_FER2013_DIR is not set"
