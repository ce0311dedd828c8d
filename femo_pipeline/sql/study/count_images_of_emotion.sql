-- How many images show a given emotion (the study asked for 'Anger').
SELECT COUNT(*) AS total_rows
FROM all_images ai
JOIN emotions_ids ei
    ON ai.emotion_id = ei.id
WHERE ei.emotion = 'Anger';
