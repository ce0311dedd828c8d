-- femo warehouse schema (DuckDB). Every statement is idempotent: the pipeline runs it before each load.
-- Table and column names follow the original study's MySQL database so its queries keep working.

CREATE TABLE IF NOT EXISTS data_sources (
    id          INTEGER PRIMARY KEY,
    source_key  VARCHAR NOT NULL UNIQUE,
    source      VARCHAR NOT NULL,
    url_link    VARCHAR,
    comments    VARCHAR,
    synthetic   BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS emotions (
    id       INTEGER PRIMARY KEY,
    emotion  VARCHAR NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS images (
    id                BIGINT PRIMARY KEY,           -- stable: derived from source and relative path
    source_id         INTEGER NOT NULL REFERENCES data_sources (id),
    emotion_id        INTEGER NOT NULL REFERENCES emotions (id),
    split             VARCHAR,                      -- train / test (FER-2013); the set's name (extra labelled sets)
    usage             VARCHAR,                      -- FER-2013: Training / PublicTest / PrivateTest
    subject           VARCHAR,                      -- who is shown, from the file name (the source's name pattern)
    sequence          VARCHAR,                      -- the recording it is a frame of, from the file name
    rel_path          VARCHAR NOT NULL,
    label_raw         VARCHAR,
    height            INTEGER NOT NULL,
    width             INTEGER NOT NULL,
    aspect_ratio      DOUBLE NOT NULL,
    image_format      VARCHAR NOT NULL,
    color_space       VARCHAR NOT NULL,             -- 'Grayscale' or 'RGB', measured on the pixels
    channels          INTEGER NOT NULL,
    file_size_bytes   BIGINT NOT NULL,
    content_hash      VARCHAR NOT NULL,             -- sha256 of the file bytes
    duplicate_count   INTEGER NOT NULL,             -- files with the same hash, this one included
    duplicate_cross_split     BOOLEAN NOT NULL,     -- same bytes appear in train and test
    duplicate_label_conflict  BOOLEAN NOT NULL,     -- same bytes carry different emotions
    synthetic         BOOLEAN NOT NULL,
    UNIQUE (source_id, rel_path)
);

-- The image itself, as the file's own bytes (JPEG/PNG/...), kept apart so metadata queries stay light.
-- Uncompressed: the bytes are JPEG/PNG already, and DuckDB would otherwise ZSTD the whole column into one
-- segment that every single-image read must decompress.
CREATE TABLE IF NOT EXISTS image_pixels (
    image_id  BIGINT PRIMARY KEY REFERENCES images (id),
    pixels    BLOB NOT NULL USING COMPRESSION uncompressed
);

-- Files that could not be used, with the reason; never silently dropped.
CREATE TABLE IF NOT EXISTS quarantined_files (
    source_id        INTEGER NOT NULL REFERENCES data_sources (id),
    rel_path         VARCHAR NOT NULL,
    reason           VARCHAR NOT NULL,
    file_size_bytes  BIGINT,
    content_hash     VARCHAR,
    PRIMARY KEY (source_id, rel_path)
);

-- Face detection outcome per image of the sources that need it (web photos, Kaggle); the crop is a file.
CREATE TABLE IF NOT EXISTS face_crops (
    image_id     BIGINT PRIMARY KEY REFERENCES images (id),
    status       VARCHAR NOT NULL,              -- ok / multiple_faces / no_face / unreadable
    reason       VARCHAR,
    n_faces      INTEGER NOT NULL,
    box_x INTEGER, box_y INTEGER, box_w INTEGER, box_h INTEGER,   -- largest face, original pixels
    crop_path    VARCHAR,                       -- relative to the data folder
    crop_height  INTEGER,
    crop_width   INTEGER
);

-- The seeded, balanced sample for modelling: N images per emotion per source, after curation.
CREATE TABLE IF NOT EXISTS balanced_sample (
    image_id            BIGINT PRIMARY KEY REFERENCES images (id),
    source_id           INTEGER NOT NULL REFERENCES data_sources (id),
    emotion_id          INTEGER NOT NULL REFERENCES emotions (id),   -- after relabelling
    original_emotion_id INTEGER NOT NULL REFERENCES emotions (id),
    relabelled          BOOLEAN NOT NULL,
    seed                BIGINT NOT NULL
);

-- FACS tables (filled by the FACS scraper); declared here so the schema and its keys are whole.
CREATE TABLE IF NOT EXISTS facs_single_units (
    action_unit    INTEGER PRIMARY KEY,
    description    VARCHAR NOT NULL,
    facial_muscle  VARCHAR,
    example        VARCHAR,                      -- URL of the example gif, taken from the unit's own row
    action_unit_raw_label VARCHAR                -- as printed, e.g. '9 (also shows slight AU4 and AU10)'
);

CREATE TABLE IF NOT EXISTS facs_emotions_units (
    emotion       INTEGER NOT NULL REFERENCES emotions (id),
    action_units  INTEGER NOT NULL REFERENCES facs_single_units (action_unit),
    note          VARCHAR,                       -- e.g. 'on one side of the face' (contempt)
    PRIMARY KEY (emotion, action_units)
);

CREATE TABLE IF NOT EXISTS survey_responses (
    id            BIGINT PRIMARY KEY,
    "Hours"       INTEGER NOT NULL,
    "Day"         INTEGER NOT NULL,
    "Pride"       INTEGER NOT NULL, "Love" INTEGER NOT NULL, "Hope" INTEGER NOT NULL,
    "Gratitude"   INTEGER NOT NULL, "Joy" INTEGER NOT NULL, "Satisfaction" INTEGER NOT NULL,
    "Awe"         INTEGER NOT NULL, "Amusement" INTEGER NOT NULL, "Alertness" INTEGER NOT NULL,
    "Anxiety"     INTEGER NOT NULL, "Disdain" INTEGER NOT NULL, "Ofense" INTEGER NOT NULL,
    "Guilt"       INTEGER NOT NULL, "Disgust" INTEGER NOT NULL, "Fear" INTEGER NOT NULL,
    "Embarassment" INTEGER NOT NULL, "Sadness" INTEGER NOT NULL, "Anger" INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS survey_rejected_rows (
    row_number  BIGINT PRIMARY KEY,                -- 1-based data row of the CSV
    id          VARCHAR,
    reason      VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS warehouse_info (
    key    VARCHAR PRIMARY KEY,
    value  VARCHAR NOT NULL
);

-- The study's names, as views.
CREATE OR REPLACE VIEW emotions_ids AS SELECT id, emotion FROM emotions;

CREATE OR REPLACE VIEW all_images AS
SELECT
    i.id, i.source_id, i.emotion_id, i.height, i.width, i.aspect_ratio, i.image_format, i.color_space,
    round(i.file_size_bytes / 1048576.0, 6) AS file_size_MB,
    p.pixels,
    i.split, i.usage, i.rel_path, i.content_hash, i.synthetic
FROM images i
LEFT JOIN image_pixels p ON p.image_id = i.id;

-- The per-source views (images_pixabay, images_ddg, images_kaggle, images_fer2013, ...: all_images of one
-- source) are created from the source registry, femo_pipeline/sources.py (warehouse.schema.apply_schema).

-- ---------------------------------------------------------------- the benchmark

-- Every reader that produced predictions: femo's CNN (trained here or shipped with the package), public models,
-- baselines. Append-only: the id is derived from the model file's content (or the baseline's inputs), so the
-- same model is one row; nothing is ever overwritten.
CREATE TABLE IF NOT EXISTS model_runs (
    id                   VARCHAR PRIMARY KEY,   -- e.g. femo-trained-<sha256[:16]>, femo-shipped-..., fer-..., majority-...
    reader               VARCHAR NOT NULL,      -- display name in the report
    origin               VARCHAR NOT NULL,      -- trained / shipped / package / baseline
    label_source         VARCHAR,               -- fer2013 (labels) / ferplus (crowd votes); NULL for public models
    created              TIMESTAMP NOT NULL,
    config               JSON,
    backend              VARCHAR,
    device               VARCHAR,
    train_seconds        DOUBLE,
    parameters           BIGINT,
    model_sha256         VARCHAR,
    validation_accuracy  DOUBLE,                -- on its own validation split (never on test)
    data_fingerprint     VARCHAR,               -- sha256 over the training images' ids, hashes and labels
    synthetic            BOOLEAN NOT NULL,      -- trained on synthetic demo data: never reported as a real result
    dagster_run_id       VARCHAR,
    caveat               VARCHAR
);

-- One row per reader and image: the predicted emotion and the seven probabilities (study order).
CREATE TABLE IF NOT EXISTS predictions (
    model_run_id  VARCHAR NOT NULL REFERENCES model_runs (id),
    image_id      BIGINT NOT NULL REFERENCES images (id),
    emotion_id    INTEGER NOT NULL REFERENCES emotions (id),
    p_anger DOUBLE, p_disgust DOUBLE, p_fear DOUBLE, p_happiness DOUBLE, p_sadness DOUBLE, p_surprise DOUBLE,
    p_neutral DOUBLE,
    PRIMARY KEY (model_run_id, image_id)
);

-- FER+ crowd votes per image (10 annotators), joined by content hash through the shipped FER+ map.
CREATE TABLE IF NOT EXISTS human_votes (
    image_id         BIGINT PRIMARY KEY REFERENCES images (id),
    neutral INTEGER NOT NULL, happiness INTEGER NOT NULL, surprise INTEGER NOT NULL, sadness INTEGER NOT NULL,
    anger INTEGER NOT NULL, disgust INTEGER NOT NULL, fear INTEGER NOT NULL, contempt INTEGER NOT NULL,
    unknown INTEGER NOT NULL, "NF" INTEGER NOT NULL,
    fer2013new_rows  VARCHAR,                    -- data row(s) of fer2013new.csv
    synthetic        BOOLEAN NOT NULL            -- demo: votes drawn around the synthetic label
);

-- Scores of every reader (humans: model_run_id NULL) per dataset, reference and variant, with 95 % intervals.
CREATE TABLE IF NOT EXISTS benchmark_scores (
    dataset       VARCHAR NOT NULL,              -- leak-free test / full test
    reference     VARCHAR NOT NULL,              -- ferplus (leave-one-out plurality) / fer2013 (label)
    variant       VARCHAR NOT NULL,              -- seven_classes / all_votes / per_image
    reader        VARCHAR NOT NULL,
    model_run_id  VARCHAR REFERENCES model_runs (id),
    metric        VARCHAR NOT NULL,              -- accuracy / macro_f1
    value         DOUBLE,
    ci_low        DOUBLE,
    ci_high       DOUBLE,
    n             BIGINT NOT NULL,               -- images
    PRIMARY KEY (dataset, reference, variant, reader, metric)
);

-- Paired verdicts: reader minus `against` (humans, or the declared model), bootstrapped over shared resamples.
CREATE TABLE IF NOT EXISTS verdicts (
    dataset VARCHAR NOT NULL, reference VARCHAR NOT NULL, variant VARCHAR NOT NULL,
    reader VARCHAR NOT NULL, against VARCHAR NOT NULL,
    model_run_id  VARCHAR REFERENCES model_runs (id),
    images BIGINT NOT NULL, votes DOUBLE NOT NULL,
    accuracy_reader DOUBLE, accuracy_reader_low DOUBLE, accuracy_reader_high DOUBLE,
    accuracy_against DOUBLE, accuracy_against_low DOUBLE, accuracy_against_high DOUBLE,
    difference_pp DOUBLE, ci_low_pp DOUBLE, ci_high_pp DOUBLE,
    verdict VARCHAR NOT NULL,
    declared BOOLEAN NOT NULL,                   -- the model declared before test (femo's, chosen on validation)
    metric VARCHAR NOT NULL DEFAULT 'accuracy',  -- accuracy / balanced_recall (mean recall over the reference classes)
    PRIMARY KEY (dataset, reference, variant, reader, against, metric)
);

-- Per reference emotion: recall of reader and `against` and the paired difference.
CREATE TABLE IF NOT EXISTS verdicts_per_class (
    dataset VARCHAR NOT NULL, reference VARCHAR NOT NULL, variant VARCHAR NOT NULL,
    reader VARCHAR NOT NULL, against VARCHAR NOT NULL,
    emotion_id INTEGER NOT NULL REFERENCES emotions (id),
    reference_mass DOUBLE NOT NULL,
    recall_reader DOUBLE, recall_reader_low DOUBLE, recall_reader_high DOUBLE,
    recall_against DOUBLE, recall_against_low DOUBLE, recall_against_high DOUBLE,
    difference_pp DOUBLE, ci_low_pp DOUBLE, ci_high_pp DOUBLE,
    verdict VARCHAR NOT NULL,
    PRIMARY KEY (dataset, reference, variant, reader, against, emotion_id)
);

-- What affects the model (assets data_factors, data_factors_table): one row per cell of the grid (share of
-- Training, label source, label noise, duplicates, seed), reference and metric, on the leak-free test images.
CREATE TABLE IF NOT EXISTS data_factors (
    cell               VARCHAR NOT NULL,         -- the partition key, e.g. ferplus-s025-n00-kept-seed1
    labels             VARCHAR NOT NULL,         -- fer2013 / ferplus (crowd plurality) / ferplus_votes (soft)
    share              INTEGER NOT NULL,         -- % of Training drawn
    noise              INTEGER NOT NULL,         -- % of labels replaced at random
    duplicates         VARCHAR NOT NULL,         -- kept / removed
    seed               INTEGER NOT NULL,
    reference          VARCHAR NOT NULL,         -- fer2013 (label) / ferplus (leave-one-out plurality)
    metric             VARCHAR NOT NULL,         -- accuracy / balanced_recall
    value DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
    test_images        BIGINT NOT NULL,
    train_images       BIGINT NOT NULL,
    epochs             INTEGER NOT NULL,
    epochs_run         INTEGER NOT NULL,
    best_validation_accuracy DOUBLE,
    train_seconds      DOUBLE NOT NULL,
    device_text        VARCHAR,                  -- what trained it
    synthetic          BOOLEAN NOT NULL,
    created            TIMESTAMP NOT NULL,
    PRIMARY KEY (cell, reference, metric)
);

-- Panels of k people against each reader (asset benchmark_report): the panel answers with the plurality of k of
-- an image's votes, and panel and reader are scored against the same reference (the plurality of the other votes,
-- or the FER-2013 label); many random splits per image, shared by every reader; paired bootstrap over images.
CREATE TABLE IF NOT EXISTS panel_scores (
    dataset       VARCHAR NOT NULL,
    reference     VARCHAR NOT NULL,
    variant       VARCHAR NOT NULL,
    reader        VARCHAR NOT NULL,
    model_run_id  VARCHAR REFERENCES model_runs (id),
    k             INTEGER NOT NULL,
    metric        VARCHAR NOT NULL,              -- accuracy / balanced_recall
    images        BIGINT NOT NULL,
    value DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
    panel_value DOUBLE, panel_ci_low DOUBLE, panel_ci_high DOUBLE,
    difference_pp DOUBLE, ci_low_pp DOUBLE, ci_high_pp DOUBLE,
    verdict       VARCHAR NOT NULL,
    PRIMARY KEY (dataset, reference, variant, reader, k, metric)
);

-- Where a model and people part ways (FER-2013 label as truth): the model right and most people (over half the
-- votes) wrong, and the reverse; one row per model run and image. `declared` marks the model that faces the
-- humans (recorded by model_evaluation).
CREATE OR REPLACE VIEW disagreements AS
WITH votes AS (
    SELECT image_id, neutral + happiness + surprise + sadness + anger + disgust + fear + contempt + unknown + "NF" AS total,
           [anger, disgust, fear, happiness, sadness, surprise, neutral] AS seven
    FROM human_votes
)
SELECT i.id AS image_id, i.usage, i.emotion_id AS label_id, e.emotion AS label, p.emotion_id AS model_emotion_id,
       pe.emotion AS model_says, p.model_run_id, r.reader,
       p.model_run_id = (SELECT max(value) FROM warehouse_info WHERE key = 'declared_model_run') AS declared,
       v.seven[i.emotion_id + 1] AS votes_for_label, v.total AS votes,
       round(v.seven[i.emotion_id + 1] / v.total, 3) AS people_right_share,
       NOT (i.duplicate_cross_split OR i.duplicate_label_conflict) AS leak_free,
       CASE WHEN p.emotion_id = i.emotion_id THEN 'model right, most people wrong'
            ELSE 'most people right, model wrong' END AS kind
FROM predictions p
JOIN model_runs r ON r.id = p.model_run_id
JOIN images i ON i.id = p.image_id
JOIN votes v ON v.image_id = p.image_id
JOIN emotions e ON e.id = i.emotion_id
JOIN emotions pe ON pe.id = p.emotion_id
WHERE i.split = 'test' AND v.total > 0
  AND ((p.emotion_id = i.emotion_id AND 2 * v.seven[i.emotion_id + 1] < v.total)
    OR (p.emotion_id <> i.emotion_id AND 2 * v.seven[i.emotion_id + 1] > v.total));
