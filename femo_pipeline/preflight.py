"""Checks of a run's inputs before any work: the profile, the data paths, the FER+ votes, the FACS source and the
settings read when the definitions load. Each problem is one message naming the setting and what to do; notes
say what the run will do without something. Pure module (no Dagster run; reads the environment and the disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from femo_pipeline.resources import LOADING_SETTINGS, SURVEY, FemoStorage, loading_setting, setting_env
from femo_pipeline.sources import SOURCES, folder_sources

_PROFILES = ("auto", "demo", "real")


@dataclass
class Inputs:
    profile: str = "demo"
    problems: list[str] = field(default_factory=list)  # the run cannot start
    notes: list[str] = field(default_factory=list)  # what it will do without something


def check(storage: FemoStorage, train: bool = False) -> Inputs:
    """Check the settings a run of `storage`'s profile will read (train: also what training needs)."""
    found = Inputs()
    found.problems += _loading_settings()
    setting = storage.profile or os.environ.get("FEMO_PROFILE") or "auto"
    if setting not in _PROFILES:
        found.problems.append(f"FEMO_PROFILE is {setting!r}: use auto, demo or real (or leave it unset)")
        return found
    found.profile = storage.resolved_profile()
    found.problems += _data_dir(storage.root)
    if found.profile == "demo":
        found.notes.append("demo profile: generated synthetic faces, votes and survey (set FEMO_FER2013_DIR "
                           "for the real data)")
        return found
    configured = {key: storage.source_setting(key) for key in [s.key for s in folder_sources()] + [SURVEY]}
    if not any(configured.values()):
        found.problems.append("FEMO_PROFILE=real but no data is configured: set FEMO_FER2013_DIR (e.g. "
                              "../shared/datasets/fer2013), FEMO_KAGGLE_DIR or FEMO_SURVEY_CSV in .env, or run "
                              "`femo demo`")
        return found
    for key, value in configured.items():
        if value:
            found.problems += _source(key, Path(value).expanduser())
        else:
            found.notes.append(f"{setting_env(key)} is not set: that source is skipped")
    if configured["fer2013"]:
        found.problems += _votes(found.notes)
    elif train:
        found.problems.append("training needs FER-2013: set FEMO_FER2013_DIR (<root>/train/<emotion>/*.jpg)")
    found.problems += _facs(found.notes)
    return found


def _loading_settings() -> list[str]:
    """Settings read when the definitions load: a bad value would stop every command with a traceback."""
    problems = []
    for name in LOADING_SETTINGS:
        try:
            loading_setting(name)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def _data_dir(root: Path) -> list[str]:
    existing = next((p for p in (root, *root.resolve().parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [f"the data folder {root} cannot be created or written (FEMO_DATA_DIR): pick a writable folder"]
    return []


def _source(key: str, path: Path) -> list[str]:
    name = setting_env(key)
    if key == SURVEY:
        return [] if path.is_file() else [f"{name} is {path}, which is not a file: point it at the survey CSV"]
    if not path.is_dir():
        return [f"{name} is {path}, which is not a folder" + (" (is the path relative to the wrong folder? paths "
                                                              "are read from the current folder)"
                                                              if not path.is_absolute() else "")]
    if SOURCES[key].splits:
        missing = [s for s in ("train", "test") if not (path / s).is_dir()]
        if missing:
            return [f"{name} is {path}, which has no {' or '.join(missing)}/ folder: {SOURCES[key].name} is read "
                    "as <root>/train/<emotion>/* and <root>/test/<emotion>/*"]
    return []


def _votes(notes: list[str]) -> list[str]:
    """fer2013new.csv (the FER+ votes that are the human side of the answer) and the votes-by-file CSV."""
    from femo_pipeline.defs.model.humans import DEFAULT_FER2013NEW, DEFAULT_VOTES

    problems = []
    explicit = os.environ.get("FEMO_FER2013NEW")
    path = Path(explicit or DEFAULT_FER2013NEW)
    if explicit and not path.is_file():
        problems.append(f"FEMO_FER2013NEW is {path}, which is not a file: point it at FER+'s fer2013new.csv, or "
                        "unset it to download the file")
    elif not path.is_file():
        notes.append(f"FER+ votes: no fer2013new.csv at {path}; it is downloaded from the FERPlus repository (offline, "
                     "the answer has no human side: set FEMO_FER2013NEW)")
    explicit = os.environ.get("FEMO_FERPLUS_VOTES")
    if explicit and not Path(explicit).is_file():
        problems.append(f"FEMO_FERPLUS_VOTES is {explicit}, which is not a file: point it at the FER+ votes by "
                        "file (ferplus_votes_by_file.csv) or unset it")
    elif not explicit and not DEFAULT_VOTES.is_file():
        notes.append(f"human_baseline is skipped: no FER+ votes by file at {DEFAULT_VOTES} (FEMO_FERPLUS_VOTES)")
    return problems


def _facs(notes: list[str]) -> list[str]:
    url = os.environ.get("FEMO_FACS_URL", "")
    if url and url != "fixture" and not url.startswith(("http://", "https://")):
        return [f"FEMO_FACS_URL is {url!r}: use an http(s) address, or 'fixture' for femo's bundled copy"]
    if url != "fixture":
        notes.append("FACS page: fetched live; when it cannot be fetched the last snapshot (else femo's bundled "
                     "copy) stands in, marked stale")
    return []
