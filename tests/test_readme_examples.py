"""The README's examples, run against the local system.

Every fenced `bash`, `python` or `typescript` block of the README's
"Examples" section must be marked `<!-- example: NAME -->`; each marked block
runs here as an integrator would run it (bash with curl, the venv's Python,
TypeScript transpiled by the esbuild wrangler ships and run by Node), with
`INTERLOG_URL` and `INTERLOG_KEY` (the first key of a fresh org, all scopes)
in its environment. It must exit 0, and its effect is then checked through
the API. Run with a revoked key instead, every example must fail (exit
non-zero): each one checks its own outcome.

As everywhere in this suite, each run comes from a client address of its own
(`CF-Connecting-IP`, added by the runner: a curlrc for curl, a startup hook
for Python's `requests` and Node's `fetch`), so that L1's per-IP budget never
couples one test with another. The README's stated budgets are checked
against the constants in the code.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import BASE, ROOT, call, new_org, post_json, random_ip

README = ROOT / "README.md"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
LANGS = ("bash", "python", "typescript")
NAMES = ("ingest", "batch", "paging", "erasure", "erase-actor", "rotation")
MARKER = re.compile(r"^<!-- example: ([a-z0-9-]+) -->$")
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)$")


@dataclass
class Block:
    name: str | None  # the marker's name, None when unmarked
    lang: str
    code: str
    line: int


def section(text: str, title: str) -> list[str]:
    """The lines of a `## title` section of the README."""
    lines = text.splitlines()
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1:end]


def blocks(lines: list[str]) -> list[Block]:
    """Every fenced code block, with the marker on the last non-blank line before it."""
    out, i, last = [], 0, None
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence and fence.group(1):
            end = lines.index("```", i + 1)
            marker = MARKER.match(last or "")
            out.append(Block(marker.group(1) if marker else None, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                             i + 1))
            i, last = end + 1, None
            continue
        if lines[i].strip():
            last = lines[i].strip()
        i += 1
    return out


EXAMPLES = blocks(section(README.read_text(encoding="utf-8"), "Examples"))


def example(name: str, lang: str) -> Block:
    (found,) = [b for b in EXAMPLES if b.name == name and b.lang == lang]
    return found


def test_every_example_block_is_marked_and_complete():
    """No runnable block goes unexecuted; every example exists in each language."""
    unmarked = [f"README Examples block {b.line} ({b.lang})" for b in EXAMPLES if b.name is None]
    assert not unmarked, "mark these blocks with <!-- example: NAME -->: " + ", ".join(unmarked)
    assert {b.lang for b in EXAMPLES} <= set(LANGS), "examples are bash, python or typescript"
    pairs = [(b.name, b.lang) for b in EXAMPLES]
    assert len(pairs) == len(set(pairs)), "one block per example and language"
    assert set(pairs) == {(n, lang) for n in NAMES for lang in LANGS}


# Running a block ------------------------------------------------------------


@pytest.fixture(scope="module")
def hooks(tmp_path_factory) -> Path:
    """Start-up hooks that add the run's client address to every request."""
    d = tmp_path_factory.mktemp("readme-hooks")
    (d / "sitecustomize.py").write_text(
        "import os\n"
        "import requests\n"
        "_request = requests.Session.request\n"
        "def request(self, method, url, **kw):\n"
        "    kw['headers'] = {**(kw.get('headers') or {}), 'CF-Connecting-IP': os.environ['INTERLOG_CLIENT_IP']}\n"
        "    return _request(self, method, url, **kw)\n"
        "requests.Session.request = request\n"
    )
    (d / "client-ip.mjs").write_text(
        "const fetch0 = globalThis.fetch;\n"
        "globalThis.fetch = (input, init = {}) => {\n"
        "  const headers = new Headers(init.headers);\n"
        "  headers.set('CF-Connecting-IP', process.env.INTERLOG_CLIENT_IP);\n"
        "  return fetch0(input, { ...init, headers });\n"
        "};\n"
    )
    return d


def run(block: Block, key: str, hooks: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    ip = random_ip()
    env = dict(os.environ, INTERLOG_URL=BASE, INTERLOG_KEY=key, INTERLOG_CLIENT_IP=ip, **env)
    if block.lang == "bash":
        home = tmp_path / "curl-home"
        home.mkdir(exist_ok=True)
        (home / ".curlrc").write_text(f'header = "CF-Connecting-IP: {ip}"\n')
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
        env["CURL_HOME"] = str(home)
    elif block.lang == "python":
        cmd = [sys.executable, "-c", block.code]
        env["PYTHONPATH"] = str(hooks)
    else:
        source, built = tmp_path / f"{block.name}.ts", tmp_path / f"{block.name}.mjs"
        source.write_text(block.code)
        out = subprocess.run([str(ESBUILD), str(source), "--format=esm", "--platform=node", "--target=node20",
                              "--log-level=warning", f"--outfile={built}"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        cmd = ["node", "--import", (hooks / "client-ip.mjs").as_uri(), str(built)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def listed(key: str) -> list[dict]:
    r, _ = call("GET", "/v1/interactions?limit=200", key=key)
    assert r.status_code == 200, r.text
    return r.json()["interactions"]


# One test per example, in each language -------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_ingest_example_stores_one_interaction_once(lang, hooks, tmp_path):
    org = new_org(f"README ingest {lang}")
    block = example("ingest", lang)
    ok(run(block, org.key, hooks, tmp_path))
    ok(run(block, org.key, hooks, tmp_path))  # a retry with the same Idempotency-Key
    (stored,) = listed(org.key)
    assert stored["type"] == "chat.turn" and stored["actor"] == "user-42" and stored["content"] == "hello"
    assert stored["idempotency_key"] == "order-1234-confirmed"


@pytest.mark.parametrize("lang", LANGS)
def test_batch_example_sent_twice_stores_each_item_once(lang, hooks, tmp_path):
    org = new_org(f"README batch {lang}")
    block = example("batch", lang)
    first = ok(run(block, org.key, hooks, tmp_path))
    again = ok(run(block, org.key, hooks, tmp_path))
    stored = listed(org.key)
    assert sorted(i["idempotency_key"] for i in stored) == ["evt-0001", "evt-0002"]
    if lang != "bash":  # the snippets print status, created and replayed
        assert first.split()[:2] == ["201", "2"] and again.split()[:2] == ["200", "0"], (first, again)


@pytest.mark.parametrize("lang", LANGS)
def test_paging_example_lists_every_interaction_once(lang, hooks, tmp_path):
    org = new_org(f"README paging {lang}")
    made = []
    for chunk in range(2):  # 150 interactions: two pages of the example's limit of 100
        size = 100 if chunk == 0 else 50
        r = post_json("/v1/interactions/batch", org.key,
                      {"interactions": [{"type": "readme.paging", "actor": f"a{chunk}-{i}"} for i in range(size)]})
        assert r.status_code == 201, r.text
        made += [i["id"] for i in r.json()["interactions"]]
    printed = [line.split()[0] for line in ok(run(example("paging", lang), org.key, hooks, tmp_path)).splitlines()]
    assert len(printed) == len(made) and set(printed) == set(made)


@pytest.mark.parametrize("lang", LANGS)
def test_erasure_example_erases_the_interaction(lang, hooks, tmp_path):
    org = new_org(f"README erasure {lang}")
    kept, gone = (post_json("/v1/interactions", org.key, {"type": "readme.erasure"}).json()["id"] for _ in range(2))
    ok(run(example("erasure", lang), org.key, hooks, tmp_path, INTERACTION_ID=gone))
    assert call("GET", f"/v1/interactions/{gone}", key=org.key)[0].status_code == 404
    assert call("GET", f"/v1/interactions/{kept}", key=org.key)[0].status_code == 200


@pytest.mark.parametrize("lang", LANGS)
def test_erase_actor_example_erases_every_interaction_of_the_actor(lang, hooks, tmp_path):
    org = new_org(f"README erase actor {lang}")
    items = [{"type": "readme.erasure", "actor": "user-42"}] * 3 + [{"type": "readme.erasure", "actor": "user-7"}]
    assert post_json("/v1/interactions/batch", org.key, {"interactions": items}).status_code == 201
    out = ok(run(example("erase-actor", lang), org.key, hooks, tmp_path))
    assert [i["actor"] for i in listed(org.key)] == ["user-7"]
    if lang != "bash":
        assert out.split()[0] == "3", out


@pytest.mark.parametrize("lang", LANGS)
def test_rotation_example_makes_a_working_successor(lang, hooks, tmp_path):
    org = new_org(f"README rotation {lang}")
    ok(run(example("rotation", lang), org.key, hooks, tmp_path))
    r, _ = call("GET", "/v1/keys", key=org.key)  # the old key still works: its grace period
    assert r.status_code == 200, r.text
    keys = {k["prefix"]: k for k in r.json()["keys"]}
    successor = keys[org.prefix]["replaced_by"]
    assert successor and keys[successor]["scopes"] == keys[org.prefix]["scopes"] and keys[successor]["state"] == "active"
    assert keys[org.prefix]["expires_at"] is not None  # the grace period ends


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lang", LANGS)
def test_example_fails_when_the_api_refuses(name, lang, hooks, tmp_path):
    """With a revoked key every example exits non-zero (each checks its outcome)."""
    org = new_org(f"README refused {name} {lang}")
    spare = post_json("/v1/keys", org.key, {"name": "spare admin", "scopes": ["admin"]}).json()["key"]
    target = post_json("/v1/interactions", org.key, {"type": "readme.refused"}).json()["id"]
    r = call("POST", f"/v1/keys/{org.prefix}/revoke", key=spare)[0]
    assert r.status_code == 200 and r.json()["state"] == "revoked", r.text
    result = run(example(name, lang), org.key, hooks, tmp_path, INTERACTION_ID=target)
    assert result.returncode != 0, result.stdout
    assert "401" in result.stdout + result.stderr or "UNAUTHORIZED" in result.stdout + result.stderr


# The README's budgets are the code's ----------------------------------------


def number(path: str, pattern: str) -> int:
    """The constant `pattern` captures in `path` (a product such as `5 * 1024 * 1024` is multiplied out)."""
    found = re.search(pattern, (ROOT / path).read_text(encoding="utf-8"))
    assert found, f"{pattern} not in {path}"
    value = 1
    for factor in found.group(1).split("*"):
        value *= int(factor.strip().replace("_", ""))
    return value


def test_integration_budgets_are_the_codes():
    text = "\n".join(section(README.read_text(encoding="utf-8"), "Integration"))
    text = re.sub(r"\s+", " ", text)
    per_ip = number("core/src/l1.rs", r"pub const PER_IP: Tier = Tier \{[^}]*limit: (\d+)")
    per_48 = number("core/src/l1.rs", r"pub const PER_48: Tier = Tier \{[^}]*limit: (\d+)")
    per_key = number("core/src/ratelimit.rs", r"pub const L2_LIMIT: u32 = (\d+)")
    batch_items = number("core/src/interaction.rs", r"pub const MAX_BATCH_ITEMS: usize = (\d+)")
    batch_mib = number("core/src/interaction.rs", r"pub const BATCH_BODY_LIMIT: u64 = ([\d* ]+);") // 2**20
    single_mib = number("core/src/interaction.rs", r"pub const SINGLE_BODY_LIMIT: u64 = ([\d* ]+);") // 2**20
    page_max = number("core/src/listing.rs", r"pub const MAX_LIMIT: u32 = (\d+);")
    wrangler = (ROOT / "wrangler.toml").read_text(encoding="utf-8")
    assert f'name = "L1_LIMITER"\nnamespace_id = "1001"\nsimple = {{ limit = {per_ip}, period = 60 }}' in wrangler
    for stated in (f"{per_ip} requests a minute per client IP", f"{per_48} a minute per /48",
                   f"{per_key} requests a minute per key", f"up to {batch_items} interactions",
                   f"at most {batch_mib} MiB", f"at most {single_mib} MiB",
                   f"{per_ip * batch_items:,} interactions a minute", f"limit={page_max}"):
        assert stated in text, stated
    assert number("core/src/l1.rs", r"pub const L1_RETRY_AFTER_S: u64 = (\d+)") == 60
    assert "(60 after an L1 refusal" in text
