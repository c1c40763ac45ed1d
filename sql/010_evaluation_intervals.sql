-- Each evaluation metric's bootstrap 95% interval (resampling the held-out examples, seeded): the low
-- and high ends. NULL: no interval (an evaluation made before intervals, or a metric not resampled, such
-- as retrieval's hit@k).
ALTER TABLE evaluation_metrics ADD COLUMN IF NOT EXISTS low double precision;
ALTER TABLE evaluation_metrics ADD COLUMN IF NOT EXISTS high double precision;
