-- femo warehouse comments (DuckDB): a one-line description of every table, view and column of schema.sql,
-- shown in the Dagster UI and in duckdb_columns().comment; warehouse.ensure_schema applies it after schema.sql.
-- The per-source views images_<source> take their column descriptions from all_images (warehouse.apply_schema).

COMMENT ON TABLE data_sources IS 'Where the images come from: the study''s four sources (1 Pixabay, 2 DuckDuckGo, 3 Kaggle, 4 FER-2013).';
COMMENT ON COLUMN data_sources.id IS 'Source id as in the original study: 1 Pixabay, 2 DuckDuckGo, 3 Kaggle, 4 FER-2013.';
COMMENT ON COLUMN data_sources.source_key IS 'Short key used in folders and configs: pixabay / ddg / kaggle / fer2013.';
COMMENT ON COLUMN data_sources.source IS 'Display name of the source, e.g. ''Pixabay API'', ''FER-2013''.';
COMMENT ON COLUMN data_sources.url_link IS 'Web address of the source (its API or dataset page).';
COMMENT ON COLUMN data_sources.comments IS 'What the source holds and how its images were obtained.';
COMMENT ON COLUMN data_sources.synthetic IS 'True when this warehouse holds generated demo data for the source, not the real files.';

COMMENT ON TABLE emotions IS 'The study''s emotion vocabulary: 0 Anger, 1 Disgust, 2 Fear, 3 Happiness, 4 Sadness, 5 Surprise, 6 Neutral, 7 Contempt.';
COMMENT ON COLUMN emotions.id IS 'Emotion id in the study''s numbering (0 Anger ... 7 Contempt); 0-6 are FER-2013''s seven classes.';
COMMENT ON COLUMN emotions.emotion IS 'Emotion name, e.g. ''Happiness''.';

COMMENT ON TABLE images IS 'One row per usable image file of every source: label, size, format and duplicate flags (bytes in image_pixels).';
COMMENT ON COLUMN images.id IS 'Stable image id: 63 bits of the SHA-256 of source key and relative path (a non-negative BIGINT), so a file keeps its id across runs.';
COMMENT ON COLUMN images.source_id IS 'Source of the image (data_sources.id): 1 Pixabay, 2 DuckDuckGo, 3 Kaggle, 4 FER-2013.';
COMMENT ON COLUMN images.emotion_id IS 'Labelled emotion (emotions.id), from the emotion folder the file sits in.';
COMMENT ON COLUMN images.split IS 'Dataset split: train / test where the source has splits (FER-2013); NULL otherwise.';
COMMENT ON COLUMN images.usage IS 'FER-2013 usage from the file name: Training / PublicTest / PrivateTest; NULL for other sources.';
COMMENT ON COLUMN images.rel_path IS 'Path of the file inside its source folder, ''/''-separated (bytes that are not UTF-8 shown as \xNN).';
COMMENT ON COLUMN images.label_raw IS 'Emotion folder name as found on disk, before mapping to emotion_id (e.g. ''happy'').';
COMMENT ON COLUMN images.height IS 'Image height in pixels.';
COMMENT ON COLUMN images.width IS 'Image width in pixels.';
COMMENT ON COLUMN images.aspect_ratio IS 'Width / height, rounded to 4 decimals (1.0 = square).';
COMMENT ON COLUMN images.image_format IS 'File format read from the file''s leading bytes: JPEG / PNG / GIF / BMP / WEBP / TIFF.';
COMMENT ON COLUMN images.color_space IS '''Grayscale'' (all channels equal) or ''RGB'', measured on the decoded pixels.';
COMMENT ON COLUMN images.channels IS 'Channels of the decoded pixels as stored: 1 (grey), 3 (colour) or 4 (colour with alpha).';
COMMENT ON COLUMN images.file_size_bytes IS 'Size of the file in bytes.';
COMMENT ON COLUMN images.content_hash IS 'sha256 of the file bytes (64 hex characters); identical files share it.';
COMMENT ON COLUMN images.duplicate_count IS 'Usable files (any source) with the same bytes, this one included; 1 means unique.';
COMMENT ON COLUMN images.duplicate_cross_split IS 'True when the same bytes appear in both train and test.';
COMMENT ON COLUMN images.duplicate_label_conflict IS 'True when files with the same bytes carry different emotions.';
COMMENT ON COLUMN images.synthetic IS 'True for generated demo images (demo profile), never real data.';

COMMENT ON TABLE image_pixels IS 'The image files'' own bytes (JPEG/PNG/...), one row per image, kept apart so metadata queries stay light.';
COMMENT ON COLUMN image_pixels.image_id IS 'Image (images.id).';
COMMENT ON COLUMN image_pixels.pixels IS 'The image file''s own bytes (encoded JPEG/PNG/..., not raw pixel values), stored uncompressed.';

COMMENT ON TABLE quarantined_files IS 'Files that could not be used, with the reason; never silently dropped.';
COMMENT ON COLUMN quarantined_files.source_id IS 'Source of the file (data_sources.id).';
COMMENT ON COLUMN quarantined_files.rel_path IS 'Path of the entry inside its source folder, ''/''-separated.';
COMMENT ON COLUMN quarantined_files.reason IS 'Why it was left out, e.g. ''empty file (0 bytes)'', ''corrupt JPEG: ...'', ''symlink loop''.';
COMMENT ON COLUMN quarantined_files.file_size_bytes IS 'Size in bytes; NULL when the file was never opened (e.g. a link out of the source root).';
COMMENT ON COLUMN quarantined_files.content_hash IS 'sha256 of the file bytes; NULL when the file was never read.';

COMMENT ON TABLE face_crops IS 'Face detection (OpenCV Haar cascade) per web and Kaggle image; the largest face is cropped to a PNG file.';
COMMENT ON COLUMN face_crops.image_id IS 'Image (images.id).';
COMMENT ON COLUMN face_crops.status IS 'Detection outcome: ok / multiple_faces / no_face / unreadable.';
COMMENT ON COLUMN face_crops.reason IS 'Why the outcome is not ok, e.g. ''3 faces found; the largest is kept''; NULL when ok.';
COMMENT ON COLUMN face_crops.n_faces IS 'Number of faces detected.';
COMMENT ON COLUMN face_crops.box_x IS 'Left edge of the largest face box, in pixels of the original image; NULL when no face.';
COMMENT ON COLUMN face_crops.box_y IS 'Top edge of the largest face box, in pixels of the original image; NULL when no face.';
COMMENT ON COLUMN face_crops.box_w IS 'Width of the largest face box, in pixels of the original image; NULL when no face.';
COMMENT ON COLUMN face_crops.box_h IS 'Height of the largest face box, in pixels of the original image; NULL when no face.';
COMMENT ON COLUMN face_crops.crop_path IS 'PNG of the cropped face (box plus a margin), relative to the data folder; NULL when no face.';
COMMENT ON COLUMN face_crops.crop_height IS 'Height of the cropped face in pixels; NULL when no face.';
COMMENT ON COLUMN face_crops.crop_width IS 'Width of the cropped face in pixels; NULL when no face.';

COMMENT ON TABLE balanced_sample IS 'Seeded, balanced sample for modelling: up to N images per emotion per source, after the curation lists.';
COMMENT ON COLUMN balanced_sample.image_id IS 'Sampled image (images.id).';
COMMENT ON COLUMN balanced_sample.source_id IS 'Source of the image (data_sources.id).';
COMMENT ON COLUMN balanced_sample.emotion_id IS 'Emotion used for modelling (emotions.id), after relabelling.';
COMMENT ON COLUMN balanced_sample.original_emotion_id IS 'Emotion the image carried before relabelling (emotions.id).';
COMMENT ON COLUMN balanced_sample.relabelled IS 'True when data/curation/relabel.csv changed this image''s emotion.';
COMMENT ON COLUMN balanced_sample.seed IS 'Random seed of the draw (default 2013): same seed and images, same sample.';

COMMENT ON TABLE facs_single_units IS 'FACS action units (Facial Action Coding System), scraped from the iMotions FACS page.';
COMMENT ON COLUMN facs_single_units.action_unit IS 'Action unit number, e.g. 1 for AU1.';
COMMENT ON COLUMN facs_single_units.description IS 'What the unit does, e.g. ''Inner Brow Raiser''.';
COMMENT ON COLUMN facs_single_units.facial_muscle IS 'Facial muscle(s) behind the unit, as printed on the page.';
COMMENT ON COLUMN facs_single_units.example IS 'URL of the example GIF, taken from the unit''s own row.';
COMMENT ON COLUMN facs_single_units.action_unit_raw_label IS 'Action-unit cell as printed, e.g. ''9 (also shows slight AU4 and AU10)''.';

COMMENT ON TABLE facs_emotions_units IS 'Which FACS action units make up each emotion''s expression: one row per emotion and unit.';
COMMENT ON COLUMN facs_emotions_units.emotion IS 'Emotion (emotions.id).';
COMMENT ON COLUMN facs_emotions_units.action_units IS 'Action unit that is part of the expression (facs_single_units.action_unit).';
COMMENT ON COLUMN facs_emotions_units.note IS 'Qualifier printed with the units, e.g. ''on one side of the face'' (contempt); NULL if none.';

COMMENT ON TABLE survey_responses IS '''Emotions in everyday life'' survey (Trampe et al., PLOS ONE 2015): one cleaned questionnaire per row.';
COMMENT ON COLUMN survey_responses.id IS 'Questionnaire id from the survey CSV (unique; duplicates go to survey_rejected_rows).';
COMMENT ON COLUMN survey_responses."Hours" IS 'Hour of the day the questionnaire was answered, 0-23 (hours 0-5 are left out of the EDA).';
COMMENT ON COLUMN survey_responses."Day" IS 'Day of the week the questionnaire was answered, 1-7 (1 Monday ... 7 Sunday).';
COMMENT ON COLUMN survey_responses."Pride" IS '1 = the respondent felt pride at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Love" IS '1 = the respondent felt love at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Hope" IS '1 = the respondent felt hope at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Gratitude" IS '1 = the respondent felt gratitude at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Joy" IS '1 = the respondent felt joy at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Satisfaction" IS '1 = the respondent felt satisfaction at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Awe" IS '1 = the respondent felt awe at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Amusement" IS '1 = the respondent felt amusement at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Alertness" IS '1 = the respondent felt alertness at that moment, 0 = not (a good emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Anxiety" IS '1 = the respondent felt anxiety at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Disdain" IS '1 = the respondent felt disdain at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Ofense" IS '1 = the respondent felt offense (published as ''Ofense'') at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Guilt" IS '1 = the respondent felt guilt at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Disgust" IS '1 = the respondent felt disgust at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Fear" IS '1 = the respondent felt fear at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Embarassment" IS '1 = the respondent felt embarrassment (published as ''Embarassment'') at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Sadness" IS '1 = the respondent felt sadness at that moment, 0 = not (a bad emotion in the EDA).';
COMMENT ON COLUMN survey_responses."Anger" IS '1 = the respondent felt anger at that moment, 0 = not (a bad emotion in the EDA).';

COMMENT ON TABLE survey_rejected_rows IS 'Survey CSV rows set aside during cleaning, with the reason; never silently dropped.';
COMMENT ON COLUMN survey_rejected_rows.row_number IS '1-based data row of the survey CSV (header not counted).';
COMMENT ON COLUMN survey_rejected_rows.id IS 'The row''s id cell as text, as read (may be blank or malformed).';
COMMENT ON COLUMN survey_rejected_rows.reason IS 'Why the row was dropped, e.g. ''blank cell'', ''Hours outside 0-23'', ''duplicate id''.';

COMMENT ON TABLE warehouse_info IS 'Facts about this warehouse as key/value pairs (schema version, profile, declared model).';
COMMENT ON COLUMN warehouse_info.key IS 'Name of the fact: schema_version / profile / synthetic / declared_model_run.';
COMMENT ON COLUMN warehouse_info.value IS 'Its value as text, e.g. profile ''demo'' or ''real''; declared_model_run holds a model_runs.id.';

COMMENT ON VIEW emotions_ids IS 'The study''s name for the emotions table: emotion ids and names.';
COMMENT ON COLUMN emotions_ids.id IS 'Emotion id in the study''s numbering (0 Anger ... 7 Contempt).';
COMMENT ON COLUMN emotions_ids.emotion IS 'Emotion name, e.g. ''Happiness''.';

COMMENT ON VIEW all_images IS 'Every image with its metadata and file bytes, under the study''s column names.';
COMMENT ON COLUMN all_images.id IS 'Stable image id (images.id).';
COMMENT ON COLUMN all_images.source_id IS 'Source of the image (data_sources.id): 1 Pixabay, 2 DuckDuckGo, 3 Kaggle, 4 FER-2013.';
COMMENT ON COLUMN all_images.emotion_id IS 'Labelled emotion (emotions.id): 0 Anger ... 7 Contempt.';
COMMENT ON COLUMN all_images.height IS 'Image height in pixels.';
COMMENT ON COLUMN all_images.width IS 'Image width in pixels.';
COMMENT ON COLUMN all_images.aspect_ratio IS 'Width / height, rounded to 4 decimals (1.0 = square).';
COMMENT ON COLUMN all_images.image_format IS 'File format read from the file''s leading bytes: JPEG / PNG / GIF / BMP / WEBP / TIFF.';
COMMENT ON COLUMN all_images.color_space IS '''Grayscale'' (all channels equal) or ''RGB'', measured on the decoded pixels.';
COMMENT ON COLUMN all_images."file_size_MB" IS 'File size in MB (bytes / 1,048,576), rounded to 6 decimals.';
COMMENT ON COLUMN all_images.pixels IS 'The image file''s own bytes (encoded JPEG/PNG/..., not raw pixel values), from image_pixels.';
COMMENT ON COLUMN all_images.split IS 'Dataset split: train / test where the source has splits (FER-2013); NULL otherwise.';
COMMENT ON COLUMN all_images.usage IS 'FER-2013 usage from the file name: Training / PublicTest / PrivateTest; NULL for other sources.';
COMMENT ON COLUMN all_images.rel_path IS 'Path of the file inside its source folder, ''/''-separated.';
COMMENT ON COLUMN all_images.content_hash IS 'sha256 of the file bytes (64 hex characters); identical files share it.';
COMMENT ON COLUMN all_images.synthetic IS 'True for generated demo images (demo profile), never real data.';

COMMENT ON VIEW images_pixabay IS 'The study''s per-source view: all_images restricted to source 1, Pixabay.';

COMMENT ON VIEW images_ddg IS 'The study''s per-source view: all_images restricted to source 2, DuckDuckGo.';

COMMENT ON VIEW images_kaggle IS 'The study''s per-source view: all_images restricted to source 3, Kaggle.';

COMMENT ON VIEW images_fer2013 IS 'The study''s per-source view: all_images restricted to source 4, FER-2013.';

COMMENT ON TABLE model_runs IS 'Every reader that produced predictions (femo''s CNNs, public models, baselines); append-only, one row per model.';
COMMENT ON COLUMN model_runs.id IS 'Run id from the model file''s sha256 (or a baseline''s inputs), e.g. femo-shipped-ferplus-<16 hex digits>.';
COMMENT ON COLUMN model_runs.reader IS 'Display name in the report, e.g. ''femo CNN (shipped, ferplus labels)''.';
COMMENT ON COLUMN model_runs.origin IS 'trained (here) / shipped (with femo) / package (public model) / baseline.';
COMMENT ON COLUMN model_runs.label_source IS 'Labels it was trained on: fer2013 (FER-2013 labels) / ferplus (FER+ crowd votes); NULL for public models.';
COMMENT ON COLUMN model_runs.created IS 'When it was trained or recorded, UTC (shipped models: the model file''s modification time).';
COMMENT ON COLUMN model_runs.config IS 'Training settings as JSON (femo models), or how a public model was run; NULL where unknown.';
COMMENT ON COLUMN model_runs.backend IS 'Keras backend it was trained with, e.g. tensorflow; NULL where unknown.';
COMMENT ON COLUMN model_runs.device IS 'Device it was trained on, e.g. CPU; NULL where unknown.';
COMMENT ON COLUMN model_runs.train_seconds IS 'Training time in seconds; NULL where unknown.';
COMMENT ON COLUMN model_runs.parameters IS 'Number of model parameters (weights); NULL where unknown.';
COMMENT ON COLUMN model_runs.model_sha256 IS 'sha256 of the model file (majority baseline: its class id and data fingerprint instead).';
COMMENT ON COLUMN model_runs.validation_accuracy IS 'Accuracy (0-1) on its own validation split, never on test; NULL where unknown.';
COMMENT ON COLUMN model_runs.data_fingerprint IS 'sha256 over the training images'' ids, hashes and labels: what it was trained on.';
COMMENT ON COLUMN model_runs.synthetic IS 'True when trained on synthetic demo data: never reported as a real result.';
COMMENT ON COLUMN model_runs.dagster_run_id IS 'Dagster run that trained or recorded it.';
COMMENT ON COLUMN model_runs.caveat IS 'Warning to read with its figures (e.g. checkpoint chosen on test images); NULL if none.';

COMMENT ON TABLE predictions IS 'One row per reader and image (FER-2013 test, Kaggle): the predicted emotion and seven probabilities.';
COMMENT ON COLUMN predictions.model_run_id IS 'Reader that made the prediction (model_runs.id).';
COMMENT ON COLUMN predictions.image_id IS 'Image (images.id).';
COMMENT ON COLUMN predictions.emotion_id IS 'Predicted emotion (emotions.id, 0-6): the most probable of the seven.';
COMMENT ON COLUMN predictions.p_anger IS 'Probability (0-1) the reader gives to Anger; the seven probabilities sum to 1.';
COMMENT ON COLUMN predictions.p_disgust IS 'Probability (0-1) the reader gives to Disgust; the seven probabilities sum to 1.';
COMMENT ON COLUMN predictions.p_fear IS 'Probability (0-1) the reader gives to Fear; the seven probabilities sum to 1.';
COMMENT ON COLUMN predictions.p_happiness IS 'Probability (0-1) the reader gives to Happiness; the seven probabilities sum to 1.';
COMMENT ON COLUMN predictions.p_sadness IS 'Probability (0-1) the reader gives to Sadness; the seven probabilities sum to 1.';
COMMENT ON COLUMN predictions.p_surprise IS 'Probability (0-1) the reader gives to Surprise; the seven probabilities sum to 1.';
COMMENT ON COLUMN predictions.p_neutral IS 'Probability (0-1) the reader gives to Neutral; the seven probabilities sum to 1.';

COMMENT ON TABLE human_votes IS 'FER+ crowd votes per FER-2013 image: how many of the 10 annotators chose each answer.';
COMMENT ON COLUMN human_votes.image_id IS 'FER-2013 image (images.id), matched by the JPEG''s content hash through the shipped FER+ map.';
COMMENT ON COLUMN human_votes.neutral IS 'Annotators (of 10) who voted Neutral.';
COMMENT ON COLUMN human_votes.happiness IS 'Annotators (of 10) who voted Happiness.';
COMMENT ON COLUMN human_votes.surprise IS 'Annotators (of 10) who voted Surprise.';
COMMENT ON COLUMN human_votes.sadness IS 'Annotators (of 10) who voted Sadness.';
COMMENT ON COLUMN human_votes.anger IS 'Annotators (of 10) who voted Anger.';
COMMENT ON COLUMN human_votes.disgust IS 'Annotators (of 10) who voted Disgust.';
COMMENT ON COLUMN human_votes.fear IS 'Annotators (of 10) who voted Fear.';
COMMENT ON COLUMN human_votes.contempt IS 'Annotators (of 10) who voted Contempt (not one of FER-2013''s seven classes).';
COMMENT ON COLUMN human_votes.unknown IS 'Annotators (of 10) who voted ''unknown'' (emotion unclear).';
COMMENT ON COLUMN human_votes."NF" IS 'Annotators (of 10) who voted ''not a face''.';
COMMENT ON COLUMN human_votes.fer2013new_rows IS '0-based data row(s) of FER+''s fer2013new.csv, '';''-joined for identical copies; NULL in the demo.';
COMMENT ON COLUMN human_votes.synthetic IS 'True in the demo: votes drawn around the synthetic label, not real annotators.';

COMMENT ON TABLE benchmark_scores IS 'Accuracy (and macro F1) of every reader, humans included, per dataset, reference and variant, with 95 % CIs.';
COMMENT ON COLUMN benchmark_scores.dataset IS 'Images scored: ''leak-free test'' (no bytes shared with Training, no conflicting copy) / ''full test''.';
COMMENT ON COLUMN benchmark_scores.reference IS 'Truth scored against: ferplus (leave-one-out crowd plurality) / fer2013 (the FER-2013 label).';
COMMENT ON COLUMN benchmark_scores.variant IS 'seven_classes (only votes for FER-2013''s classes) / all_votes / per_image (each model once per image).';
COMMENT ON COLUMN benchmark_scores.reader IS 'Who is scored: ''human'' (one FER+ annotator) or a model''s display name.';
COMMENT ON COLUMN benchmark_scores.model_run_id IS 'The model''s run (model_runs.id); NULL for humans.';
COMMENT ON COLUMN benchmark_scores.metric IS 'accuracy / macro_f1.';
COMMENT ON COLUMN benchmark_scores.value IS 'The metric''s value, a fraction 0-1.';
COMMENT ON COLUMN benchmark_scores.ci_low IS 'Low end of the 95 % bootstrap interval (0-1); NULL for macro_f1.';
COMMENT ON COLUMN benchmark_scores.ci_high IS 'High end of the 95 % bootstrap interval (0-1); NULL for macro_f1.';
COMMENT ON COLUMN benchmark_scores.n IS 'Number of images scored.';

COMMENT ON TABLE verdicts IS 'Paired verdicts: a model minus `against` (humans, or the declared model), bootstrapped on shared resamples.';
COMMENT ON COLUMN verdicts.dataset IS 'Images compared: ''leak-free test'' / ''full test''.';
COMMENT ON COLUMN verdicts.reference IS 'Truth scored against: ferplus (leave-one-out crowd plurality) / fer2013 (the FER-2013 label).';
COMMENT ON COLUMN verdicts.variant IS 'seven_classes (only votes for FER-2013''s classes) / all_votes (other votes count as human misses).';
COMMENT ON COLUMN verdicts.reader IS 'Model compared (display name).';
COMMENT ON COLUMN verdicts.against IS 'What it is compared with: ''human'' (one FER+ annotator) or the declared model''s display name.';
COMMENT ON COLUMN verdicts.model_run_id IS 'The reader''s run (model_runs.id).';
COMMENT ON COLUMN verdicts.images IS 'Images with at least one scored vote.';
COMMENT ON COLUMN verdicts.votes IS 'Scored votes (one human reading each) over those images.';
COMMENT ON COLUMN verdicts.accuracy_reader IS 'Reader''s accuracy, a fraction 0-1.';
COMMENT ON COLUMN verdicts.accuracy_reader_low IS 'Low end of the reader''s 95 % bootstrap interval (0-1).';
COMMENT ON COLUMN verdicts.accuracy_reader_high IS 'High end of the reader''s 95 % bootstrap interval (0-1).';
COMMENT ON COLUMN verdicts.accuracy_against IS 'Accuracy of `against`, a fraction 0-1.';
COMMENT ON COLUMN verdicts.accuracy_against_low IS 'Low end of the 95 % bootstrap interval of `against` (0-1).';
COMMENT ON COLUMN verdicts.accuracy_against_high IS 'High end of the 95 % bootstrap interval of `against` (0-1).';
COMMENT ON COLUMN verdicts.difference_pp IS 'Reader minus `against` accuracy, in percentage points.';
COMMENT ON COLUMN verdicts.ci_low_pp IS 'Low end of the paired 95 % interval of the difference, in percentage points.';
COMMENT ON COLUMN verdicts.ci_high_pp IS 'High end of the paired 95 % interval of the difference, in percentage points.';
COMMENT ON COLUMN verdicts.verdict IS 'better / worse / no detectable difference / not measurable, from the paired interval.';
COMMENT ON COLUMN verdicts.declared IS 'True when the reader is the declared femo model (chosen on validation, before test).';
COMMENT ON COLUMN verdicts.metric IS 'accuracy (vote-weighted: each vote meets its reference) or balanced_recall (the mean of the per-class recalls, each reference class counting alike).';

COMMENT ON TABLE verdicts_per_class IS 'Per reference emotion: recall of a model and of `against`, and their paired difference, with 95 % CIs.';
COMMENT ON COLUMN verdicts_per_class.dataset IS 'Images compared: ''leak-free test'' / ''full test''.';
COMMENT ON COLUMN verdicts_per_class.reference IS 'Truth scored against: ferplus (leave-one-out crowd plurality) / fer2013 (the FER-2013 label).';
COMMENT ON COLUMN verdicts_per_class.variant IS 'seven_classes (only votes for FER-2013''s classes) / all_votes (other votes count as human misses).';
COMMENT ON COLUMN verdicts_per_class.reader IS 'Model compared (display name).';
COMMENT ON COLUMN verdicts_per_class.against IS 'What it is compared with: ''human'' (one FER+ annotator) or the declared model''s display name.';
COMMENT ON COLUMN verdicts_per_class.emotion_id IS 'Reference emotion (emotions.id, 0-6).';
COMMENT ON COLUMN verdicts_per_class.reference_mass IS 'Votes whose reference is this emotion (a tie of t classes counts 1/t for each).';
COMMENT ON COLUMN verdicts_per_class.recall_reader IS 'Reader''s recall on this emotion, a fraction 0-1.';
COMMENT ON COLUMN verdicts_per_class.recall_reader_low IS 'Low end of the reader''s 95 % bootstrap interval (0-1).';
COMMENT ON COLUMN verdicts_per_class.recall_reader_high IS 'High end of the reader''s 95 % bootstrap interval (0-1).';
COMMENT ON COLUMN verdicts_per_class.recall_against IS 'Recall of `against` on this emotion, a fraction 0-1.';
COMMENT ON COLUMN verdicts_per_class.recall_against_low IS 'Low end of the 95 % bootstrap interval of `against` (0-1).';
COMMENT ON COLUMN verdicts_per_class.recall_against_high IS 'High end of the 95 % bootstrap interval of `against` (0-1).';
COMMENT ON COLUMN verdicts_per_class.difference_pp IS 'Reader minus `against` recall, in percentage points.';
COMMENT ON COLUMN verdicts_per_class.ci_low_pp IS 'Low end of the paired 95 % interval of the difference, in percentage points.';
COMMENT ON COLUMN verdicts_per_class.ci_high_pp IS 'High end of the paired 95 % interval of the difference, in percentage points.';
COMMENT ON COLUMN verdicts_per_class.verdict IS 'better / worse / no detectable difference / not measurable, from the paired interval.';

COMMENT ON TABLE data_factors IS 'What affects the model: one row per cell of the grid (share, label source, noise, duplicates, seed), reference and metric, leak-free test.';
COMMENT ON COLUMN data_factors.cell IS 'The cell (partition key of data_factors), e.g. ferplus-s025-n00-kept-seed1.';
COMMENT ON COLUMN data_factors.labels IS 'Training labels: fer2013 / ferplus (crowd plurality) / ferplus_votes (vote distributions, soft).';
COMMENT ON COLUMN data_factors.share IS 'Share of Training drawn, in % (10, 25, 50, 100).';
COMMENT ON COLUMN data_factors.noise IS 'Share of the training labels replaced by another class at random, in % (0, 10, 20, 40).';
COMMENT ON COLUMN data_factors.duplicates IS 'kept, or removed (byte copies and conflicting images left out, at as many training steps).';
COMMENT ON COLUMN data_factors.seed IS 'Seed of the draw, the split and the training (0-2).';
COMMENT ON COLUMN data_factors.reference IS 'Truth scored against: fer2013 (the label) / ferplus (leave-one-out crowd plurality).';
COMMENT ON COLUMN data_factors.metric IS 'accuracy (vote-weighted) or balanced_recall (mean recall over the reference classes).';
COMMENT ON COLUMN data_factors.value IS 'The metric, a fraction 0-1.';
COMMENT ON COLUMN data_factors.ci_low IS 'Low end of its 95 % bootstrap interval (0-1).';
COMMENT ON COLUMN data_factors.ci_high IS 'High end of its 95 % bootstrap interval (0-1).';
COMMENT ON COLUMN data_factors.test_images IS 'Leak-free test images with votes that were scored.';
COMMENT ON COLUMN data_factors.train_images IS 'Images trained on, after the validation split.';
COMMENT ON COLUMN data_factors.epochs IS 'Planned epochs (more for smaller shares; as many steps with duplicates removed).';
COMMENT ON COLUMN data_factors.epochs_run IS 'Epochs run (early stopping on validation may end it sooner).';
COMMENT ON COLUMN data_factors.best_validation_accuracy IS 'Best accuracy (0-1) on its validation split during training.';
COMMENT ON COLUMN data_factors.train_seconds IS 'Training time in seconds.';
COMMENT ON COLUMN data_factors.device_text IS 'The device it trained on, e.g. 1 x NVIDIA H200 (GPU) or 2 cores of ... (CPU).';
COMMENT ON COLUMN data_factors.synthetic IS 'True when trained on the demo''s generated faces.';
COMMENT ON COLUMN data_factors.created IS 'When the row was stored, UTC.';

COMMENT ON TABLE panel_scores IS 'Panels of k people against each reader on the same references (leak-free test, seven-class votes), paired bootstrap.';
COMMENT ON COLUMN panel_scores.dataset IS 'Image set, e.g. leak-free test.';
COMMENT ON COLUMN panel_scores.reference IS 'ferplus: the plurality of the votes not in the panel; fer2013: the label.';
COMMENT ON COLUMN panel_scores.variant IS 'seven_classes: only votes for the seven emotions exist.';
COMMENT ON COLUMN panel_scores.reader IS 'The model compared with the panel.';
COMMENT ON COLUMN panel_scores.model_run_id IS 'Its run (model_runs.id).';
COMMENT ON COLUMN panel_scores.k IS 'People in the panel (1-5); images with too few votes for k plus a reference are left out.';
COMMENT ON COLUMN panel_scores.metric IS 'accuracy (each image once) or balanced_recall (mean recall over the reference classes).';
COMMENT ON COLUMN panel_scores.images IS 'Images scored at this k.';
COMMENT ON COLUMN panel_scores.value IS 'The reader''s metric, 0-1.';
COMMENT ON COLUMN panel_scores.ci_low IS 'Its 95 % interval, low end.';
COMMENT ON COLUMN panel_scores.ci_high IS 'Its 95 % interval, high end.';
COMMENT ON COLUMN panel_scores.panel_value IS 'The panel''s metric, 0-1.';
COMMENT ON COLUMN panel_scores.panel_ci_low IS 'The panel''s 95 % interval, low end.';
COMMENT ON COLUMN panel_scores.panel_ci_high IS 'The panel''s 95 % interval, high end.';
COMMENT ON COLUMN panel_scores.difference_pp IS 'Reader minus panel, percentage points.';
COMMENT ON COLUMN panel_scores.ci_low_pp IS 'Paired 95 % interval of the difference, low end (points).';
COMMENT ON COLUMN panel_scores.ci_high_pp IS 'Paired 95 % interval of the difference, high end (points).';
COMMENT ON COLUMN panel_scores.verdict IS 'better / worse / no detectable difference (from the paired interval).';

COMMENT ON VIEW disagreements IS 'Test faces where a model is right and most FER+ voters wrong (FER-2013 label as truth), or the reverse.';
COMMENT ON COLUMN disagreements.image_id IS 'FER-2013 test image (images.id).';
COMMENT ON COLUMN disagreements.usage IS 'FER-2013 usage: PublicTest / PrivateTest.';
COMMENT ON COLUMN disagreements.label_id IS 'FER-2013 label (emotions.id).';
COMMENT ON COLUMN disagreements.label IS 'FER-2013 label name.';
COMMENT ON COLUMN disagreements.model_emotion_id IS 'The model''s predicted emotion (emotions.id).';
COMMENT ON COLUMN disagreements.model_says IS 'The model''s predicted emotion name.';
COMMENT ON COLUMN disagreements.model_run_id IS 'The model''s run (model_runs.id).';
COMMENT ON COLUMN disagreements.reader IS 'The model''s display name.';
COMMENT ON COLUMN disagreements.declared IS 'True for the declared model (warehouse_info.declared_model_run), the one facing the humans.';
COMMENT ON COLUMN disagreements.votes_for_label IS 'FER+ votes naming the FER-2013 label.';
COMMENT ON COLUMN disagreements.votes IS 'All FER+ votes on the image (every answer, usually 10).';
COMMENT ON COLUMN disagreements.people_right_share IS 'votes_for_label / votes, a fraction 0-1 rounded to 3 decimals.';
COMMENT ON COLUMN disagreements.leak_free IS 'True when the image has no copy in Training and no conflicting label (the headline set).';
COMMENT ON COLUMN disagreements.kind IS '''model right, most people wrong'' or ''most people right, model wrong'' (most = over half the votes).';
