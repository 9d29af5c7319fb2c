-- interlog directory database (binding DB): which orgs exist, on which data
-- shard each lives, their API keys, audit rows of no org, the shards' states
-- and moves in progress. Every other row of an org lives on its data shard
-- (migrations/data/). Times are Unix milliseconds (INTEGER).

-- An org and its shard (the binding name of its data database, `DATA_…`).
-- The org's settings and usage are in the shard's own `orgs` row.
CREATE TABLE orgs (
  id              TEXT PRIMARY KEY,               -- org_<26 Crockford>
  name            TEXT NOT NULL,
  shard           TEXT NOT NULL,                  -- DATA_1, DATA_2, ...
  created_at      INTEGER NOT NULL
);
-- Placement counts the orgs of each shard.
CREATE INDEX orgs_by_shard ON orgs (shard);

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

-- Audit rows of no org (org_id NULL): unknown prefixes, L1 limits, operator
-- signature failures, shard state changes. An org's own rows are on its shard.
-- Repeated auth failures of one prefix (or client) and reason within a minute
-- share one row that counts them (count, first_at..last_at; NULL means `at`).
CREATE TABLE audit_log (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id          TEXT,                           -- NULL: no org known (e.g. unknown prefix)
  at              INTEGER NOT NULL,
  action          TEXT NOT NULL,                  -- auth.failure, shard.state_set, ...
  reason          TEXT,                           -- for auth.failure: missing, malformed, unknown_prefix, ...
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

-- A shard's state for placement; a shard without a row is open. Closed
-- shards take no new orgs; their orgs stay.
CREATE TABLE shards (
  name            TEXT PRIMARY KEY,               -- the binding name, DATA_…
  state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
  updated_at      INTEGER NOT NULL
);

-- A move of an org between shards in progress (deleted when done or rolled back).
CREATE TABLE org_moves (
  org_id          TEXT PRIMARY KEY,
  from_shard      TEXT NOT NULL,
  to_shard        TEXT NOT NULL,
  phase           TEXT NOT NULL,                  -- clearing, copying, verifying, switched, ...
  progress        TEXT NOT NULL DEFAULT '{}',     -- JSON: table, copied, verified, attempt
  started_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
