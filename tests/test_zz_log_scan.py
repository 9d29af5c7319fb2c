"""Runs last (the file name sorts last): the stored digest of a key is the
HMAC-SHA-256 of the pepper over the key, computed here independently, and the
server log of the whole run holds no key material and no pepper."""

import hashlib
import hmac
import os
import re
from pathlib import Path

import pytest

from conftest import PEPPER, PERSIST, call, d1, new_org, post_json, sql_str

# `ck_live_` + 26 Crockford symbols, in any letter case (the parser accepts any).
KEY_MATERIAL = re.compile(r"ck_live_[0-9A-HJKMNP-TV-Z]{26}", re.IGNORECASE)
# Keys this file used: not even their secret part may be logged.
USED: list[str] = []


def server_log() -> Path:
    """The log of the server the suite ran against (scripts/test.sh exports
    it; otherwise it sits beside the state folder)."""
    path = os.environ.get("INTERLOG_SERVER_LOG") or str(Path(PERSIST).parent / "wrangler.log")
    return Path(path)


def stored_digest(prefix: str) -> dict:
    (row,) = d1(f"SELECT hash, pepper_version FROM api_keys WHERE prefix = {sql_str(prefix)}")
    return row


def independent_hmac(key: str) -> str:
    return hmac.new(PEPPER.encode(), key.encode(), hashlib.sha256).hexdigest()


def test_api_keys_hash_is_the_peppered_hmac_of_the_key():
    assert len(PEPPER.encode()) >= 32, "INTERLOG_PEPPER must be the server's pepper"
    org = new_org("Hash check")  # hashed by the operator command
    made = post_json("/v1/keys", org.key, {"name": "hash check", "scopes": ["read"]})  # hashed by the Worker
    assert made.status_code == 201, made.text
    for key in (org.key, made.json()["key"]):
        USED.append(key)
        assert call("GET", "/v1/interactions", key=key)[0].status_code == 200
        row = stored_digest(key[len("ck_live_"):][:8])
        assert row["hash"].lower() == independent_hmac(key), key[:16]
        assert row["pepper_version"] == 1


def test_server_log_holds_no_key_material_and_no_pepper():
    log = server_log()
    if not log.exists():
        pytest.skip(f"no server log at {log} (set INTERLOG_SERVER_LOG)")
    text = log.read_text(errors="replace")
    assert "Ready on" in text, f"{log} is not a wrangler dev log"
    found = sorted({m.group(0)[:16] + "…" for m in KEY_MATERIAL.finditer(text)})
    assert not found, f"key material in the server log: {found}"
    for key in USED:
        assert key[len("ck_live_"):].lower() not in text.lower(), f"the secret of {key[:16]}… is in the server log"
    assert PEPPER, "INTERLOG_PEPPER must be set"
    assert PEPPER not in text and PEPPER.lower() not in text.lower(), "the pepper is in the server log"
