"""Dagster resources: where data lives and which profile runs."""


import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from femo_pipeline.facs import FACS_URL
from femo_pipeline.webclient import PoliteClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"

# Environment variables of the real profile, per source (see .env.example).
SOURCE_ENV = {"fer2013": "FEMO_FER2013_DIR", "kaggle": "FEMO_KAGGLE_DIR", "survey": "FEMO_SURVEY_CSV"}


@dataclass(frozen=True)
class SourcePlan:
    """What an ingest asset reads: a path, whether it is synthetic, or why it is skipped."""

    path: Path | None
    synthetic: bool
    skip_reason: str | None = None


class FemoStorage(dg.ConfigurableResource):
    """Folders femo reads raw data from and writes outputs to, and the data profile (demo or real)."""

    data_dir: str = Field(default=str(DEFAULT_DATA_DIR), description="Root of every output (gitignored).")
    profile: str = Field(
        default="auto",
        description="'demo' (generated synthetic data), 'real' (paths below), or 'auto': real when any path is set.",
    )
    fer2013_dir: str = Field(default="", description="FER-2013 folder: <root>/<train|test>/<emotion>/*.jpg")
    kaggle_dir: str = Field(default="", description="Kaggle random-images folder: <root>/<emotion>/*.png")
    survey_csv: str = Field(default="", description="'Emotions in everyday life' survey CSV")

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    def resolved_profile(self) -> str:
        if self.profile not in ("auto", "demo", "real"):
            raise dg.Failure(f"FEMO_PROFILE must be auto, demo or real, not {self.profile!r}")
        if self.profile != "auto":
            return self.profile
        return "real" if any((self.fer2013_dir, self.kaggle_dir, self.survey_csv)) else "demo"

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
        """Where source `key` ('fer2013', 'kaggle', 'survey') comes from under the active profile."""
        if self.is_demo:
            demo = {"fer2013": "fer2013", "kaggle": "kaggle", "survey": "survey.csv"}[key]
            return SourcePlan(self.demo_dir / demo, synthetic=True)
        configured = {"fer2013": self.fer2013_dir, "kaggle": self.kaggle_dir, "survey": self.survey_csv}[key]
        if not configured:
            return SourcePlan(None, synthetic=False, skip_reason=f"real profile and {SOURCE_ENV[key]} is not set")
        return SourcePlan(Path(configured).expanduser(), synthetic=False)


def storage_from_env() -> FemoStorage:
    """FemoStorage configured from FEMO_* environment variables (read when the definitions load)."""
    return FemoStorage(
        data_dir=os.environ.get("FEMO_DATA_DIR") or str(DEFAULT_DATA_DIR),
        profile=os.environ.get("FEMO_PROFILE") or "auto",
        fer2013_dir=os.environ.get("FEMO_FER2013_DIR", ""),
        kaggle_dir=os.environ.get("FEMO_KAGGLE_DIR", ""),
        survey_csv=os.environ.get("FEMO_SURVEY_CSV", ""),
    )


class WebSearchResource(dg.ConfigurableResource):
    """An image-search API client: base URL, the environment variable holding its key, and politeness settings.

    The key is read from the environment at run time by name (api_key_env), so it never enters run config,
    the UI or logs, and an unset key lets the asset skip with a reason (dg.EnvVar would fail the run instead).
    """

    base_url: str = Field(description="Search endpoint (the real API by default; tests point it at a local server).")
    api_key_env: str = Field(description="Name of the environment variable that holds the API key.")
    timeout: float = Field(default=20.0, description="Seconds before a request times out.")
    max_retries: int = Field(default=4, description="Retries on time-outs, connection errors, 429 and 5xx.")
    backoff: float = Field(default=1.0, description="First retry wait in seconds; doubles each retry.")
    max_wait: float = Field(default=60.0, description="Longest single wait, Retry-After included.")
    min_interval: float = Field(default=1.0, description="Minimum seconds between two requests (rate limit).")

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
    timeout: float = Field(default=30.0, description="Seconds before the request times out.")
    max_retries: int = Field(default=3, description="Retries on time-outs, 429 and 5xx.")
    backoff: float = Field(default=2.0, description="First retry wait in seconds.")

    def page_url(self) -> str:
        """The configured URL, else FEMO_FACS_URL (read now, at run time), else the live article."""
        return self.url or os.environ.get("FEMO_FACS_URL") or FACS_URL

    def client(self) -> PoliteClient:
        return PoliteClient(timeout=self.timeout, max_retries=self.max_retries, backoff=self.backoff, min_interval=0)


class QualityThresholds(dg.ConfigurableResource):
    """Limits of the soft (WARN) asset checks."""

    max_imbalance_ratio: float = Field(default=10.0, description="Largest over smallest class, per source.")
    max_quarantine_share: float = Field(default=0.05, description="Share of files that may be quarantined.")
