"""Shared helpers for the integration suite.

The suite drives the real local system (`wrangler dev` started by
scripts/test.sh) over HTTP, creates orgs and keys with the operator command and
reads D1 through `wrangler d1 execute --local`, exactly as an operator would.

D1 is sharded: the directory (binding DB: orgs and their shard, api_keys,
org-less audit rows) and the data shards (DATA_1, DATA_2: everything else of
an org). `d1(sql, db=…)` runs on one database; `org_d1(org_id, sql)` runs on
the shard the directory places the org on.
"""

import itertools
import json
import os
import random
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("INTERLOG_URL", "http://127.0.0.1:8787")
PERSIST = os.environ.get("INTERLOG_PERSIST", str(ROOT / ".interlog-dev" / "persist"))
PEPPER = os.environ.get("INTERLOG_PEPPER", "")
ADMIN = os.environ.get("INTERLOG_ADMIN", str(ROOT / "target" / "debug" / "interlog-admin"))
WRANGLER = str(ROOT / "node_modules" / ".bin" / "wrangler")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
FLOOR_S = 0.080


def d1_bindings(config: Path = ROOT / "wrangler.toml") -> list[str]:
    """The local D1 bindings of a wrangler config: DB first, then the shards."""
    with open(config, "rb") as f:
        return [d["binding"] for d in tomllib.load(f).get("d1_databases", [])]


# The data shards of the local configuration (DATA_1, DATA_2).
SHARDS = [b for b in d1_bindings() if b.startswith("DATA_")]


def admin(*args: str) -> dict:
    """Runs the operator command; it must print exactly one JSON line."""
    env = dict(os.environ, INTERLOG_PEPPER=PEPPER)
    out = subprocess.run(
        [ADMIN, *args, "--persist-to", PERSIST], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    return json.loads(lines[0])


def d1(sql: str, persist: str | None = None, db: str = "DB", config: Path | None = None) -> list:
    """Runs SQL against one local D1 database (`db`: the binding, "DB" the
    directory, "DATA_1"/"DATA_2" a shard) and returns the result rows. Retries
    when the running server holds the database busy for a moment."""
    env = dict(os.environ, CI="true", WRANGLER_SEND_METRICS="false")
    cfg = ["--config", str(config)] if config else []
    for attempt in range(10):
        out = subprocess.run(
            [WRANGLER, "d1", "execute", db, *cfg, "--local", "--persist-to", persist or PERSIST, "--json",
             "--command", sql],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        # SQLITE_BUSY, or SQLITE_BUSY_SNAPSHOT while the server writes under load.
        if out.returncode == 0 or "SQLITE_BUSY" not in out.stdout + out.stderr:
            break
        time.sleep(min(0.5 * (attempt + 1), 2) + random.random() / 2)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)[0]["results"]


def shard_of(org_id: str, persist: str | None = None, config: Path | None = None) -> str:
    """The data shard (binding) the directory places `org_id` on."""
    rows = d1(f"SELECT shard FROM orgs WHERE id = {sql_str(org_id)}", persist, config=config)
    assert len(rows) == 1, f"{org_id} is not in the directory: {rows}"
    return rows[0]["shard"]


def org_d1(org_id: str, sql: str, persist: str | None = None, config: Path | None = None) -> list:
    """Runs SQL on the data shard of `org_id` (its interactions, audit rows,
    alerts, rate_limits, erasures, webhooks, settings and usage)."""
    return d1(sql, persist, db=shard_of(org_id, persist, config), config=config)


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def random_ip() -> str:
    """A distinct client address per call (sent as CF-Connecting-IP, which the
    local runtime passes through), so per-IP limits never couple tests."""
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def random_key() -> str:
    return "ck_live_" + "".join(random.choice(CROCKFORD) for _ in range(26))


@dataclass
class Org:
    id: str
    key: str

    @property
    def prefix(self) -> str:
        return self.key[len("ck_live_"):][:8]


# `new_org`'s default: the shards in turn. Naming the shard spares the
# operator command its placement read (one `wrangler d1 execute` of the three
# of a placed org), and the suite's orgs still spread over every shard.
IN_TURN = "in turn"
_turn = itertools.count()


def new_org(name: str, shard: str | None = IN_TURN) -> Org:
    """A new org with its admin key: on `shard` when named, placed by the
    operator command's rule when None, by default on the shards in turn."""
    if shard == IN_TURN:
        shard = SHARDS[next(_turn) % len(SHARDS)]
    d = admin("create-org", "--name", name, *(["--shard", shard] if shard else []))
    return Org(d["org_id"], d["key"])


def call(method: str, path: str, key: str | None = None, headers: dict | None = None, ip: str | None = None, **kw):
    """One HTTP call; returns (response, seconds elapsed at the client)."""
    h = {"CF-Connecting-IP": ip or random_ip()}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    t0 = time.perf_counter()
    r = requests.request(method, BASE + path, headers=h, timeout=30, **kw)
    return r, time.perf_counter() - t0


@pytest.fixture(scope="session")
def org_a() -> Org:
    return new_org("Org A")


@pytest.fixture(scope="session")
def org_b() -> Org:
    return new_org("Org B")


def scoped_key(org: Org, scopes: str) -> str:
    return admin("create-key", "--org", org.id, "--scopes", scopes, "--name", f"{scopes} key")["key"]


@dataclass
class Keys:
    org: Org
    ingest: str
    read: str
    admin: str


@pytest.fixture(scope="session")
def keys_a(org_a) -> Keys:
    return Keys(org_a, scoped_key(org_a, "ingest"), scoped_key(org_a, "read"), org_a.key)


@pytest.fixture(scope="session")
def keys_b(org_b) -> Keys:
    return Keys(org_b, scoped_key(org_b, "ingest"), scoped_key(org_b, "read"), org_b.key)


def post_json(path: str, key: str, payload, headers: dict | None = None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return call("POST", path, key=key, headers=h, data=data)[0]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """A second, separately managed local system (own state folder, pepper,
    port), for tests that stop and start a server or change its config."""

    def __init__(self, name: str, config: Path | None = None):
        import secrets
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix=f"interlog-{name}-"))
        self.persist = str(self.dir / "persist")
        self.config = config
        self.pepper = secrets.token_hex(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        # The directory and every data shard of the config (DB, DATA_1, DATA_2).
        for binding in d1_bindings(config or ROOT / "wrangler.toml"):
            self.wrangler("d1", "migrations", "apply", binding, "--local")
        self.create_secret("interlog-pepper", self.pepper)

    def wrangler(self, *args: str) -> str:
        env = dict(os.environ, CI="true", WRANGLER_SEND_METRICS="false")
        cfg = ["--config", str(self.config)] if self.config else []
        out = subprocess.run([WRANGLER, *args, *cfg, "--persist-to", self.persist], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def create_secret(self, name: str, value: str) -> None:
        store = re.search(r'store_id = "([^"]+)"', (ROOT / "wrangler.toml").read_text()).group(1)
        self.wrangler("secrets-store", "secret", "create", store, "--name", name, "--value", value, "--scopes", "workers")

    def start(self, *dev_args: str) -> "LocalServer":
        log = open(self.dir / "wrangler.log", "a")
        env = dict(os.environ, INTERLOG_PREBUILT="1", CI="true", WRANGLER_SEND_METRICS="false")
        cfg = ["--config", str(self.config)] if self.config else []
        self.proc = subprocess.Popen(
            [WRANGLER, "dev", *cfg, "--ip", "127.0.0.1", "--port", str(self.port), "--inspector-port", str(free_port()),
             "--persist-to", self.persist, "--show-interactive-dev-session=false", *dev_args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for _ in range(240):
            try:
                if requests.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            assert self.proc.poll() is None, (self.dir / "wrangler.log").read_text()[-3000:]
            time.sleep(0.5)
        raise AssertionError("local server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
        self.proc = None

    def admin(self, *args: str, pepper: str | None = None, version: str = "1") -> dict:
        env = dict(os.environ, INTERLOG_PEPPER=pepper or self.pepper, INTERLOG_PEPPER_VERSION=version)
        out = subprocess.run([ADMIN, *args, "--persist-to", self.persist], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def d1(self, sql: str, db: str = "DB") -> list:
        """SQL on one of this server's databases (binding `db`)."""
        return d1(sql, persist=self.persist, db=db, config=self.config)

    def org_d1(self, org_id: str, sql: str) -> list:
        """SQL on the data shard of `org_id` in this server's state."""
        return org_d1(org_id, sql, persist=self.persist, config=self.config)

    def get(self, path: str, key: str | None = None, **kw):
        h = {"CF-Connecting-IP": random_ip()}
        if key:
            h["Authorization"] = f"Bearer {key}"
        return requests.get(self.url + path, headers=h, timeout=30, **kw)


def wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.25):
    """Polls `predicate` until it returns a truthy value, which is returned;
    fails the test with `what` when `timeout_s` passes first. For waiting on
    an observable event (a row, a state change) instead of a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def pytest_configure(config):
    # The claims of docs/trust a test proves (checked by tests/test_trust_docs.py).
    config.addinivalue_line("markers", "claim(*ids): claim ids of docs/trust that this test proves")


def resolve_ref(spec: dict, node):
    """Follows local `$ref`s (`#/components/...`) of `spec` one level at a time."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node

