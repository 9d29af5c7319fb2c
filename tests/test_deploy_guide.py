"""The deploy guide (docs/deploy.md) can be followed as written: every wrangler
command in its code blocks names a subcommand and flags the pinned wrangler
accepts (each is run with `--help`), every script it runs exists, every
environment it names is configured, every database of an environment is
created and migrated, and the README links it. The offline deploy check
(scripts/deploy-check.sh) refuses an environment without its databases."""

import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import lru_cache

import pytest

from conftest import ROOT, WRANGLER

GUIDE = ROOT / "docs" / "deploy.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
# Steps the guide must cover, as subcommands.
REQUIRED = [
    ("login",), ("d1", "create"), ("secrets-store", "store", "create"), ("secrets-store", "secret", "create"),
    ("d1", "migrations", "apply"), ("deploy",), ("d1", "time-travel", "restore"), ("d1", "export"),
    ("d1", "execute"), ("rollback",),
]


def code_lines() -> list[str]:
    """The lines of the guide's fenced code blocks, continuations joined."""
    lines = []
    for block in FENCE.findall(GUIDE.read_text()):
        lines.extend(line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip())
    return lines


def command_of(line: str) -> tuple[str, list[str]] | None:
    """(program, arguments) of a shell line, past `VAR=value` assignments and `npx`."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if words[:1] == ["npx"]:
        words = words[1:]
    return (words[0], words[1:]) if words else None


def wrangler_commands() -> list[list[str]]:
    found = []
    for line in code_lines():
        cmd = command_of(line)
        if cmd and cmd[0] in ("wrangler", "node_modules/.bin/wrangler"):
            found.append(cmd[1])
    return found


@lru_cache(maxsize=None)
def help_of(words: tuple[str, ...]) -> tuple[int, str]:
    env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="true", NO_COLOR="1", FORCE_COLOR="0")
    p = subprocess.run([WRANGLER, *words, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_deploy_guide_wrangler_commands_exist_as_written():
    commands = wrangler_commands()
    assert len(commands) >= 20, f"only {len(commands)} wrangler commands found in {GUIDE}"
    problems = []
    for args in commands:
        words = []
        for a in args:
            if a.startswith("-"):
                break
            words.append(a)
        rc, text = help_of(tuple(words))
        shown = " ".join(args)
        if rc != 0:
            problems.append(f"wrangler {shown}: --help exited {rc}")
            continue
        # The help's first line is the command as wrangler knows it:
        # `wrangler d1 create <name>` = subcommand words, then positionals.
        header = next(line for line in text.splitlines() if line.strip()).split()
        assert header[0] == "wrangler", text[:200]
        sub = [w for w in header[1:] if not w.startswith(("<", "["))]
        positionals = len(header) - 1 - len(sub)
        if words[: len(sub)] != sub or len(words) - len(sub) > positionals:
            problems.append(f"wrangler {shown}: wrangler knows `{' '.join(header)}`")
            continue
        for a in args:
            flag = a.split("=", 1)[0]
            if re.fullmatch(r"--[a-z0-9-]+|-[a-z]", flag) and not re.search(rf"(^|[\s,]){re.escape(flag)}\b", text):
                problems.append(f"wrangler {shown}: no flag {flag}")
    assert not problems, "\n".join(problems)


def test_deploy_guide_covers_every_step():
    seen = {tuple(w for w in args if not w.startswith("-"))[: len(r)] for args in wrangler_commands() for r in REQUIRED}
    missing = [" ".join(r) for r in REQUIRED if r not in seen]
    assert not missing, f"the guide has no command for: {missing}"
    text = GUIDE.read_text()
    for topic in ("Secrets Store access", "CORS_PREFLIGHT_ORIGINS", "Custom domain", "Time Travel", "Upgrades",
                  "rate-limit namespaces", "First organisation"):
        assert topic.lower() in text.lower(), topic


def test_deploy_guide_scripts_and_environments_exist():
    config = (ROOT / "wrangler.toml").read_text()
    envs = set(re.findall(r"^\[env\.([a-z0-9_-]+)\]$", config, re.M))
    assert {"staging", "production"} <= envs
    for line in code_lines():
        cmd = command_of(line)
        if not cmd:
            continue
        program, args = cmd
        if program == "bash" and args and args[0].startswith("scripts/"):
            assert (ROOT / args[0]).is_file(), line
        for flag, value in zip(args, args[1:]):
            if flag in ("--env", "-e"):
                assert value in envs, line
        if "CLOUDFLARE_ENV=" in line:
            assert re.search(r"CLOUDFLARE_ENV=(\S+)", line).group(1) in envs, line


def test_readme_links_the_deploy_guide():
    assert "(docs/deploy.md)" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("broken", ["d1 crete interlog", "deploy --dry-rn", "d1 export interlog --remote --out x.sql"])
def test_deploy_guide_check_refuses_misspellings(broken, tmp_path, monkeypatch):
    """The check above is not vacuous: a misspelled subcommand or flag fails it."""
    guide = tmp_path / "deploy.md"
    guide.write_text(GUIDE.read_text() + f"\n```sh\nnpx wrangler {broken}\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "GUIDE", guide)
    with pytest.raises(AssertionError, match=re.escape(f"wrangler {broken}:")):
        test_deploy_guide_wrangler_commands_exist_as_written()


def production_d1() -> list[dict]:
    """The D1 bindings of [env.production] in wrangler.toml."""
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    return config["env"]["production"]["d1_databases"]


def guide_section(title: str) -> str:
    text = GUIDE.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def test_deploy_guide_creates_and_migrates_every_database():
    """Production binds the directory and a data shard; the guide creates each
    database, applies migrations to each binding (first deploy and upgrades)
    and covers adding a shard."""
    d1 = production_d1()
    bindings = {d["binding"] for d in d1}
    assert "DB" in bindings and any(b.startswith("DATA_") for b in bindings), bindings
    commands = [" ".join(args) for args in wrangler_commands()]
    for d in d1:
        assert f"d1 create {d['database_name']}" in commands, d
        assert any(c.startswith(f"d1 migrations apply {d['binding']} ") and "--env production" in c
                   for c in commands), d
    upgrades = guide_section("## 12. Upgrades")
    for b in bindings:
        assert f"d1 migrations apply {b} --remote" in upgrades, b
    adding = guide_section("Adding a data shard")
    for step in ("wrangler d1 create interlog-data-2", 'binding = "DATA_2"', 'migrations_dir = "migrations/data"',
                 "INTERLOG_D1_DATABASE_ID_DATA_2", "wrangler d1 migrations apply DATA_2", "wrangler deploy"):
        assert step in adding, step


def without(text: str, block: str) -> str:
    assert block in text, block
    return text.replace(block, "")


PRODUCTION_SHARD = """[[env.production.d1_databases]]
binding = "DATA_1"
database_name = "interlog-data-1"
database_id = "00000000-0000-0000-0000-000000000001"
migrations_dir = "migrations/data"
"""


@pytest.mark.parametrize("change,message", [
    (None, None),
    (lambda t: without(t, PRODUCTION_SHARD), "no data shard bound"),
    (lambda t: t.replace(PRODUCTION_SHARD, PRODUCTION_SHARD.replace("migrations/data", "migrations/directory")),
     'DATA_1 must use migrations_dir = "migrations/data"'),
    (lambda t: t.replace(PRODUCTION_SHARD, PRODUCTION_SHARD.replace('"interlog-data-1"', '"interlog"')),
     "database interlog is bound twice"),
], ids=["as_configured", "production_without_data_1", "shard_with_directory_migrations", "shard_on_the_directory"])
def test_deploy_check_refuses_an_environment_without_its_databases(change, message):
    """scripts/deploy-check.sh (run by the test command) passes the configuration
    as it is and fails it when production lacks its data shard or binds one wrong."""
    assert (ROOT / "build" / "index.js").is_file(), "the Worker must be built (scripts/build-worker.sh)"
    config = ROOT / f"wrangler.deploy-check-{os.getpid()}.local.toml"
    text = (ROOT / "wrangler.toml").read_text()
    config.write_text(change(text) if change else text)
    try:
        env = dict(os.environ, INTERLOG_WRANGLER_CONFIG=config.name, NO_COLOR="1")
        p = subprocess.run(["bash", "scripts/deploy-check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    finally:
        config.unlink(missing_ok=True)
    if message is None:
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.count("dry run ok") == 3, p.stdout
    else:
        assert p.returncode != 0, p.stdout + p.stderr
        assert message in p.stderr, p.stderr
