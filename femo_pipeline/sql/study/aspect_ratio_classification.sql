-- Square images suit a CNN input as they are; others risk distortion when resized.
SELECT
    suited_for_ML,
    COUNT(*) AS total_number
FROM (
    SELECT *,
        CASE
            WHEN aspect_ratio = 1 THEN 'should_be_fine'
            ELSE 'possible_distortions'
        END AS suited_for_ML
    FROM all_images
) AS ml
GROUP BY suited_for_ML
ORDER BY suited_for_ML;
