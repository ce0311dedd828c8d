"""Dagster resources: where data lives and which profile runs."""


import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import filelock
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline.facs import FACS_URL
from femo_pipeline.sources import SOURCES, folder_sources
from femo_pipeline.webclient import PoliteClient, url_secrets

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"

SURVEY = "survey"  # the survey CSV's key in source_plan, beside the folder sources' keys
SURVEY_ENV = "FEMO_SURVEY_CSV"
DEMO_SURVEY = "survey.csv"


def setting_env(key: str) -> str:
    """The environment variable of a folder source's path ('fer2013': FEMO_FER2013_DIR) or of the survey CSV."""
    return SURVEY_ENV if key == SURVEY else SOURCES[key].env


# The only settings read when the definitions load (the schedule's hour, the sensor's interval):
# name -> (default, lowest, highest or None)
LOADING_SETTINGS = {"FEMO_REFRESH_HOUR": (3, 0, 23), "FEMO_SENSOR_INTERVAL": (30, 1, None)}


def loading_setting(name: str) -> int:
    """The whole number a load-time setting holds (its default when unset); ValueError naming the variable and
    what it must be otherwise, so a typo stops the code location with a sentence, not int()'s traceback."""
    from femo_pipeline.numerals import whole_number

    default, low, high = LOADING_SETTINGS[name]
    value = os.environ.get(name)
    if value is None:
        return default
    number = whole_number(value.strip())
    if number is None or number < low or (high is not None and number > high):
        raise ValueError(f"{name} is {value[:40]!r}: it must be a whole number "
                         + (f"from {low} to {high}" if high is not None else f"of at least {low}"))
    return number


@dataclass(frozen=True)
class SourcePlan:
    """What an ingest asset reads: a path, whether it is synthetic, or why it is skipped."""

    path: Path | None
    synthetic: bool
    skip_reason: str | None = None


class FemoStorage(dg.ConfigurableResource):
    """Folders femo reads raw data from and writes outputs to, and the data profile (demo or real).

    A field left empty is read from its FEMO_* environment variable when it is used (at run time, never when the
    definitions load), so one code location serves every profile and tests set what they need."""

    data_dir: str = Field(default="", description="Root of every output (gitignored); empty: FEMO_DATA_DIR, "
                                                  "else data/ in the project.")
    profile: str = Field(
        default="",
        description="'demo' (generated synthetic data), 'real' (paths below), or 'auto': real when any path is set; "
                    "empty: FEMO_PROFILE, else auto.",
    )
    fer2013_dir: str = Field(default="", description="FER-2013 folder: <root>/<train|test>/<emotion>/*.jpg; "
                                                     "empty: FEMO_FER2013_DIR")
    kaggle_dir: str = Field(default="", description="Kaggle random-images folder: <root>/<emotion>/*.png; "
                                                    "empty: FEMO_KAGGLE_DIR")
    survey_csv: str = Field(default="", description="'Emotions in everyday life' survey CSV; empty: FEMO_SURVEY_CSV")

    def _setting(self, field: str, env: str) -> str:
        return getattr(self, field) or os.environ.get(env, "")

    def source_setting(self, key: str) -> str:
        """The configured path of a folder source ('fer2013', 'kaggle', ...) or of the survey ('survey'): its field
        (<key>_dir, survey_csv) where this resource has one, else its environment variable."""
        field = "survey_csv" if key == SURVEY else f"{key}_dir"
        return getattr(self, field, "") or os.environ.get(setting_env(key), "")

    @property
    def root(self) -> Path:
        return Path(self._setting("data_dir", "FEMO_DATA_DIR") or DEFAULT_DATA_DIR)

    def resolved_profile(self) -> str:
        profile = self._setting("profile", "FEMO_PROFILE") or "auto"
        if profile not in ("auto", "demo", "real"):
            raise dg.Failure(f"FEMO_PROFILE must be auto, demo or real, not {profile!r}")
        if profile != "auto":
            return profile
        keys = [s.key for s in folder_sources()] + [SURVEY]
        return "real" if any(self.source_setting(k) for k in keys) else "demo"

    @property
    def is_demo(self) -> bool:
        return self.resolved_profile() == "demo"

    def path(self, *parts: str) -> Path:
        """A path under data_dir; its parent folder is created."""
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def demo_dir(self) -> Path:
        return self.root / "demo"

    @property
    def warehouse_path(self) -> Path:
        return self.path("warehouse", "femo.duckdb")

    @property
    def serving_path(self) -> Path:
        return self.path("serving", "femo.duckdb")

    def source_plan(self, key: str) -> SourcePlan:
        """Where a folder source ('fer2013', 'kaggle', ...) or the survey ('survey') comes from under the active
        profile."""
        if self.is_demo:
            if key != SURVEY and not SOURCES[key].demo:
                return SourcePlan(None, synthetic=False, skip_reason=f"the demo profile has no {key} folder")
            return SourcePlan(self.demo_dir / (DEMO_SURVEY if key == SURVEY else key), synthetic=True)
        configured = self.source_setting(key)
        if not configured:
            return SourcePlan(None, synthetic=False, skip_reason=f"real profile and {setting_env(key)} is not set")
        return SourcePlan(Path(configured).expanduser(), synthetic=False)


def storage_from_env() -> FemoStorage:
    """FemoStorage that reads every setting from the FEMO_* environment variables when used."""
    return FemoStorage()


@contextlib.contextmanager
def warehouse_lock(database: str, timeout: float = 3600.0):
    """Hold an exclusive lock on `.<file>.lock` beside the warehouse (filelock, flock on Unix) while this process
    uses it.

    DuckDB allows one read-write process per file and fails the second at once ("Could not set lock"). Dagster's
    `duckdb` pool keeps steps of different runs apart, but two runs starting the same instant can both get a slot
    on SQLite instance storage (seen in CI: two `data_sources` steps together); this lock makes the second one wait
    instead. The kernel releases it if the holder dies. Re-entrant within a process (one lock object per file,
    shared by its threads: a step may open the file twice); nothing for `:memory:`/`md:`. Waits at most `timeout`
    seconds, then fails with the lock file named."""
    if not database or database == ":memory:" or database.startswith("md:"):
        yield
        return
    path = Path(database).resolve()
    lock_path = path.with_name(f".{path.name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # the lock file stays (a removed one could be re-created and locked by a third process while a second waits on
    # the old one), and only a kernel lock will do: a soft lock would outlive a killed holder
    lock = filelock.FileLock(lock_path, thread_local=False, is_singleton=True, preserve_lock_file=True,
                             fallback_to_soft=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        dg.get_dagster_logger().info(f"waiting for the warehouse: another process holds {lock_path.name}")
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise TimeoutError(f"the warehouse is in use by another process (lock {lock_path} held for over "
                               f"{timeout:.0f} s); is another femo run writing it?") from None
    try:
        yield
    finally:
        lock.release()


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse: `database` if set, else <data dir>/warehouse/femo.duckdb of the same FemoStorage the
    run uses (its data folder resolved when a connection opens, so from FEMO_DATA_DIR at run time by default)."""

    database: str = Field(default="", description="DuckDB file; empty: warehouse/femo.duckdb under the storage "
                                                  "resource's data folder, resolved at run time.")
    storage: FemoStorage = Field(description="The data folder it lives in (the run's storage resource).")
    lock_timeout: float = Field(default=3600.0, gt=0, description="Seconds to wait for another process to close the "
                                                            "warehouse before failing.")
    memory_limit: str = Field(default="512MB", description="DuckDB's memory limit for the pipeline's connections "
                              "(it spills to disk past it; DuckDB's own default, 80 % of RAM, let loading a million "
                              "images grow the run by gigabytes). connection_config's memory_limit wins.")

    def resolved_path(self) -> str:
        return self.database or str(self.storage.warehouse_path)

    @contextlib.contextmanager
    def get_connection(self):
        database = self.resolved_path()
        config = {"memory_limit": self.memory_limit, **(self.connection_config or {})}
        resolved = DuckDBResource(database=database, connection_config=config)
        with warehouse_lock(database, self.lock_timeout), resolved.get_connection() as con:
            try:
                yield con
            finally:  # dagster-duckdb closes only on success: a failed step's traceback kept the file open
                con.close()


class WebSearchResource(dg.ConfigurableResource):
    """An image-search API client: base URL, the environment variable holding its key, and politeness settings.

    The key is read from the environment at run time by name (api_key_env), so it never enters run config,
    the UI or logs, and an unset key lets the asset skip with a reason (dg.EnvVar would fail the run instead).
    """

    base_url: str = Field(description="Search endpoint (the real API by default; tests point it at a local server).")
    api_key_env: str = Field(description="Name of the environment variable that holds the API key.")
    timeout: float = Field(default=20.0, gt=0, description="Seconds before a request times out.")
    max_retries: int = Field(default=4, ge=0, description="Retries on time-outs, connection errors, 429 and 5xx.")
    backoff: float = Field(default=1.0, ge=0, description="First retry wait in seconds; doubles each retry.")
    max_wait: float = Field(default=60.0, ge=0, description="Longest single wait, Retry-After included.")
    min_interval: float = Field(default=1.0, ge=0, description="Minimum seconds between two requests (rate limit).")

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "")

    def client(self) -> PoliteClient:
        return PoliteClient(timeout=self.timeout, max_retries=self.max_retries, backoff=self.backoff,
                            max_wait=self.max_wait, min_interval=self.min_interval, secrets=(self.api_key(),))


class FacsPageResource(dg.ConfigurableResource):
    """Where the FACS article is fetched from (the live iMotions page by default) and how politely."""

    url: str = Field(default="", description="Page URL; empty: $FEMO_FACS_URL at run time, else the live article. "
                     "'fixture' uses the copy shipped with femo (offline).")
    force_fetch: bool = Field(default=False, description="Fetch the page even under the demo profile.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds before the request times out.")
    max_retries: int = Field(default=3, ge=0, description="Retries on time-outs, 429 and 5xx.")
    backoff: float = Field(default=2.0, ge=0, description="First retry wait in seconds.")

    def page_url(self) -> str:
        """The configured URL, else FEMO_FACS_URL (read now, at run time), else the live article."""
        return self.url or os.environ.get("FEMO_FACS_URL") or FACS_URL

    def client(self) -> PoliteClient:
        return PoliteClient(timeout=self.timeout, max_retries=self.max_retries, backoff=self.backoff, min_interval=0,
                            secrets=url_secrets(self.page_url()))


class QualityThresholds(dg.ConfigurableResource):
    """Limits of the soft (WARN) asset checks."""

    max_imbalance_ratio: float = Field(default=10.0, ge=1, description="Largest over smallest class, per source.")
    max_quarantine_share: float = Field(default=0.05, ge=0, le=1, description="Share of files that may be quarantined.")
