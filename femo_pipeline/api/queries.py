"""The SQL of the JSON routes and the pages: the image metadata select (and the face page's wider one), the
gallery's filter fragments, and the per-emotion disagreement queries. Every fragment is a constant; values
always travel as parameters. Pure module (no Dagster)."""

from __future__ import annotations

_SELECT = """
SELECT i.id, i.source_id, ds.source, i.emotion_id, e.emotion, i.split, i.usage, i.height, i.width,
       i.aspect_ratio, i.image_format, i.color_space, round(i.file_size_bytes / 1048576.0, 6) AS file_size_MB,
       i.content_hash, i.duplicate_count, i.synthetic
FROM images i
JOIN data_sources ds ON ds.id = i.source_id
JOIN emotions e ON e.id = i.emotion_id
"""

_FACE_SELECT = _SELECT.replace(
    "i.synthetic\n", "i.synthetic, i.rel_path, i.label_raw, i.duplicate_cross_split, i.duplicate_label_conflict\n")

DUPLICATE_FILTERS = {  # constant SQL fragments
    "duplicated": "i.duplicate_count > 1",
    "cross_split": "i.duplicate_cross_split",
    "label_conflict": "i.duplicate_label_conflict",
    "unique": "i.duplicate_count = 1",
}
SPLITS = {"train": "i.split = 'train'", "test": "i.split = 'test'", "none": "i.split IS NULL"}

_LEAK_FREE = "AND NOT (i.duplicate_cross_split OR i.duplicate_label_conflict)"  # a constant fragment

_SCORED_SQL = """
SELECT i.emotion_id AS label_id, count(*) AS n
FROM predictions p JOIN images i ON i.id = p.image_id JOIN human_votes v ON v.image_id = p.image_id
WHERE p.model_run_id = ? AND i.split = 'test' {leak_free}
GROUP BY ALL
"""

# The same rule as the warehouse view `disagreements` (FER-2013 label as truth; "most people" = over half the
# votes), for any reader: the model right and at most half the votes for the label, or the model wrong and over
# half the votes for it.
_DISAGREEMENT_SQL = """
WITH votes AS (
    SELECT image_id, neutral + happiness + surprise + sadness + anger + disgust + fear + contempt + unknown + "NF" AS total,
           [anger, disgust, fear, happiness, sadness, surprise, neutral] AS seven
    FROM human_votes
)
SELECT i.id, i.emotion_id AS label_id, e.emotion AS label, pe.emotion AS model_says,
       v.seven[i.emotion_id + 1] AS votes_for_label, v.total AS votes,
       CASE WHEN p.emotion_id = i.emotion_id THEN 'model' ELSE 'people' END AS kind
FROM predictions p
JOIN images i ON i.id = p.image_id
JOIN votes v ON v.image_id = p.image_id
JOIN emotions e ON e.id = i.emotion_id
JOIN emotions pe ON pe.id = p.emotion_id
WHERE p.model_run_id = ? AND i.split = 'test' AND v.total > 0 AND i.emotion_id BETWEEN 0 AND 6 {leak_free}
  AND ((p.emotion_id = i.emotion_id AND 2 * v.seven[i.emotion_id + 1] < v.total)
    OR (p.emotion_id <> i.emotion_id AND 2 * v.seven[i.emotion_id + 1] > v.total))
ORDER BY i.emotion_id, kind, votes_for_label, i.id
"""
