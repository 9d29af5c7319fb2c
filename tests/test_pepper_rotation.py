"""Pepper rotation: keys hashed under pepper v1 keep working after v2 becomes
current, and are re-hashed under v2 on use."""

import re
import secrets

from conftest import ROOT, LocalServer


def rotated_config():
    """wrangler.toml with PEPPER → the v2 secret and PEPPER_PREVIOUS → the v1 one."""
    text = (ROOT / "wrangler.toml").read_text()
    text = text.replace('secret_name = "interlog-pepper"\n', 'secret_name = "interlog-pepper-v2"\n', 1)
    text = text.replace('secret_name = "interlog-pepper-previous"', 'secret_name = "interlog-pepper"')
    text = text.replace('main = "build/index.js"', 'main = "index.js"').replace('migrations_dir = "migrations"', 'migrations_dir = "../migrations"')
    text = re.sub(r"\[build\]\n(?:[^\[\n][^\n]*\n)*", "", text)
    cfg = ROOT / "build" / "wrangler.pepper-v2.toml"
    cfg.write_text(text)
    return cfg


def test_pepper_rotation_old_keys_work_and_are_rehashed():
    cfg = rotated_config()
    server = LocalServer("pepper", config=cfg)
    try:
        # Era 1: only v1 (the server runs the rotated config, but v2 is not current yet).
        server.create_secret("interlog-pepper-v2", secrets.token_hex(32))
        v1_only = ("--var", "PEPPER_VERSION:1", "--var", "PEPPER_PREVIOUS_VERSION:0")
        # In era 1 the PEPPER binding must hold v1: use the default config for it.
        plain = LocalServer.__new__(LocalServer)
        plain.__dict__.update(server.__dict__, config=None, proc=None)
        plain.start(*v1_only)
        org = plain.admin("create-org", "--name", "Pepper org")
        used_key = org["key"]
        idle = plain.admin("create-key", "--org", org["org_id"], "--scopes", "read")
        assert plain.get("/v1/org", key=used_key).status_code == 200
        plain.stop()

        # Era 2: v2 current, v1 previous.
        server.start("--var", "PEPPER_VERSION:2", "--var", "PEPPER_PREVIOUS_VERSION:1")
        assert server.get("/v1/org", key=used_key).status_code == 200
        row = server.d1(f"SELECT pepper_version FROM api_keys WHERE prefix = '{org['key'][8:16]}'")[0]
        assert row["pepper_version"] == 2
        r = server.get("/v1/keys", key=used_key)
        assert r.status_code == 200
        server.stop()

        # Era 3: previous pepper retired. Re-hashed keys still work; a key never used during the rotation does not.
        server.start("--var", "PEPPER_VERSION:2", "--var", "PEPPER_PREVIOUS_VERSION:0")
        assert server.get("/v1/org", key=used_key).status_code == 200
        assert server.get("/v1/interactions", key=idle["key"]).status_code == 401
    finally:
        server.stop()
        cfg.unlink(missing_ok=True)
