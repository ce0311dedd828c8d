-- Number of images per emotion, largest first.
SELECT
    ei.emotion,
    COUNT(*) AS images_per_emotion
FROM all_images ai
JOIN emotions_ids ei
    ON ai.emotion_id = ei.id
GROUP BY ei.emotion
ORDER BY images_per_emotion DESC;
