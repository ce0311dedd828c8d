-- Number of images for each (height, width) pair.
SELECT
    height,
    width,
    COUNT(*) AS image_count
FROM all_images
GROUP BY height, width
ORDER BY height ASC, width ASC;
