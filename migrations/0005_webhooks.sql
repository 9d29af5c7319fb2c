-- Alert lifecycle and alert delivery by webhook.
--
-- 1. alerts: the state of a finished alert is `resolved` (it was `closed`,
--    which nothing ever wrote), with when and by whom (an admin key's prefix,
--    or 'auto' when its cause ended by itself). SQLite cannot change a CHECK
--    constraint in place, so the table is rebuilt with its rows and indexes.
CREATE TABLE alerts_new (
  id              TEXT PRIMARY KEY,
  org_id          TEXT NOT NULL,
  kind            TEXT NOT NULL,
  prefix          TEXT NOT NULL DEFAULT '',
  state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
  first_seen      INTEGER NOT NULL,
  last_seen       INTEGER NOT NULL,
  count           INTEGER NOT NULL DEFAULT 1,
  detail          TEXT,
  resolved_at     INTEGER,
  resolved_by     TEXT
);
INSERT INTO alerts_new (id, org_id, kind, prefix, state, first_seen, last_seen, count, detail, resolved_at)
  SELECT id, org_id, kind, prefix, CASE state WHEN 'closed' THEN 'resolved' ELSE state END,
         first_seen, last_seen, count, detail, CASE state WHEN 'closed' THEN last_seen END
  FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE UNIQUE INDEX alerts_open_once ON alerts (org_id, kind, prefix) WHERE state = 'open';
CREATE INDEX alerts_by_org_time ON alerts (org_id, last_seen DESC, id DESC);
CREATE INDEX alerts_by_time ON alerts (last_seen);

-- 2. webhooks: an org's endpoints (at most 10, checked by the actor).
--    `secret` is the signing secret's text (`whsec_` + base64): the actor
--    needs it to sign, so it is stored as is, never returned after creation
--    or rotation. During a rotation's overlap `previous_secret` signs too,
--    until `previous_expires_at`. Deleting an endpoint deletes the row, its
--    queued deliveries and its log.
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

-- 3. webhook_outbox: one row per (event, endpoint), written in the same
--    transaction as the alert change it reports, so a delivery is never lost
--    when the actor restarts. `message_id` is the `webhook-id` header, the
--    same on every retry; `body` is the exact payload signed on every attempt.
--    States: pending (due at next_attempt_at), delivered, failed (given up).
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

-- 4. webhook_deliveries: one row per attempt (the delivery log). Bounded:
--    the actor keeps the newest 1000 per endpoint, and retention deletes
--    rows older than the alerts' period.
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
