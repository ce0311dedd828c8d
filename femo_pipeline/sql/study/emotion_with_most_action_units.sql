-- The emotion described by the most FACS action units.
SELECT
    ei.emotion,
    COUNT(*) AS nr_of_facial_units
FROM facs_emotions_units feu
JOIN facs_single_units fs
    ON feu.action_units = fs.action_unit
JOIN emotions_ids ei
    ON ei.id = feu.emotion
GROUP BY ei.emotion
ORDER BY nr_of_facial_units DESC
LIMIT 1;
