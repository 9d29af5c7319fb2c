-- Per-org storage quota on stored interactions (additive).
--
-- Usage is kept exact by triggers, inside the very transaction of every write
-- and delete: an insert that makes an org's usage cross its quota aborts with
-- 'QUOTA_EXCEEDED', and since a D1 batch is one transaction the whole write
-- (a single interaction or a whole batch) is refused and nothing is stored.
-- A skipped insert (an idempotent replay, ON CONFLICT DO NOTHING) fires no
-- trigger, so a replay never counts twice. Every delete (erasure, retention)
-- gives its room back.
--
-- Bytes of a row: the UTF-8 length of every text column stored for it
-- (id, type, actor, session, content, metadata as stored JSON text,
-- idempotency_key); timestamps, org_id and index overhead are not counted.
--
-- Quotas: NULL means the default, 1,000,000 rows and 1 GiB (1073741824
-- bytes); the operator sets an org's own with `interlog-admin set-quota`.
-- The defaults are repeated in interlog_core::org (DEFAULT_QUOTA_ROWS,
-- DEFAULT_QUOTA_BYTES), whose tests check that both agree.

ALTER TABLE orgs ADD COLUMN quota_rows  INTEGER;                    -- NULL: default
ALTER TABLE orgs ADD COLUMN quota_bytes INTEGER;                    -- NULL: default
ALTER TABLE orgs ADD COLUMN used_rows   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orgs ADD COLUMN used_bytes  INTEGER NOT NULL DEFAULT 0;

-- Usage of the rows stored before this migration.
UPDATE orgs SET
  used_rows = (SELECT COUNT(*) FROM interactions i WHERE i.org_id = orgs.id),
  used_bytes = (SELECT COALESCE(SUM(
      LENGTH(CAST(i.id AS BLOB)) + LENGTH(CAST(i.type AS BLOB))
    + COALESCE(LENGTH(CAST(i.actor AS BLOB)), 0) + COALESCE(LENGTH(CAST(i.session AS BLOB)), 0)
    + COALESCE(LENGTH(CAST(i.content AS BLOB)), 0) + COALESCE(LENGTH(CAST(i.metadata AS BLOB)), 0)
    + COALESCE(LENGTH(CAST(i.idempotency_key AS BLOB)), 0)), 0)
    FROM interactions i WHERE i.org_id = orgs.id);

CREATE TRIGGER interactions_quota_insert AFTER INSERT ON interactions
BEGIN
  UPDATE orgs SET
    used_rows = used_rows + 1,
    used_bytes = used_bytes
      + LENGTH(CAST(NEW.id AS BLOB)) + LENGTH(CAST(NEW.type AS BLOB))
      + COALESCE(LENGTH(CAST(NEW.actor AS BLOB)), 0) + COALESCE(LENGTH(CAST(NEW.session AS BLOB)), 0)
      + COALESCE(LENGTH(CAST(NEW.content AS BLOB)), 0) + COALESCE(LENGTH(CAST(NEW.metadata AS BLOB)), 0)
      + COALESCE(LENGTH(CAST(NEW.idempotency_key AS BLOB)), 0)
  WHERE id = NEW.org_id;
  SELECT RAISE(ABORT, 'QUOTA_EXCEEDED') FROM orgs
  WHERE id = NEW.org_id
    AND (used_rows > COALESCE(quota_rows, 1000000) OR used_bytes > COALESCE(quota_bytes, 1073741824));
END;

CREATE TRIGGER interactions_quota_delete AFTER DELETE ON interactions
BEGIN
  UPDATE orgs SET
    used_rows = used_rows - 1,
    used_bytes = used_bytes
      - LENGTH(CAST(OLD.id AS BLOB)) - LENGTH(CAST(OLD.type AS BLOB))
      - COALESCE(LENGTH(CAST(OLD.actor AS BLOB)), 0) - COALESCE(LENGTH(CAST(OLD.session AS BLOB)), 0)
      - COALESCE(LENGTH(CAST(OLD.content AS BLOB)), 0) - COALESCE(LENGTH(CAST(OLD.metadata AS BLOB)), 0)
      - COALESCE(LENGTH(CAST(OLD.idempotency_key AS BLOB)), 0)
  WHERE id = OLD.org_id;
END;
