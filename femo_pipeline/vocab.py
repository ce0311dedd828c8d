"""The emotion vocabulary and the data sources, shared by every stage.

Emotion ids follow the original study's `emotions_ids` table (0 Anger ... 7 Contempt), so its SQL keeps working.
Pure module: no Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass

EMOTIONS: dict[int, str] = {
    0: "Anger",
    1: "Disgust",
    2: "Fear",
    3: "Happiness",
    4: "Sadness",
    5: "Surprise",
    6: "Neutral",
    7: "Contempt",
}

# Folder and label spellings seen in FER-2013, the Kaggle random-images set and web queries.
_ALIASES: dict[str, int] = {
    "anger": 0, "angry": 0,
    "disgust": 1, "disgusted": 1,
    "fear": 2, "fearful": 2, "scared": 2,
    "happiness": 3, "happy": 3, "joy": 3,
    "sadness": 4, "sad": 4,
    "surprise": 5, "surprised": 5,
    "neutral": 6, "neutrality": 6,
    "contempt": 7,
}

# FER-2013's seven classes in the order of the original CSV's integer labels (used by models in later stages).
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def emotion_id(label: str) -> int | None:
    """Map a folder or label name onto the study's emotion id; None when the name is not an emotion we know."""
    return _ALIASES.get(label.strip().lower())


def emotion_name(emotion: int) -> str:
    return EMOTIONS[emotion]


@dataclass(frozen=True)
class Source:
    id: int
    key: str
    name: str
    url: str
    comments: str
    view: str


# Ids and names as in the study's `data_sources` table (../shared/reference/seed-project/data_sources.csv);
# the comments are ours.
SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(1, "pixabay", "Pixabay API", "https://pixabay.com/service/about/api/",
               "Photos found through the Pixabay search API, downloaded in a second step.", "images_pixabay"),
        Source(2, "ddg", "DuckDuckGo API", "https://rapidapi.com/epctex-epctex-default/api/duckduckgo10",
               "Photos found through DuckDuckGo image search on RapidAPI, downloaded in a second step.", "images_ddg"),
        Source(3, "kaggle", "Kaggle", "https://www.kaggle.com/datasets/sudarshanvaidya/random-images-for-face-emotion-recognition",
               "Kaggle 'random images for face emotion recognition' folders (224x224 PNG, 8 classes).", "images_kaggle"),
        Source(4, "fer2013", "FER-2013", "https://www.kaggle.com/datasets/msambare/fer2013",
               "FER-2013 (Goodfellow et al. 2013), 48x48 grayscale JPEG in train/test folders.", "images_fer2013"),
    )
}
