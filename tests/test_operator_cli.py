"""The operator command (`interlog-admin`) and its signed call to the Worker.

- `--help` works for the command and every subcommand; a usage error exits 2
  with the usage, a failure exits 1, and `--json` makes a failure one JSON
  line on stderr.
- The listings show what the fixtures created; every change is written with
  an audit row whose `detail.actor` is `operator`.
- `revoke-key` reaches the running actor: a key the front has cached and the
  actor holds fails on its very next request.
- `POST /v1/operator/reconcile` refuses a missing, malformed, stale or
  wrongly signed call with the uniform 401 and changes nothing. The
  signatures here are made independently of the server's code (Python's
  hmac), from the documented recipe.
- Shards: `list-shards` shows the config's data shards with their state and
  org counts; a shard closed with `set-shard` gets no new org (placed or
  asked for); `create-org --shard` writes the directory row and the org's
  data row on that shard only; `move-org` ends with the Worker's own error
  for an unknown org or a wrong pepper. (The move itself: test_shards.py.)
"""

import hashlib
import hmac
import json
import os
import subprocess
import time

import pytest

from conftest import (ADMIN, BASE, FLOOR_S, PEPPER, PERSIST, ROOT, SHARDS, admin, call, d1, new_org, shard_of,
                      sql_str)

SUBCOMMANDS = ["create-org", "create-key", "set-quota", "list-orgs", "show-org", "list-keys", "revoke-key",
               "list-shards", "set-shard", "move-org"]
RECONCILE = "/v1/operator/reconcile"
ABSENT_ORG = "org_" + "0" * 26


def run_admin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The operator command as it is (no `--persist-to` added), any outcome."""
    full = dict(os.environ, INTERLOG_PEPPER=PEPPER, INTERLOG_URL=BASE)
    full.update(env or {})
    return subprocess.run([ADMIN, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)


def sign(body: bytes, t_ms: int | None = None, pepper: str = PEPPER) -> str:
    """`x-interlog-operator` as docs/openapi.yaml describes it."""
    t_ms = int(time.time() * 1000) if t_ms is None else t_ms
    k_op = hmac.new(pepper.encode(), b"interlog/derive/operator/v1", hashlib.sha256).digest()
    mac = hmac.new(k_op, f"{t_ms}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t_ms},v1={mac}"


def reconcile(body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["x-interlog-operator"] = signature
    return call("POST", RECONCILE, headers=headers, data=body)


def use(key: str, times: int = 1) -> list[int]:
    return [call("GET", "/v1/interactions", key=key)[0].status_code for _ in range(times)]


def audit(admin_key: str) -> list[dict]:
    r, _ = call("GET", "/v1/audit-log?limit=200", key=admin_key)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_help_exits_0_for_the_command_and_every_subcommand():
    top = run_admin("--help")
    assert top.returncode == 0, top.stderr
    assert "Usage: interlog-admin" in top.stdout and "Exit codes:" in top.stdout
    for sub in SUBCOMMANDS:
        assert sub in top.stdout
        out = run_admin(sub, "--help")
        assert out.returncode == 0, (sub, out.stderr)
        assert f"Usage: interlog-admin {sub}" in out.stdout and "2  usage" in out.stdout, sub


def test_unknown_flag_exits_2_with_usage():
    for args in (["create-org", "--name", "x", "--bogus"], ["list-keys"], ["frobnicate"], []):
        out = run_admin(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Usage: interlog-admin" in out.stderr, args
        assert out.stdout == "", args


def test_json_errors_are_one_line_on_stderr():
    usage = run_admin("list-orgs", "--bogus", "--json")
    assert usage.returncode == 2 and usage.stdout == ""
    (line,) = usage.stderr.splitlines()
    assert json.loads(line)["error"]["code"] == "USAGE"
    for args, code in [(["show-org", "--org", ABSENT_ORG], "NOT_FOUND"),
                       (["create-key", "--org", "not-an-org"], "VALIDATION_FAILED"),
                       (["revoke-key", "--org", ABSENT_ORG, "--prefix", "0000ZZZZ"], "NOT_FOUND")]:
        out = run_admin(*args, "--json", "--persist-to", PERSIST)
        assert out.returncode == 1 and out.stdout == "", (args, out.stderr)
        (line,) = out.stderr.splitlines()
        error = json.loads(line)["error"]
        assert error["code"] == code and error["message"], (args, error)
    plain = run_admin("show-org", "--org", ABSENT_ORG, "--persist-to", PERSIST)
    assert plain.returncode == 1 and plain.stderr.startswith("interlog-admin: no org")


def test_listings_show_the_org_the_fixture_created():
    org = new_org("Operator listing org")
    shard = shard_of(org.id)
    orgs = admin("list-orgs", "--limit", "1000")["orgs"]
    (listed,) = [o for o in orgs if o["org_id"] == org.id]
    assert listed["name"] == "Operator listing org" and listed["usage"]["rows"] == 0
    assert listed["shard"] == shard
    shown = admin("show-org", "--org", org.id)
    assert (shown["org_id"], shown["name"], shown["allowed_origins"]) == (org.id, "Operator listing org", [])
    assert shown["shard"] == shard and "move" not in shown
    assert shown["keys"] == {"total": 1, "live": 1}
    reader = admin("create-key", "--org", org.id, "--scopes", "read", "--name", "reader")
    keys = admin("list-keys", "--org", org.id)["keys"]
    assert [k["prefix"] for k in keys] == [reader["prefix"], org.prefix], "newest first"
    assert keys[0]["scopes"] == ["read"] and keys[0]["state"] == "active"
    text = json.dumps(keys)
    assert "ck_live_" not in text and PEPPER not in text
    assert admin("show-org", "--org", org.id)["keys"] == {"total": 2, "live": 2}


@pytest.mark.claim("threat.operator-endpoint")
def test_every_operator_change_is_audited_with_actor_operator():
    org = new_org("Operator audit org")
    made = admin("create-key", "--org", org.id, "--scopes", "ingest", "--name", "audited")
    admin("set-quota", "--org", org.id, "--rows", "5000", "--bytes", "default")
    revoked = admin("revoke-key", "--org", org.id, "--prefix", made["prefix"])
    assert revoked["revoked_now"] is True and revoked["key"]["state"] == "revoked"
    again = admin("revoke-key", "--org", org.id, "--prefix", made["prefix"])
    assert again["revoked_now"] is False, "idempotent"
    entries = audit(org.key)
    by_action: dict[str, list[dict]] = {}
    for e in entries:
        by_action.setdefault(e["action"], []).append(e)
    assert len(by_action["org.created"]) == 1
    assert by_action["org.created"][0]["detail"] == {"actor": "operator", "name": "Operator audit org"}
    assert sorted(e["prefix"] for e in by_action["key.created"]) == sorted([org.prefix, made["prefix"]])
    assert by_action["org.quota_set"][0]["detail"] == {"actor": "operator", "quota_rows": 5000,
                                                       "quota_bytes": "default"}
    assert [e["prefix"] for e in by_action["key.revoked"]] == [made["prefix"]], "one row, not one per call"
    for e in by_action["org.created"] + by_action["key.created"] + by_action["org.quota_set"] + by_action["key.revoked"]:
        assert e["detail"]["actor"] == "operator", e
        assert e["ip"] is None and e["request_id"] is None, e


@pytest.mark.claim("threat.operator-endpoint")
def test_revoke_key_with_the_cli_makes_the_next_request_401():
    org = new_org("Operator revoke org")
    key = admin("create-key", "--org", org.id, "--scopes", "read", "--name", "to revoke")
    # Used first, so the front's directory cache has its row and the actor holds it.
    assert use(key["key"], 5) == [200] * 5
    out = admin("revoke-key", "--org", org.id, "--prefix", key["prefix"])
    assert out["actor_told"] is True and "warning" not in out
    r, elapsed = call("GET", "/v1/interactions", key=key["key"])
    assert r.status_code == 401 and elapsed >= FLOOR_S
    assert r.json()["error"]["message"] == "invalid or missing API key"
    assert use(org.key) == [200], "the org's other keys keep working"
    # The actor now answers from its own memory: the key is revoked there.
    listed = {k["prefix"]: k for k in call("GET", "/v1/keys", key=org.key)[0].json()["keys"]}
    assert listed[key["prefix"]]["state"] == "revoked"


def test_revoke_key_without_a_url_warns_that_the_actor_is_not_told():
    org = new_org("Operator no-url org")
    key = admin("create-key", "--org", org.id, "--scopes", "read", "--name", "quiet")
    out = run_admin("revoke-key", "--org", org.id, "--prefix", key["prefix"], "--persist-to", PERSIST,
                    env={"INTERLOG_URL": ""})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["actor_told"] is False and "restart" in result["warning"]
    assert d1(f"SELECT state FROM api_keys WHERE prefix = {sql_str(key['prefix'])}")[0]["state"] == "revoked"


def revoke_in_d1_only(org, prefix: str) -> None:
    """A revocation the actor is not told of (as an older operator command did)."""
    now = int(time.time() * 1000)
    d1(f"UPDATE api_keys SET state = 'revoked', revoked_at = {now} WHERE org_id = {sql_str(org.id)} "
       f"AND prefix = {sql_str(prefix)}")


@pytest.mark.claim("threat.operator-endpoint")
def test_reconcile_with_a_wrong_or_stale_signature_is_401_and_changes_nothing():
    org = new_org("Operator reconcile org")
    key = admin("create-key", "--org", org.id, "--scopes", "read", "--name", "held")
    assert use(key["key"], 3) == [200] * 3
    revoke_in_d1_only(org, key["prefix"])
    body = json.dumps({"org_id": org.id}, separators=(",", ":")).encode()
    now = int(time.time() * 1000)
    refused = {
        "missing": None,
        "malformed": "t=abc,v1=00",
        "wrong pepper": sign(body, pepper="x" * 64),
        "other body": sign(json.dumps({"org_id": ABSENT_ORG}).encode()),
        "stale": sign(body, now - 6 * 60 * 1000),
        "future": sign(body, now + 6 * 60 * 1000),
    }
    bodies = set()
    for what, signature in refused.items():
        r, elapsed = reconcile(body, signature)
        assert r.status_code == 401, (what, r.text)
        assert elapsed >= FLOOR_S, what
        assert r.headers["www-authenticate"] == 'Bearer realm="interlog"'
        envelope = r.json()["error"]
        bodies.add((envelope["code"], envelope["message"], tuple(sorted(envelope))))
    assert bodies == {("UNAUTHORIZED", "invalid or missing API key", ("code", "message", "request_id"))}
    # Nothing changed: the actor still holds the key as live.
    assert use(key["key"]) == [200]
    # A valid signature, sent twice (a replay only reconciles again).
    signature = sign(body)
    assert reconcile(body, signature)[0].status_code == 204
    assert reconcile(body, signature)[0].status_code == 204
    assert use(key["key"]) == [401]


def test_reconcile_answers_404_and_400_only_to_a_valid_signature():
    absent = json.dumps({"org_id": ABSENT_ORG}).encode()
    r, _ = reconcile(absent, sign(absent))
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    extra = json.dumps({"org_id": ABSENT_ORG, "more": 1}).encode()
    assert reconcile(extra, sign(extra))[0].status_code == 400
    assert reconcile(extra, None)[0].status_code == 401
    r, _ = call("POST", RECONCILE, headers={"Content-Type": "text/plain"}, data=b"{}")
    assert r.status_code == 415
    big = b'{"org_id":"' + b"x" * 2000 + b'"}'
    r, _ = call("POST", RECONCILE, headers={"Content-Type": "application/json"}, data=big)
    assert r.status_code == 413



# --- shards -----------------------------------------------------------------

# The tables of an org's data on its shard.
DATA_TABLES = {"orgs", "interactions", "rate_limits", "audit_log", "alerts", "erasures", "webhooks",
               "webhook_outbox", "webhook_deliveries"}


def shard_counts() -> dict[str, int]:
    """Orgs per shard, as the directory places them."""
    return {r["shard"]: r["n"] for r in d1("SELECT shard, COUNT(*) AS n FROM orgs GROUP BY shard")}


def shard_states() -> dict[str, str]:
    return {r["name"]: r["state"] for r in d1("SELECT name, state FROM shards")}


def data_rows(org_id: str) -> dict[str, list]:
    """The org's data row on every shard (it must be on exactly one)."""
    return {s: d1(f"SELECT id, name FROM orgs WHERE id = {sql_str(org_id)}", db=s) for s in SHARDS}


def shard_audit(shard: str) -> list[dict]:
    return d1("SELECT action, detail FROM audit_log WHERE org_id IS NULL AND action = 'shard.state_set' "
              f"AND detail LIKE {sql_str('%' + shard + '%')} ORDER BY id", db="DB")


def test_list_shards_shows_every_configured_shard_with_its_database_state_and_orgs():
    import tomllib

    with open(ROOT / "wrangler.toml", "rb") as f:
        databases = {d["binding"]: d["database_name"] for d in tomllib.load(f)["d1_databases"]}
    listed = admin("list-shards")["shards"]
    counts, states = shard_counts(), shard_states()
    assert [s["name"] for s in listed] == SHARDS and len(SHARDS) >= 2
    for s in listed:
        assert s == {"name": s["name"], "database": databases[s["name"]], "state": states.get(s["name"], "open"),
                     "orgs": counts.get(s["name"], 0)}, s


def test_a_closed_shard_gets_no_new_org_and_refuses_one_asked_for():
    # The shard the rule would pick next (fewest orgs, then first by name) is closed.
    counts = shard_counts()
    closed = min(SHARDS, key=lambda s: (counts.get(s, 0), s))
    other = next(s for s in SHARDS if s != closed)
    before = len(shard_audit(closed))
    out = admin("set-shard", closed, "--closed")
    try:
        assert (out["name"], out["state"], out["changed"]) == (closed, "closed", True)
        assert [s["state"] for s in admin("list-shards")["shards"] if s["name"] == closed] == ["closed"]
        again = admin("set-shard", closed, "--closed")
        assert again["changed"] is False
        rows = shard_audit(closed)
        assert len(rows) == before + 1, "one audit row per change, none for a repeat"
        assert json.loads(rows[-1]["detail"]) == {"actor": "operator", "shard": closed, "state": "closed"}
        # Though it holds the fewest orgs, nothing is placed on it.
        placed = [new_org(f"Placed while {closed} is closed {i}", shard=None) for i in range(3)]
        for org in placed:
            assert shard_of(org.id) != closed
            rows = data_rows(org.id)
            assert rows[closed] == [] and sum(len(r) for r in rows.values()) == 1, rows
        # Asking for it is refused and writes nothing.
        orgs_before = shard_counts()
        refused = run_admin("create-org", "--name", "Refused org", "--shard", closed, "--persist-to", PERSIST, "--json")
        assert refused.returncode == 1 and refused.stdout == "", refused.stderr
        error = json.loads(refused.stderr)["error"]
        assert error["code"] == "CONFLICT" and f"shard {closed} is closed" in error["message"], error
        assert d1("SELECT id FROM orgs WHERE name = 'Refused org'") == []
        assert d1("SELECT id FROM orgs WHERE name = 'Refused org'", db=closed) == []
        assert shard_counts() == orgs_before
        # The other shards still take orgs when asked for.
        assert shard_of(new_org("Still placed", shard=other).id) == other
    finally:
        reopened = admin("set-shard", closed, "--open")
    assert (reopened["state"], reopened["changed"]) == ("open", True)
    assert json.loads(shard_audit(closed)[-1]["detail"])["state"] == "open"


def test_create_org_with_shard_writes_the_directory_row_and_the_data_row_on_that_shard():
    for shard in SHARDS:
        out = admin("create-org", "--name", f"Explicit {shard}", "--shard", shard)
        assert out["shard"] == shard and out["key"].startswith("ck_live_")
        org_id = out["org_id"]
        (entry,) = d1(f"SELECT name, shard, created_at FROM orgs WHERE id = {sql_str(org_id)}")
        assert (entry["name"], entry["shard"]) == (f"Explicit {shard}", shard)
        assert shard_of(org_id) == shard
        rows = data_rows(org_id)
        assert rows[shard] == [{"id": org_id, "name": f"Explicit {shard}"}]
        assert all(r == [] for s, r in rows.items() if s != shard), rows
        actions = sorted(r["action"] for r in d1(f"SELECT action FROM audit_log WHERE org_id = {sql_str(org_id)}",
                                                 db=shard))
        assert actions == ["key.created", "org.created"]
        assert d1(f"SELECT COUNT(*) AS n FROM audit_log WHERE org_id = {sql_str(org_id)}")[0]["n"] == 0, \
            "an org's audit rows are on its shard, not in the directory"
        # The org works through the API on its shard.
        r, _ = call("GET", "/v1/org", key=out["key"])
        assert r.status_code == 200, r.text
        assert admin("show-org", "--org", org_id)["shard"] == shard


def test_create_org_places_on_the_open_shard_with_the_fewest_orgs():
    counts, states = shard_counts(), shard_states()
    open_shards = [s for s in SHARDS if states.get(s, "open") == "open"]
    expected = min(open_shards, key=lambda s: (counts.get(s, 0), s))
    org = new_org("Placed by the rule", shard=None)
    assert shard_of(org.id) == expected
    assert shard_counts()[expected] == counts.get(expected, 0) + 1


def test_unknown_shards_are_refused_with_exit_1():
    for args in (["create-org", "--name", "Nowhere", "--shard", "DATA_99"], ["set-shard", "DATA_99", "--closed"]):
        out = run_admin(*args, "--persist-to", PERSIST, "--json")
        assert out.returncode == 1 and out.stdout == "", (args, out.stderr)
        error = json.loads(out.stderr)["error"]
        assert error["code"] == "NOT_FOUND" and "DATA_99" in error["message"], (args, error)
    assert d1("SELECT id FROM orgs WHERE name = 'Nowhere'") == []
    assert d1("SELECT name FROM shards WHERE name = 'DATA_99'") == []


def test_bad_usage_of_the_shard_commands_exits_2():
    cases = [
        (["set-shard", SHARDS[0]], {}),
        (["set-shard", SHARDS[0], "--open", "--closed"], {}),
        (["set-shard", "data_1", "--open"], {}),
        (["set-shard", "--closed"], {}),
        (["list-shards", "extra"], {}),
        (["create-org", "--name", "Bad shard", "--shard", "DB"], {}),
        (["move-org", "--org", ABSENT_ORG], {}),
        (["move-org", "--org", ABSENT_ORG, "--to", "DATA-2"], {}),
        (["move-org", "--org", ABSENT_ORG, "--to", SHARDS[-1], "--bogus"], {}),
        (["move-org", "--org", ABSENT_ORG, "--to", SHARDS[-1]], {"INTERLOG_URL": ""}),
    ]
    for args, env in cases:
        out = run_admin(*args, "--persist-to", PERSIST, env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and "--help" in out.stderr and out.stdout == "", (args, out.stderr)
    assert d1("SELECT id FROM orgs WHERE name = 'Bad shard'") == []


def test_move_org_ends_with_the_workers_error_for_an_unknown_org_or_a_wrong_pepper():
    org = new_org("Operator move refusals")
    target = next(s for s in SHARDS if s != shard_of(org.id))
    for args, env, code in [
        (["--org", ABSENT_ORG, "--to", target], {}, "NOT_FOUND"),
        (["--org", org.id, "--to", target], {"INTERLOG_PEPPER": "x" * 64}, "UNAUTHORIZED"),
        (["--org", org.id, "--to", "DATA_99"], {}, "VALIDATION_FAILED"),
    ]:
        out = run_admin("move-org", *args, "--json", env=env)
        assert out.returncode == 1 and out.stdout == "", (args, out.stderr)
        error = json.loads(out.stderr.splitlines()[-1])["error"]
        assert error["code"] == code and error["message"], (args, error)
    # Nothing moved, nothing started.
    assert shard_of(org.id) != target
    assert d1(f"SELECT org_id FROM org_moves WHERE org_id = {sql_str(org.id)}") == []


def test_show_org_shows_a_move_in_progress():
    org = new_org("Operator move shown")
    source = shard_of(org.id)
    target = next(s for s in SHARDS if s != source)
    now = int(time.time() * 1000)
    progress = json.dumps({"table": 0, "copied": {"interactions": 200}, "attempt": 2})
    # A move row as the Worker keeps it between steps (no step runs for this org).
    d1("INSERT INTO org_moves (org_id, from_shard, to_shard, phase, progress, started_at, updated_at) VALUES "
       f"({sql_str(org.id)}, {sql_str(source)}, {sql_str(target)}, 'copying', {sql_str(progress)}, {now}, {now})")
    try:
        shown = admin("show-org", "--org", org.id)
    finally:
        d1(f"DELETE FROM org_moves WHERE org_id = {sql_str(org.id)}")
    assert shown["shard"] == source
    move = shown["move"]
    assert (move["from"], move["to"], move["phase"]) == (source, target, "copying")
    assert move["table"] in DATA_TABLES, move  # the first table copied
    assert (move["copied"], move["attempt"], move["done"]) == ({"interactions": 200}, 2, False)
    assert move["started_at"].endswith("Z")
    assert "move" not in admin("show-org", "--org", org.id)
