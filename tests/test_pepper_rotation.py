"""Pepper rotation, following the procedure of docs/operations.md ("Pepper
rotation") step by step: at every step, and on the deployment before it (whose
isolates still serve while the new one rolls out), every key made so far keeps
working; keys are re-hashed under the new version on use, and after the old
version is retired only keys never used during the rotation stop working."""

import json
import re
import secrets
from dataclasses import dataclass

import pytest
import requests

from conftest import ROOT, LocalServer, random_ip

V1 = "interlog-pepper"
V2 = "interlog-pepper-v2"


@dataclass(frozen=True)
class Deployment:
    """What one `wrangler deploy` of the procedure sets: the secret each pepper
    binding reads and the two version vars."""

    pepper: str
    previous: str
    version: int
    previous_version: int

    def vars(self) -> tuple[str, ...]:
        return ("--var", f"PEPPER_VERSION:{self.version}", "--var", f"PEPPER_PREVIOUS_VERSION:{self.previous_version}")


BEFORE = Deployment(V1, "interlog-pepper-previous", 1, 0)
# The deploying steps of the documented procedure, in order (step 1 creates the
# `interlog-pepper-v2` secret, step 4 waits).
STEPS = [
    ("2. announce v2", Deployment(V1, V2, 1, 2)),
    ("3. switch to v2", Deployment(V2, V1, 2, 1)),
    ("5. retire v1", Deployment(V2, V2, 2, 0)),
]


WRITTEN = set()


def config_for(d: Deployment):
    """wrangler.toml with the pepper bindings of `d`, written beside the built Worker."""
    text = (ROOT / "wrangler.toml").read_text()
    for binding, secret in (("PEPPER", d.pepper), ("PEPPER_PREVIOUS", d.previous)):
        block = re.compile(rf'(binding = "{binding}"\n(?:[^\[\n][^\n]*\n)*?secret_name = )"[^"]*"')
        text, n = block.subn(rf'\1"{secret}"', text, count=1)
        assert n == 1, binding
    text = text.replace('main = "build/index.js"', 'main = "index.js"').replace('migrations_dir = "migrations/', 'migrations_dir = "../migrations/')
    # Paths in a config are relative to it: it is written into build/.
    text = text.replace('directory = "console/dist"', 'directory = "../console/dist"')
    text = re.sub(r"\[build\]\n(?:[^\[\n][^\n]*\n)*", "", text)
    cfg = ROOT / "build" / f"wrangler.pepper-{d.pepper}-{d.previous}-{d.version}-{d.previous_version}.toml"
    cfg.write_text(text)
    WRITTEN.add(cfg)
    return cfg


def deploy(server: LocalServer, d: Deployment) -> None:
    server.stop()
    server.config = config_for(d)
    server.start(*d.vars())


def mint_by_api(server: LocalServer, admin_key: str) -> str:
    r = requests.post(server.url + "/v1/keys", timeout=30, data=json.dumps({"name": "mid-rotation", "scopes": ["read"]}),
                      headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json",
                               "CF-Connecting-IP": random_ip()})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def assert_all_work(server: LocalServer, keys: dict, when: str) -> None:
    failed = {name: s for name, key in keys.items() if (s := server.get("/v1/interactions", key=key).status_code) != 200}
    assert not failed, f"{when}: valid keys refused {failed}"


@pytest.mark.claim("owasp.api2", "posture.key-storage", "threat.db-key-theft", "threat.pepper-lockout")
def test_pepper_rotation_old_keys_work_and_are_rehashed():
    s2 = secrets.token_hex(32)
    server = LocalServer("pepper", config=config_for(BEFORE))
    try:
        value = {V1: server.pepper, V2: s2}
        server.start(*BEFORE.vars())
        org = server.admin("create-org", "--name", "Pepper org")
        admin_key = org["key"]
        idle = server.admin("create-key", "--org", org["org_id"], "--scopes", "read")["key"]
        keys = {"admin key (v1)": admin_key}
        assert_all_work(server, keys, "before")

        # Step 1: the new pepper in a secret of its own; nothing reads it yet.
        server.create_secret(V2, s2)
        previous = BEFORE
        for step, d in STEPS:
            deploy(server, d)
            assert_all_work(server, keys, step)
            keys[f"{step}: minted by the API"] = mint_by_api(server, admin_key)
            made = server.admin("create-key", "--org", org["org_id"], "--scopes", "read",
                                pepper=value[d.pepper], version=str(d.version))
            keys[f"{step}: made by the operator"] = made["key"]
            assert_all_work(server, keys, step)
            # While the deployment rolls out, isolates of the previous one still serve.
            deploy(server, previous)
            assert_all_work(server, keys, f"{step}, on the deployment before it")
            previous = d

        deploy(server, STEPS[-1][1])
        assert_all_work(server, keys, "after the rotation")
        prefixes = ", ".join(f"'{k[8:16]}'" for k in keys.values())
        rows = server.d1(f"SELECT prefix, pepper_version FROM api_keys WHERE prefix IN ({prefixes})")
        assert len(rows) == len(keys) and {r["pepper_version"] for r in rows} == {2}, rows
        # A key never used during the rotation kept its v1 hash and stops working once v1 is retired.
        assert server.get("/v1/interactions", key=idle).status_code == 401
    finally:
        server.stop()
        for cfg in WRITTEN:
            cfg.unlink(missing_ok=True)
