-- interlog D1 schema. Times are Unix milliseconds (INTEGER). Every org-owned
-- row carries org_id; rows of no org (audit of unknown prefixes) have NULL.

CREATE TABLE orgs (
  id              TEXT PRIMARY KEY,               -- org_<26 Crockford>
  name            TEXT NOT NULL,
  allowed_origins TEXT NOT NULL DEFAULT '[]',     -- JSON array of exact origins
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);

CREATE TABLE api_keys (
  prefix          TEXT PRIMARY KEY,               -- public 8-symbol prefix: lookup and L2 key
  org_id          TEXT NOT NULL REFERENCES orgs(id),
  name            TEXT NOT NULL,
  scopes          TEXT NOT NULL,                  -- 'ingest,read,admin' subset, canonical order
  hash            TEXT NOT NULL,                  -- hex HMAC-SHA-256(pepper, key)
  pepper_version  INTEGER NOT NULL,
  state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
  created_at      INTEGER NOT NULL,
  last_used_at    INTEGER,
  expires_at      INTEGER,
  revoked_at      INTEGER,
  replaced_by     TEXT                            -- prefix of the rotation successor
);
-- The OrgActor loads its org's keys; listings are newest first.
CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at DESC);

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

CREATE TABLE rate_limits (
  prefix          TEXT NOT NULL,                  -- key prefix (L2 key)
  org_id          TEXT NOT NULL,
  window_start    INTEGER NOT NULL,
  count           INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (prefix, window_start)
);
CREATE INDEX rate_limits_by_org_age ON rate_limits (org_id, updated_at);

CREATE TABLE audit_log (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id          TEXT,                           -- NULL: no org known (e.g. unknown prefix)
  at              INTEGER NOT NULL,
  action          TEXT NOT NULL,                  -- auth.failure, auth.forbidden, key.created, ...
  reason          TEXT,                           -- for auth.failure: missing, malformed, unknown_prefix, wrong_hash, revoked, expired
  prefix          TEXT,
  ip              TEXT,
  request_id      TEXT,
  detail          TEXT                            -- JSON, never key material
);
CREATE INDEX audit_by_org_time ON audit_log (org_id, at DESC, id DESC);
CREATE INDEX audit_by_org_prefix ON audit_log (org_id, prefix, at DESC);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE TABLE alerts (
  id              TEXT PRIMARY KEY,
  org_id          TEXT NOT NULL,
  kind            TEXT NOT NULL,                  -- l2_limit_repeated, auth_failure_burst, dead_key_used, key_expiring
  prefix          TEXT NOT NULL DEFAULT '',       -- '' for alerts about the org as a whole
  state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
  first_seen      INTEGER NOT NULL,
  last_seen       INTEGER NOT NULL,
  count           INTEGER NOT NULL DEFAULT 1,
  detail          TEXT
);
-- One open alert per cause and key.
CREATE UNIQUE INDEX alerts_open_once ON alerts (org_id, kind, prefix) WHERE state = 'open';
CREATE INDEX alerts_by_org_time ON alerts (org_id, last_seen DESC, id DESC);
CREATE INDEX alerts_by_time ON alerts (last_seen);
