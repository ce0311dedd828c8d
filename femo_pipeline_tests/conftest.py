"""Shared fixtures: real data from ../shared when present, generated demo data, and asset materialization."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from femo_pipeline import demo_data
from femo_pipeline.definitions import all_assets, all_checks, core_resources, web_resources
from femo_pipeline.resources import PROJECT_ROOT, FacsPageResource, FemoStorage, QualityThresholds
from femo_pipeline.sources import folder_sources

SHARED = PROJECT_ROOT.parent / "shared"
FER2013_DIR = SHARED / "datasets" / "fer2013"

requires_fer2013 = pytest.mark.skipif(
    not (FER2013_DIR / "train").is_dir(), reason=f"real FER-2013 not present at {FER2013_DIR}"
)


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory) -> Path:
    """The default demo inputs, generated once per test session (read-only for tests)."""
    root = tmp_path_factory.mktemp("demo") / "demo"
    demo_data.generate(root)
    return root


_FACS_SERVER: dict[str, str] = {}
PARTITIONED = {"pixabay_hits", "duckduckgo_hits"}
TODAY = dt.datetime.now(dt.timezone.utc).date().isoformat()


GRID_ASSETS = ("data_factors", "data_factors_table")
# the folder sources' ingest assets, from the registry: the catalog refuses to leave out one whose folder has files
# (the demo profile generates a folder for each of them)
FOLDER_ASSETS = tuple(s.asset for s in folder_sources())


def _selects_partitioned(selection) -> bool:
    """Whether a materialize selection holds a day-partitioned asset (then it needs a partition key)."""
    if selection is None:
        return True
    if isinstance(selection, dg.AssetSelection):
        return any(k.path[-1] in PARTITIONED for k in selection.resolve(all_assets))
    return any((s.path[-1] if isinstance(s, dg.AssetKey) else str(s)) in PARTITIONED for s in selection)


@pytest.fixture(scope="session", autouse=True)
def facs_server():
    """A local server with the FACS fixture page, the default page URL for tests under the real profile."""
    from femo_pipeline import facs
    from femo_pipeline_tests.fake_web import Answer, FakeWeb

    with FakeWeb() as web:
        web.routes["/facs/"] = [Answer(200, facs.fixture_html().encode(), {"Content-Type": "text/html"})]
        _FACS_SERVER["url"] = web.url + "/facs/"
        yield web


def resources_for(data_dir: Path, web: dict | None = None, facs_url: str | None = None, **storage_fields) -> dict:
    storage = FemoStorage(data_dir=str(data_dir), **storage_fields)
    return {**core_resources(storage),
            "facs_source": FacsPageResource(url=facs_url or _FACS_SERVER["url"], max_retries=0, timeout=5),
            "quality_thresholds": QualityThresholds(),
            **(web or web_resources(pixabay_url="http://127.0.0.1:9/unused", ddg_url="http://127.0.0.1:9/unused"))}


_INSTANCES: dict[Path, dg.DagsterInstance] = {}


def instance_for(data_dir: Path) -> dg.DagsterInstance:
    """One Dagster instance per data folder for the whole test session (as `femo` keeps one per data folder):
    assets load their upstream's latest materialization from it, so successive materialize calls on the same
    folder see each other's outputs, and a folder of another test never does."""
    key = Path(data_dir).resolve()
    if key not in _INSTANCES:
        _INSTANCES[key] = dg.DagsterInstance.ephemeral()  # in memory: the runs are in process
    return _INSTANCES[key]


def staged_file(data_dir: Path, asset: str, name: str = "table") -> Path:
    """The staged file of `asset`'s latest materialization in the data folder's instance (what a downstream
    asset would load); `name` picks one of a dict output's tables."""
    from femo_pipeline.io_managers import FILES, recorded_metadata

    meta = recorded_metadata(instance_for(data_dir), dg.AssetKey(asset))
    assert meta is not None, f"{asset} was never materialized with the staged IO manager in {data_dir}"
    return Path(meta[FILES].value[name])


@pytest.fixture(scope="session", autouse=True)
def _dispose_instances():
    yield
    for instance in _INSTANCES.values():
        instance.dispose()


def materialize(data_dir: Path, selection=None, run_config=None, raise_on_error: bool = True, web: dict | None = None,
                facs_url: str | None = None, instance: dg.DagsterInstance | None = None, **storage_fields):
    """Materialize assets (all by default) in process against a data folder of the test's own, in the Dagster
    instance of that folder (instance_for) unless one is given.

    Web clients point at a closed local port unless `web` gives resources; with no API key set they skip anyway.
    """
    if selection is None:  # every asset but the data-factor grid, which is partitioned by cell (its own job)
        selection = [k for a in all_assets for k in a.keys if k.path[-1] not in GRID_ASSETS]
    return dg.materialize(
        [*all_assets, *all_checks],
        instance=instance or instance_for(data_dir),
        selection=selection,
        partition_key=TODAY if _selects_partitioned(selection) else None,
        resources=resources_for(data_dir, web, facs_url, **storage_fields),
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


DEMO_RUN_CONFIG = {"ops": {"demo_source_files": {"config": {"fer_train_per_class": 8, "fer_test_per_class": 4,
                                                              "kaggle_per_class": 5, "survey_rows": 300,
                                                              "extra_per_class": 4}},
                           # a small, short model keeps whole-graph tests quick; test_model.py tests training
                           "emotion_model": {"config": {"epochs": 2, "width": 8}},
                           "model_evaluation": {"config": {"n_boot": 100}},
                           "contender_predictions": {"config": {"n_boot": 100}},
                           "benchmark_report": {"config": {"n_boot": 300}}}}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """(data folder, result) of one whole-graph demo run (DEMO_RUN_CONFIG), shared by the tests that look at it:
    a whole run takes one to two minutes on 2 cores, and four modules each made their own. A test that
    materializes an asset of this folder with other settings puts it back (`put_back`: default settings, the
    run's own) before it ends, so every test sees this run's state; tests that change more work on a copy or on a run of
    their own."""
    data_dir = tmp_path_factory.mktemp("demo_run")
    return data_dir, materialize(data_dir, run_config=DEMO_RUN_CONFIG)


# The modules whose tests read the shared demo run. Under pytest-xdist (addopts -n 2) they all go to one worker,
# which makes the run once; every other test goes to whichever worker is free.
DEMO_RUN_MODULES = ("test_api.py", "test_assets.py", "test_faces_sampling.py", "test_other_faces.py",
                    "test_quality.py")


def pytest_xdist_make_scheduler(config, log):
    """xdist's load scheduling, with the modules of DEMO_RUN_MODULES as one unit of work (its loadgroup marks do
    not reach the scheduler under pytest 9.2's node ids)."""
    from xdist.scheduler import LoadScopeScheduling

    class DemoRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "demo_run" if nodeid.split("::", 1)[0].rsplit("/", 1)[-1] in DEMO_RUN_MODULES else nodeid

    return DemoRunScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """A test that reads the shared demo run outside DEMO_RUN_MODULES would make the run again on the other
    worker: refused, naming the fix."""
    stray = [item.nodeid for item in items if "demo_run" in getattr(item, "fixturenames", ())
             and item.path.name not in DEMO_RUN_MODULES]
    if stray:
        raise pytest.UsageError(f"tests reading demo_run outside conftest.DEMO_RUN_MODULES: {stray}")


@contextlib.contextmanager
def put_back(data_dir: Path, asset: str) -> Iterator[None]:
    """Materialize `asset` of a shared run's folder again with its default settings when the block ends (a failed
    assertion inside included), and check that its table holds the rows it held before the block."""
    def rows() -> list[tuple]:
        with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
            return con.execute(f"SELECT * FROM {asset} ORDER BY ALL").fetchall()

    before = rows()
    try:
        yield
    finally:
        assert materialize(data_dir, selection=[asset]).success
        assert rows() == before


@pytest.fixture(autouse=True)
def no_api_keys(monkeypatch):
    """Tests never see a developer's real keys or femo settings (FemoStorage reads FEMO_* at run time, so a
    developer's FEMO_DATA_DIR would otherwise reach a test); a test that needs one sets it."""
    for name in ("PIXABAY_API_KEY", "RAPIDAPI_KEY", "FEMO_DATA_DIR", "FEMO_PROFILE", "FEMO_SURVEY_CSV",
                 *(s.env for s in folder_sources()), *(s.pattern_env for s in folder_sources())):
        monkeypatch.delenv(name, raising=False)
