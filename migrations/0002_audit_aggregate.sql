-- Aggregated audit rows: repeated auth failures of one prefix (or client) and
-- reason within a minute share one row that counts them. Additive: existing
-- rows stand for one event each (count 1; first_at/last_at NULL mean `at`).
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN first_at INTEGER;
ALTER TABLE audit_log ADD COLUMN last_at INTEGER;
