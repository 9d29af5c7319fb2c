-- interlog data shard (bindings DATA_1, DATA_2, ...): every row of the orgs
-- placed on this shard. The directory database (migrations/directory/) says
-- which shard an org lives on. Every org-owned row carries org_id. Times are
-- Unix milliseconds (INTEGER).

-- The org's settings and storage usage (its directory row holds id, name,
-- shard). Quotas: NULL means the default, 1,000,000 rows and 1 GiB
-- (1073741824 bytes); the operator sets an org's own with
-- `interlog-admin set-quota`. The defaults are repeated in interlog_core::org
-- (DEFAULT_QUOTA_ROWS, DEFAULT_QUOTA_BYTES), whose tests check that both agree.
CREATE TABLE orgs (
  id              TEXT PRIMARY KEY,               -- org_<26 Crockford>
  name            TEXT NOT NULL,
  allowed_origins TEXT NOT NULL DEFAULT '[]',     -- JSON array of exact origins
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  quota_rows      INTEGER,                        -- NULL: default
  quota_bytes     INTEGER,                        -- NULL: default
  used_rows       INTEGER NOT NULL DEFAULT 0,
  used_bytes      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE interactions (
  org_id          TEXT NOT NULL,
  id              TEXT NOT NULL,                  -- int_<sortable>
  type            TEXT NOT NULL,
  occurred_at     INTEGER NOT NULL,
  received_at     INTEGER NOT NULL,
  actor           TEXT,
  session         TEXT,
  content         TEXT,
  metadata        TEXT,                           -- JSON object text
  idempotency_key TEXT,
  PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
-- Idempotency is per org.
CREATE UNIQUE INDEX interactions_idem ON interactions (org_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- Newest-first listing with keyset pagination, and its filters.
CREATE INDEX interactions_by_time ON interactions (org_id, occurred_at DESC, id DESC);
CREATE INDEX interactions_by_actor ON interactions (org_id, actor, occurred_at DESC, id DESC);
CREATE INDEX interactions_by_type ON interactions (org_id, type, occurred_at DESC, id DESC);
-- Retention scans by age.
CREATE INDEX interactions_by_received ON interactions (org_id, received_at);
-- A session's conversation, oldest first, keyset paged (GET /v1/sessions/{session}
-- and the `session` filter of GET /v1/interactions and of the export).
CREATE INDEX interactions_by_session ON interactions (org_id, session, occurred_at, id);

-- Storage quota on stored interactions. Usage is kept exact by triggers,
-- inside the very transaction of every write and delete: an insert that makes
-- an org's usage cross its quota aborts with 'QUOTA_EXCEEDED', and since a D1
-- batch is one transaction the whole write (a single interaction or a whole
-- batch) is refused and nothing is stored. A skipped insert (an idempotent
-- replay, ON CONFLICT DO NOTHING) fires no trigger, so a replay never counts
-- twice. Every delete (erasure, retention, a move's clean-up) gives its room
-- back.
--
-- Bytes of a row: the UTF-8 length of every text column stored for it
-- (id, type, actor, session, content, metadata as stored JSON text,
-- idempotency_key); timestamps, org_id and index overhead are not counted.
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

CREATE TABLE rate_limits (
  prefix          TEXT NOT NULL,                  -- key prefix (L2 key)
  org_id          TEXT NOT NULL,
  window_start    INTEGER NOT NULL,
  count           INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (prefix, window_start)
);
CREATE INDEX rate_limits_by_org_age ON rate_limits (org_id, updated_at);

-- The org's audit rows. Repeated auth failures of one prefix and reason
-- within a minute share one row that counts them (count, first_at..last_at;
-- NULL means `at`).
CREATE TABLE audit_log (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id          TEXT,
  at              INTEGER NOT NULL,
  action          TEXT NOT NULL,                  -- auth.failure, auth.forbidden, key.created, ...
  reason          TEXT,                           -- for auth.failure: missing, malformed, unknown_prefix, wrong_hash, revoked, expired
  prefix          TEXT,
  ip              TEXT,
  request_id      TEXT,
  detail          TEXT,                           -- JSON, never key material
  count           INTEGER NOT NULL DEFAULT 1,
  first_at        INTEGER,
  last_at         INTEGER
);
CREATE INDEX audit_by_org_time ON audit_log (org_id, at DESC, id DESC);
CREATE INDEX audit_by_org_prefix ON audit_log (org_id, prefix, at DESC);
CREATE INDEX audit_by_time ON audit_log (at);

-- Alerts: a finished alert is `resolved`, with when and by whom (an admin
-- key's prefix, or 'auto' when its cause ended by itself).
CREATE TABLE alerts (
  id              TEXT PRIMARY KEY,
  org_id          TEXT NOT NULL,
  kind            TEXT NOT NULL,                  -- l2_limit_repeated, auth_failure_burst, dead_key_used, key_expiring
  prefix          TEXT NOT NULL DEFAULT '',       -- '' for alerts about the org as a whole
  state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
  first_seen      INTEGER NOT NULL,
  last_seen       INTEGER NOT NULL,
  count           INTEGER NOT NULL DEFAULT 1,
  detail          TEXT,
  resolved_at     INTEGER,
  resolved_by     TEXT
);
-- One open alert per cause and key.
CREATE UNIQUE INDEX alerts_open_once ON alerts (org_id, kind, prefix) WHERE state = 'open';
CREATE INDEX alerts_by_org_time ON alerts (org_id, last_seen DESC, id DESC);
CREATE INDEX alerts_by_time ON alerts (last_seen);

-- Erasure jobs: every interaction of one actor, deleted in bounded chunks by
-- the org actor's alarm. A job is `done` once a chunk's transaction finds no
-- interaction of the actor left; `finished_at` is that time. `deleted` counts
-- the rows this job deleted (counted in the chunk's own transaction).
CREATE TABLE erasures (
  id           TEXT PRIMARY KEY,                -- era_<26 Crockford>
  org_id       TEXT NOT NULL,
  actor        TEXT NOT NULL,
  state        TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
  deleted      INTEGER NOT NULL DEFAULT 0,
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  requested_by TEXT                             -- prefix of the admin key that started it
);
-- At most one running job per actor: a second start returns the running one.
CREATE UNIQUE INDEX erasures_running_once ON erasures (org_id, actor) WHERE state = 'running';
-- The alarm finds its org's running jobs; reads go by id.
CREATE INDEX erasures_by_org_state ON erasures (org_id, state, started_at);

-- Webhooks: an org's endpoints (at most 10, checked by the actor).
-- `secret` is the signing secret's text (`whsec_` + base64): the actor
-- needs it to sign, so it is stored as is, never returned after creation
-- or rotation. During a rotation's overlap `previous_secret` signs too,
-- until `previous_expires_at`. Deleting an endpoint deletes the row, its
-- queued deliveries and its log.
CREATE TABLE webhooks (
  id                   TEXT PRIMARY KEY,              -- whk_…
  org_id               TEXT NOT NULL,
  url                  TEXT NOT NULL,
  events               TEXT NOT NULL,                 -- comma-separated event types
  secret               TEXT NOT NULL,
  previous_secret      TEXT,
  previous_expires_at  INTEGER,
  state                TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'failing')),
  created_at           INTEGER NOT NULL
);
CREATE INDEX webhooks_by_org ON webhooks (org_id, created_at);

-- webhook_outbox: one row per (event, endpoint), written in the same
-- transaction as the alert change it reports, so a delivery is never lost
-- when the actor restarts. `message_id` is the `webhook-id` header, the
-- same on every retry; `body` is the exact payload signed on every attempt.
-- States: pending (due at next_attempt_at), delivered, failed (given up).
CREATE TABLE webhook_outbox (
  webhook_id       TEXT NOT NULL,
  message_id       TEXT NOT NULL,                    -- msg_…
  org_id           TEXT NOT NULL,
  event            TEXT NOT NULL,
  body             TEXT NOT NULL,
  state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL,
  next_attempt_at  INTEGER NOT NULL,
  PRIMARY KEY (webhook_id, message_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (org_id, state, next_attempt_at);
CREATE INDEX webhook_outbox_by_time ON webhook_outbox (created_at);

-- webhook_deliveries: one row per attempt (the delivery log). Bounded:
-- the actor keeps the newest 1000 per endpoint, and retention deletes
-- rows older than the alerts' period.
CREATE TABLE webhook_deliveries (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  webhook_id   TEXT NOT NULL,
  org_id       TEXT NOT NULL,
  message_id   TEXT NOT NULL,
  event        TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  status       INTEGER,                               -- NULL: no response (timeout, network)
  duration_ms  INTEGER NOT NULL,
  outcome      TEXT NOT NULL,                         -- delivered, retrying, failed
  error        TEXT,
  at           INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, at DESC, id DESC);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (at);
