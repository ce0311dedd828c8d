-- The action units (with description, muscle and example) that make up one emotion ('Anger').
SELECT
    id,
    ei.emotion,
    action_unit,
    fs.description,
    facial_muscle,
    example
FROM (SELECT * FROM emotions_ids WHERE emotion = 'Anger') AS ei
JOIN facs_emotions_units feu
    ON ei.id = feu.emotion
JOIN facs_single_units fs
    ON feu.action_units = fs.action_unit
ORDER BY action_unit;
