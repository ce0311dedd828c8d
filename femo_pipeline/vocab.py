"""The emotion vocabulary, shared by every stage (the image sources are in sources.py).

Emotion ids follow the original study's `emotions_ids` table (0 Anger ... 7 Contempt), so its SQL keeps working.
Pure module: no Dagster imports.
"""

from __future__ import annotations

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


# FER+ crowd votes (fer2013new.csv): the columns in the file's order, ten annotators per image.
VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
# The same columns in the study's emotion-id order (0 Anger ... 7 Contempt), then unknown and not-a-face.
VOTES_BY_EMOTION_ID: tuple[str, ...] = tuple(sorted(VOTE_COLUMNS[:8], key=emotion_id)) + VOTE_COLUMNS[8:]


def emotion_name(emotion: int) -> str:
    return EMOTIONS[emotion]
