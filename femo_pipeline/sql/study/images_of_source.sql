-- Images of one source (FER-2013 here) with their emotion and source names.
SELECT
    ds.source,
    ds.url_link,
    ei.emotion,
    height,
    width,
    aspect_ratio,
    image_format,
    color_space,
    file_size_MB
FROM images_fer2013 f
JOIN emotions_ids ei
    ON f.emotion_id = ei.id
JOIN data_sources ds
    ON f.source_id = ds.id
ORDER BY f.id;
