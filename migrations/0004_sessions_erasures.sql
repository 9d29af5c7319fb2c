-- Sessions and erasure by actor (additive).

-- A session's conversation, oldest first, keyset paged (GET /v1/sessions/{session}
-- and the `session` filter of GET /v1/interactions and of the export).
CREATE INDEX interactions_by_session ON interactions (org_id, session, occurred_at, id);

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
