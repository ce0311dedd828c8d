"""The image sources: the one place a source is described. Pure module (no Dagster).

Everything else derives from SOURCES: the `data_sources` rows, the per-source warehouse views (`images_<key>`),
the folder ingest assets and their settings (`FEMO_<KEY>_DIR`, `FemoStorage.<key>_dir`), the catalog's inputs,
the sensor's watched folders, and the default sources of face cropping and of the balanced sample. Adding a
folder source is one more entry below (README, *Adding a source*); a web source also needs its search client
and assets in defs/web/.
"""

from __future__ import annotations

from dataclasses import dataclass

# File names of the extra labelled sets that carry who is shown: CK+-style S005_001_00000011.png (subject S005,
# sequence 001) and JAFFE-style KA.AN1.39.tiff (subject KA). Anything else matches nothing (no subject).
FACE_SET_NAMES = (r"^(?:(?P<subject>S\d{3}(?=_\d{3}_\d+\.)|[A-Z]{2}(?=\.[A-Z]{2}\d*\.\d+\.))"
                  r"(?:_(?P<sequence>\d{3}))?)")


@dataclass(frozen=True)
class Source:
    id: int  # data_sources.id (the study's ids for the first four)
    key: str  # short key: image ids, config lists, folders under data/
    name: str
    url: str
    comments: str
    asset: str  # the asset that stages its files (folders.SCHEMA), read by image_catalog
    kind: str = "folder"  # "folder": a local folder of labelled images; "web": downloaded by the web assets
    splits: bool = False  # folder layout <root>/<train|test>/<emotion>/ (else <root>/<emotion>/)
    sets: bool = False  # folder layout <root>/<set>/<emotion>/: each folder of the root a labelled set (its name in
    #                     the split column, scored as a dataset of its own)
    held_out: bool = False  # scored only: never trained, tuned or selected on, nor in the balanced sample
    name_pattern: str = ""  # regex with a named group subject (and optionally sequence), searched in file names
    crop_faces: bool = True  # face_crops looks for a face in its images (FER-2013's are cropped already)
    demo: bool = False  # the demo profile generates a folder of it (demo_data)
    table: str | None = None  # the asset's output is a dict of tables: the one holding the files

    @property
    def view(self) -> str:
        """The warehouse view of its images (the study's names: images_pixabay, images_fer2013, ...)."""
        return f"images_{self.key}"

    @property
    def env(self) -> str:
        """The environment variable holding a folder source's path under the real profile."""
        return f"FEMO_{self.key.upper()}_DIR"

    @property
    def pattern_env(self) -> str:
        """The environment variable that overrides name_pattern at run time."""
        return f"FEMO_{self.key.upper()}_NAME_PATTERN"

    @property
    def layout(self) -> str:
        return "<train|test>/<emotion>/" if self.splits else "<set>/<emotion>/" if self.sets else "<emotion>/"

    @property
    def description(self) -> str:
        """What its ingest asset does, for the asset's description."""
        return f"{self.name} image files ({self.layout}) read, inspected and staged with their bytes."


# Ids and names as in the study's `data_sources` table (../shared/reference/seed-project/data_sources.csv);
# the comments are ours.
SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(1, "pixabay", "Pixabay API", "https://pixabay.com/service/about/api/",
               "Photos found through the Pixabay search API, downloaded in a second step.",
               asset="pixabay_images", kind="web", table="files"),
        Source(2, "ddg", "DuckDuckGo API", "https://rapidapi.com/epctex-epctex-default/api/duckduckgo10",
               "Photos found through DuckDuckGo image search on RapidAPI, downloaded in a second step.",
               asset="duckduckgo_images", kind="web", table="files"),
        Source(3, "kaggle", "Kaggle", "https://www.kaggle.com/datasets/sudarshanvaidya/random-images-for-face-emotion-recognition",
               "Kaggle 'random images for face emotion recognition' folders (224x224 PNG, 8 classes).",
               asset="kaggle_face_images", demo=True),
        Source(4, "fer2013", "FER-2013", "https://www.kaggle.com/datasets/msambare/fer2013",
               "FER-2013 (Goodfellow et al. 2013), 48x48 grayscale JPEG in train/test folders.",
               asset="fer2013_images", splits=True, crop_faces=False, demo=True),
        Source(5, "extra", "Extra labelled sets", "",
               "Labelled face sets of other kinds (posed lab photos, web photos), one folder per set: scored by "
               "every reader, each set a dataset of its own; never trained, tuned or selected on.",
               asset="extra_face_images", sets=True, held_out=True, crop_faces=False, demo=True,
               name_pattern=FACE_SET_NAMES),
    )
}


def folder_sources() -> list[Source]:
    """The sources read from a local folder, in id order."""
    return sorted((s for s in SOURCES.values() if s.kind == "folder"), key=lambda s: s.id)
