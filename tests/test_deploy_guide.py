"""The deploy guide (docs/deploy.md) can be followed as written: every wrangler
command in its code blocks names a subcommand and flags the pinned wrangler
accepts (each is run with `--help`), every script it runs exists, every
environment it names is configured, and the README links it."""

import os
import re
import shlex
import subprocess
import sys
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
