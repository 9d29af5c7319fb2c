"""Trust documents and supply chain, checked as files (no server needed).

- docs/trust/posture.md maps every row of the security posture table, and
  docs/trust/owasp-api-top-10.md every OWASP API Security Top 10 (2023)
  category, to at least one test; every test any trust document links to
  exists AND declares the claim it is cited for. Link syntax: a backticked
  `tests/test_x.py::test_name` (the file holds `def test_name(`) or
  `core/src/x.rs::fn_name` (the file holds `fn fn_name(`; any .rs path of the
  repository).

  Claims. Every link sits under exactly one claim id, written in the document
  as `(claim `<id>`)` (ids: lower case, digits, `.` and `-`; each defined once
  across docs/trust). In a table row the id in the row (by convention at the
  start of its last cell) covers that row's links; anywhere else an id covers
  the links that follow it up to the next heading (posture and OWASP sections
  write `**Proved by** (claim `posture.key-storage`):`; table rows without an
  id of their own take the section's). A test declares the claims it proves
  in its own source, on the lines directly above its `def`/`fn` (with its
  other decorators and attributes):
  - Python: `@pytest.mark.claim("owasp.api4", "posture.l2")` (the marker is
    registered in tests/conftest.py);
  - Rust: `// claim: owasp.api4, posture.l2` above `#[test]` (also inside
    `proptest!`).
  A link whose test does not declare the citing claim fails, a declaration no
  document defines (a typo) fails, and a declaration of a claim whose section
  or row does not cite that test fails too.
- The gitleaks rule for interlog keys (.gitleaks.toml) matches keys made the
  way the product makes them, and none of the near misses.
- The SBOMs scripts/sbom.sh writes are CycloneDX JSON valid against the
  CycloneDX 1.5 schema and name exactly crates (packages) of Cargo.lock
  (package-lock.json), including every direct dependency of the wasm build.
- deny.toml, .pre-commit-config.yaml and the fuzz targets hold the policy the
  documents describe.
"""

import json
import os
import random
import re
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TRUST = ROOT / "docs" / "trust"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# The rows of the posture table of the seed (docs/trust/posture.md keeps its text).
POSTURE_ROWS = [
    "Transport",
    "Key storage",
    "Key format",
    "Auth timing",
    "Auth envelope",
    "Rate limit (L1)",
    "Rate limit (L2)",
    "CORS",
    "Body caps",
    "Retention",
    "Tenancy isolation",
    "Supply chain",
]

OWASP_2023 = {
    "API1:2023": "Broken Object Level Authorization",
    "API2:2023": "Broken Authentication",
    "API3:2023": "Broken Object Property Level Authorization",
    "API4:2023": "Unrestricted Resource Consumption",
    "API5:2023": "Broken Function Level Authorization",
    "API6:2023": "Unrestricted Access to Sensitive Business Flows",
    "API7:2023": "Server Side Request Forgery",
    "API8:2023": "Security Misconfiguration",
    "API9:2023": "Improper Inventory Management",
    "API10:2023": "Unsafe Consumption of APIs",
}

LINK = re.compile(r"`((?:[\w.-]+/)*[\w.-]+\.(?:py|rs))::(\w+)`")
CLAIM = re.compile(r"\(claim `([a-z0-9][a-z0-9.-]*)`\)")
# Declarations attached to a function: the decorator/attribute/comment lines
# directly above it.
PY_CLAIM = re.compile(r"^\s*@pytest\.mark\.claim\((.*)\)\s*$")
RS_CLAIM = re.compile(r"^\s*// claim: (.+?)\s*$")


# ------------------------------------------------------------------ test links


def links(text: str) -> list[tuple[str, str]]:
    return LINK.findall(text)


def sections(path: Path, level: int = 2) -> dict[str, str]:
    """Heading text → body, for the headings of `level` (`## …`)."""
    marker = "#" * level + " "
    out, name, body = {}, None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(marker):
            if name is not None:
                out[name] = "\n".join(body)
            name, body = line[len(marker):].strip(), []
        elif name is not None:
            body.append(line)
    if name is not None:
        out[name] = "\n".join(body)
    return out


def missing_link(path: str, name: str) -> str | None:
    """Why a link is broken, or None when the test exists."""
    f = ROOT / path
    if not f.is_file():
        return f"{path}: no such file"
    text = f.read_text(encoding="utf-8")
    if path.endswith(".py"):
        if not re.search(rf"^\s*(?:async\s+)?def {re.escape(name)}\(", text, re.M):
            return f"{path}: no `def {name}(`"
    elif not re.search(rf"\bfn {re.escape(name)}\s*\(", text):
        return f"{path}: no `fn {name}(`"
    return None


def citations(doc: Path) -> list[tuple[str | None, str, str]]:
    """(claim id or None, path, test name) for every link of a document, in order."""
    out, section = [], None
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            section = None
            continue
        own = CLAIM.findall(line)
        if line.startswith("|"):
            claim = own[0] if own else section
        else:
            if own:
                section = own[-1]
            claim = section
        out += [(claim, path, name) for path, name in links(line)]
    return out


def defined_claims() -> list[str]:
    return [c for doc in sorted(TRUST.glob("*.md")) for c in CLAIM.findall(doc.read_text(encoding="utf-8"))]


def attached_lines(lines: list[str], index: int, rust: bool) -> list[str]:
    """The decorator, attribute and comment lines directly above lines[index]."""
    out = []
    for line in reversed(lines[:index]):
        t = line.strip()
        if t.startswith(("#[", "//", "#![") if rust else ("@", "#")):
            out.append(line)
        else:
            break
    return out


def parse_declaration(line: str, rust: bool) -> list[str] | None:
    if rust:
        m = RS_CLAIM.match(line)
        return [c.strip() for c in m.group(1).split(",")] if m else None
    m = PY_CLAIM.match(line)
    return re.findall(r"[\"']([^\"']*)[\"']", m.group(1)) if m else None


def declared_claims(path: str, name: str) -> set[str]:
    """The claim ids the function `name` of `path` declares (empty when none)."""
    rust = path.endswith(".rs")
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    rx = (re.compile(rf"^\s*(?:pub(?:\([\w:]+\))?\s+)?(?:async\s+)?fn {re.escape(name)}\s*[<(]") if rust
          else re.compile(rf"^\s*(?:async\s+)?def {re.escape(name)}\("))
    found: set[str] = set()
    for i, line in enumerate(lines):
        if rx.match(line):
            for above in attached_lines(lines, i, rust):
                found |= set(parse_declaration(above, rust) or [])
    return found


def claim_mismatch(claim: str | None, path: str, name: str) -> str | None:
    """Why the linked test does not prove `claim`, or None when it declares it."""
    if claim is None:
        return f"{path}::{name} is linked outside any claim"
    have = declared_claims(path, name)
    if claim not in have:
        return f"{path}::{name} does not declare claim {claim!r} (declares {sorted(have) or 'none'})"
    return None


def all_declarations() -> list[tuple[str, str, str]]:
    """(file, function, claim id) for every declaration in the test sources."""
    files = sorted((ROOT / "tests").glob("*.py"))
    for d in ("core", "durable", "src", "cli", "loadgen"):
        files += sorted((ROOT / d).rglob("*.rs"))
    out = []
    fn = re.compile(r"^\s*(?:pub(?:\([\w:]+\))?\s+)?(?:async\s+)?(?:def|fn) (\w+)")
    for f in files:
        rust = f.suffix == ".rs"
        lines = f.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            ids = parse_declaration(line, rust)
            if ids is None:
                continue
            target = next((fn.match(x).group(1) for x in lines[i + 1:] if fn.match(x)), None)
            for c in ids:
                out.append((str(f.relative_to(ROOT)), target or "?", c))
    return out


def section_for(secs: dict[str, str], key: str) -> str:
    found = [body for head, body in secs.items() if head == key or head.startswith(key + " ")]
    assert found, f"no section headed {key!r} (have {list(secs)})"
    assert len(found) == 1, f"several sections headed {key!r}"
    return found[0]


@pytest.mark.parametrize("row", POSTURE_ROWS)
def test_posture_row_links_a_test(row):
    body = section_for(sections(TRUST / "posture.md"), row)
    tests = links(body)
    assert tests, f"posture row {row!r} links no test"
    assert "**Implemented in:**" in body and re.search(r"\*\*Proved by\*\* \(claim `posture\.[a-z0-9.-]+`\):", body), row


def test_posture_table_lists_every_seed_row():
    text = (TRUST / "posture.md").read_text(encoding="utf-8")
    table_rows = re.findall(r"^\|\s*\[?([^|\]]+?)\]?(?:\([^)]*\))?\s*\|", text, re.M)
    for row in POSTURE_ROWS:
        assert row in table_rows, f"posture table has no row {row!r}"


@pytest.mark.parametrize("category", list(OWASP_2023))
def test_owasp_category_links_a_test(category):
    secs = sections(TRUST / "owasp-api-top-10.md")
    body = section_for(secs, category)
    heading = next(h for h in secs if h == category or h.startswith(category + " "))
    assert OWASP_2023[category] in heading, f"{category} is {OWASP_2023[category]!r}, heading says {heading!r}"
    assert links(body), f"{category} links no test"


def test_every_linked_test_exists():
    docs = sorted(TRUST.glob("*.md"))
    assert {p.name for p in docs} >= {"posture.md", "owasp-api-top-10.md", "threat-model.md"}
    broken, count = [], 0
    for doc in docs:
        for path, name in links(doc.read_text(encoding="utf-8")):
            count += 1
            why = missing_link(path, name)
            if why:
                broken.append(f"{doc.relative_to(ROOT)} → {why}")
    assert count >= 50, f"only {count} test links in docs/trust"
    assert not broken, "links to tests that do not exist:\n" + "\n".join(broken)


def test_every_link_names_a_test_that_declares_the_claim():
    """Each "proved by" link: the test declares the claim id of the section or
    row that cites it, so the test was written (and reviewed) as a proof of
    that claim, not merely present."""
    wrong, count = [], 0
    for doc in sorted(TRUST.glob("*.md")):
        for claim, path, name in citations(doc):
            count += 1
            if missing_link(path, name) is None and (why := claim_mismatch(claim, path, name)):
                wrong.append(f"{doc.relative_to(ROOT)} → {why}")
    assert count >= 50, f"only {count} test links in docs/trust"
    assert not wrong, "links whose test does not declare the claim:\n" + "\n".join(wrong)


def test_claim_ids_are_defined_once_and_declared_only_where_cited():
    defined = defined_claims()
    dupes = sorted({c for c in defined if defined.count(c) > 1})
    assert not dupes, f"claim ids defined more than once: {dupes}"
    assert len(defined) >= 50, f"only {len(defined)} claims in docs/trust"
    cited = {(claim, path, name) for doc in sorted(TRUST.glob("*.md")) for claim, path, name in citations(doc)}
    unknown, uncited = [], []
    for path, name, claim in all_declarations():
        if claim not in defined:
            unknown.append(f"{path}::{name} declares {claim!r}, which no document in docs/trust defines")
        elif (claim, path, name) not in cited:
            uncited.append(f"{path}::{name} declares {claim!r}, whose section or row does not link it")
    assert not unknown, "\n".join(unknown)
    assert not uncited, "\n".join(uncited)


def test_claim_checker_reads_only_the_tests_own_declaration(tmp_path, monkeypatch):
    """The checker takes the declaration attached to the linked function, not
    a neighbour's, and refuses a claim it does not declare."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\n\n\n"
        "@pytest.mark.claim(\"posture.l1\", 'owasp.api4')\n"
        "@pytest.mark.parametrize(\"n\", [1])\n"
        "def test_proves(n):\n    assert n\n\n\n"
        "def test_neighbour():\n    assert True\n\n\n"
        "@pytest.mark.claim(\"posture.l2\")\n\n"
        "def test_detached():\n    assert True\n", encoding="utf-8")
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "x.rs").write_text(
        "proptest! {\n    // claim: posture.l2, threat.floods\n    #[test]\n    fn proves(x in 0u8..) {}\n}\n"
        "#[test]\nfn neighbour() {}\n", encoding="utf-8")
    assert declared_claims("tests/test_x.py", "test_proves") == {"posture.l1", "owasp.api4"}
    assert declared_claims("tests/test_x.py", "test_neighbour") == set()
    assert declared_claims("tests/test_x.py", "test_detached") == set()  # a blank line detaches it
    assert declared_claims("core/x.rs", "proves") == {"posture.l2", "threat.floods"}
    assert declared_claims("core/x.rs", "neighbour") == set()
    assert claim_mismatch("posture.l1", "tests/test_x.py", "test_proves") is None
    assert claim_mismatch("posture.l2", "tests/test_x.py", "test_proves")
    assert claim_mismatch("posture.l2", "tests/test_x.py", "test_neighbour")
    assert claim_mismatch(None, "tests/test_x.py", "test_proves")
    doc = tmp_path / "d.md"
    doc.write_text("## A\n\n**Proved by** (claim `a.one`):\n- `core/x.rs::proves`\n\n"
                   "| t | (claim `a.two`) `tests/test_x.py::test_proves` |\n| u | `core/x.rs::neighbour` |\n"
                   "## B\n- `core/x.rs::neighbour`\n", encoding="utf-8")
    assert citations(doc) == [("a.one", "core/x.rs", "proves"), ("a.two", "tests/test_x.py", "test_proves"),
                              ("a.one", "core/x.rs", "neighbour"), (None, "core/x.rs", "neighbour")]
    decl = all_declarations()
    assert ("tests/test_x.py", "test_proves", "owasp.api4") in decl and ("core/x.rs", "proves", "threat.floods") in decl


def test_link_checker_catches_a_missing_test():
    assert missing_link("tests/test_auth.py", "test_auth_401") is None
    assert missing_link("core/src/key.rs", "generate_format_parse_roundtrip") is None
    assert missing_link("tests/test_auth.py", "test_auth_4011")
    assert missing_link("tests/test_nope.py", "test_auth_401")
    assert missing_link("core/src/key.rs", "generate_format_parse")


def test_security_md_promises():
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    for needle in ["## Supported versions", "## Reporting a vulnerability", "## Safe harbour", "## Scope",
                   "## Out of scope", "48 hours", "14 days", "Encrypted", "cargo deny check advisories"]:
        assert needle in text, needle
    assert re.search(r"`security@[a-z0-9.-]+\.[a-z]+`", text)


# --------------------------------------------------------------------- gitleaks


def gitleaks_rule() -> tuple[re.Pattern, int]:
    config = tomllib.loads((ROOT / ".gitleaks.toml").read_text(encoding="utf-8"))
    assert config["extend"]["useDefault"] is True
    rule = next(r for r in config["rules"] if r["id"] == "interlog-api-key")
    assert "ck_live_" in rule["keywords"]
    return re.compile(rule["regex"]), rule.get("secretGroup", 0)


def product_key(rng: random.Random) -> str:
    """A key as interlog_core::key::ApiKey::from_entropy makes it: 17 random
    bytes, the first 130 bits as 26 Crockford symbols, after `ck_live_`."""
    bits = int.from_bytes(rng.randbytes(17), "big") >> (136 - 130)
    return "ck_live_" + "".join(CROCKFORD[(bits >> (5 * (25 - i))) & 31] for i in range(26))


def found(rx: re.Pattern, group: int, text: str) -> list[str]:
    return [m.group(group) for m in rx.finditer(text)]


@pytest.mark.claim("posture.key-format", "posture.supply-chain", "threat.committed-keys")
def test_gitleaks_rule_matches_generated_keys():
    rx, group = gitleaks_rule()
    rng = random.Random(secrets.randbits(64))
    keys = [product_key(rng) for _ in range(2000)]
    keys += ["ck_live_" + "0" * 26, "ck_live_" + "Z" * 26]
    for k in keys:
        body = k[len("ck_live_"):]
        mixed = "".join(c.lower() if rng.random() < 0.5 else c for c in body)
        for variant in (k, "ck_live_" + body.lower(), "ck_live_" + mixed):
            for text in (variant, f"Authorization: Bearer {variant}\n", f'KEY="{variant}"', f'{{"key":"{variant}"}}',
                         f"x\n{variant}", f"export INTERLOG_KEY={variant};"):
                assert found(rx, group, text) == [variant], (variant, text)


@pytest.mark.claim("posture.key-format", "posture.supply-chain")
def test_gitleaks_rule_ignores_near_misses():
    rx, group = gitleaks_rule()
    rng = random.Random(secrets.randbits(64))
    for _ in range(500):
        k = product_key(rng)
        body = k[len("ck_live_"):]
        pos = rng.randrange(26)
        misses = [
            "ck_live_" + body[:25],                                  # 25 symbols
            k + rng.choice(CROCKFORD),                               # 27 symbols
            k + rng.choice("ilou"),                                  # a longer token
            "ck_live_" + body[:pos] + rng.choice("ILOUilou") + body[pos + 1:],  # not in the alphabet
            "ck_test_" + body,
            "CK_LIVE_" + body,
            "Ck_live_" + body,
            "ck-live-" + body,
            "ck_live" + body,
            "x" + k,                                                 # part of a longer token
            "7" + k,
            "ck_live_" + body[:pos] + " " + body[pos:25],            # whitespace inside
            "ck_live_" + body[:pos] + "-" + body[pos + 1:],
        ]
        for text in misses:
            assert found(rx, group, text) == [], text
            assert found(rx, group, f"token: {text}\n") == [], text


def committable_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore: what a commit can hold."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p and (ROOT / p).is_file()]


@pytest.mark.claim("posture.supply-chain", "threat.committed-keys")
def test_gitleaks_allowlist_covers_only_fuzz_inputs():
    config = tomllib.loads((ROOT / ".gitleaks.toml").read_text(encoding="utf-8"))
    paths = [p for a in config.get("allowlists", []) for p in a.get("paths", [])]
    for p in paths:
        assert p.startswith("^fuzz/"), p
    rx, group = gitleaks_rule()
    # Outside the allowlisted paths, nothing that could be committed holds a key.
    allow = [re.compile(p) for p in paths]
    files = committable_files()
    assert "tests/test_trust_docs.py" in files
    for rel in files:
        if any(a.search(rel) for a in allow):
            continue
        try:
            text = (ROOT / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        assert not found(rx, group, text), f"key-shaped string in {rel}"


@pytest.mark.claim("posture.supply-chain")
def test_pre_commit_runs_gitleaks_fmt_and_clippy():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    repos = {r["repo"]: r for r in config["repos"]}
    gl = repos["https://github.com/gitleaks/gitleaks"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", gl["rev"]), "gitleaks pinned to a release tag"
    assert [h["id"] for h in gl["hooks"]] == ["gitleaks"]
    entries = [h["entry"] for h in repos["local"]["hooks"]]
    test_sh = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "cargo fmt --all -- --check" in entries
    clippy = [e for e in entries if e.startswith("cargo clippy")]
    assert any("wasm32-unknown-unknown" in e for e in clippy) and any("wasm32" not in e for e in clippy)
    for e in clippy:
        assert e in test_sh, f"pre-commit runs clippy differently from scripts/test.sh: {e}"


# ------------------------------------------------------------------------ SBOM

SBOM_DIR = ROOT / "sbom"
SCHEMA_DIR = ROOT / "node_modules" / "@cyclonedx" / "cyclonedx-library" / "res" / "schema"


def sbom(name: str) -> dict:
    path = SBOM_DIR / name
    if not path.exists():
        if os.environ.get("INTERLOG_SBOM_REQUIRED") == "1":
            pytest.fail(f"{path} was not written (scripts/sbom.sh)")
        pytest.skip(f"{path} absent: run scripts/sbom.sh (scripts/test.sh does)")
    return json.loads(path.read_text(encoding="utf-8"))


def validate_cyclonedx(bom: dict):
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource

    version = bom["specVersion"]
    base = "http://cyclonedx.org/schema/"
    names = ["spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json", f"bom-{version}.SNAPSHOT.schema.json"]
    contents = {n: json.loads((SCHEMA_DIR / n).read_text(encoding="utf-8")) for n in names}
    registry = Registry().with_resources((base + n, Resource.from_contents(c)) for n, c in contents.items())
    errors = sorted(Draft7Validator(contents[names[-1]], registry=registry).iter_errors(bom), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:10])


def cargo_lock() -> set[tuple[str, str]]:
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text(encoding="utf-8"))
    return {(p["name"], p["version"]) for p in lock["package"]}


def direct_dependencies(member: str) -> set[str]:
    manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text(encoding="utf-8"))
    return {spec.get("package", name) if isinstance(spec, dict) else name
            for name, spec in manifest.get("dependencies", {}).items()}


@pytest.mark.claim("owasp.api9", "posture.supply-chain", "threat.dependencies")
def test_sbom_wasm_is_cyclonedx_naming_cargo_lock_crates():
    bom = sbom("interlog.cdx.json")
    assert bom["bomFormat"] == "CycloneDX"
    validate_cyclonedx(bom)
    assert bom["metadata"]["component"]["name"] == "interlog"
    comps = bom["components"]
    named = {(c["name"], c["version"]) for c in comps}
    lock = cargo_lock()
    assert named <= lock, f"SBOM crates not in Cargo.lock: {sorted(named - lock)[:10]}"
    for c in comps:
        assert c["purl"].startswith(f"pkg:cargo/{c['name']}@{c['version']}"), c["purl"]
    names = {n for n, _ in named}
    wanted = (direct_dependencies(".") | direct_dependencies("core") | direct_dependencies("durable"))
    assert {"interlog-core", "interlog-durable", "worker", "serde", "sha2", "hmac", "subtle"} <= names
    assert wanted <= names, f"direct dependencies missing from the SBOM: {sorted(wanted - names)}"
    # The wasm build only: the native CLI and dev-only crates are not in it.
    assert "interlog-cli" not in names and "proptest" not in names
    refs = {c["bom-ref"] for c in comps} | {bom["metadata"]["component"]["bom-ref"]}
    for dep in bom.get("dependencies", []):
        assert dep["ref"] in refs and set(dep.get("dependsOn", [])) <= refs, dep["ref"]


@pytest.mark.claim("owasp.api9", "posture.supply-chain")
def test_sbom_npm_is_cyclonedx_naming_lockfile_packages():
    bom = sbom("npm.cdx.json")
    assert bom["bomFormat"] == "CycloneDX"
    validate_cyclonedx(bom)
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    # A package is named by its folder, or by `name` when installed under an alias.
    locked = {(n, p.get("version")) for path, p in lock["packages"].items() if path
              for n in (path.split("node_modules/")[-1], p.get("name"))}
    named = {((c["group"] + "/" if c.get("group") else "") + c["name"], c["version"]) for c in bom["components"]}
    assert named <= locked, f"SBOM packages not in package-lock.json: {sorted(named - locked)[:10]}"
    pkg = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    for name, version in pkg["devDependencies"].items():
        assert (name, version) in named, f"{name}@{version} missing from the npm SBOM"


# -------------------------------------------------------- cargo-deny, fuzzing


@pytest.mark.claim("owasp.api8", "posture.supply-chain", "threat.dependencies")
def test_deny_policy():
    deny = tomllib.loads((ROOT / "deny.toml").read_text(encoding="utf-8"))
    assert deny["sources"]["unknown-registry"] == "deny" and deny["sources"]["unknown-git"] == "deny"
    assert deny["sources"].get("allow-git", []) == []
    assert deny["bans"]["multiple-versions"] == "warn"
    assert deny["licenses"]["allow"] and not any("GPL" in lic for lic in deny["licenses"]["allow"])
    script = (ROOT / "scripts" / "deny.sh").read_text(encoding="utf-8")
    assert "cargo deny --locked check" in script and "checks=(licenses bans sources)" in script


@pytest.mark.claim("posture.supply-chain")
def test_fuzz_targets_cover_the_parsers():
    manifest = tomllib.loads((ROOT / "fuzz" / "Cargo.toml").read_text(encoding="utf-8"))
    assert "workspace" in manifest, "fuzz/ must be its own workspace"
    targets = {b["name"]: b["path"] for b in manifest["bin"]}
    assert set(targets) >= {"key_parse", "interaction_validate", "cursor_decode", "jsonrpc_parse", "sanitize"}
    calls = {
        "key_parse": ["ApiKey::parse", "KeyPrefix::parse", "parse_authorization"],
        "interaction_validate": ["validate(", "validate_batch("],
        "cursor_decode": [".decode("],
        "jsonrpc_parse": ["plan("],
        "sanitize": ["sanitize(", "contains_control_token("],
    }
    for name, needles in calls.items():
        text = (ROOT / "fuzz" / targets[name]).read_text(encoding="utf-8")
        assert "fuzz_target!" in text
        for n in needles:
            assert n in text, f"{name} does not call {n}"
    root = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    assert "fuzz" in root["workspace"].get("exclude", []) and "fuzz" not in root["workspace"]["members"]


@pytest.mark.claim("owasp.api7", "threat.ssrf")
def test_no_outbound_fetch_of_request_data():
    """SSRF (API7): the Worker and the Durable Objects fetch nothing but their
    own Durable Object stubs at fixed internal URLs; the one outbound `Fetch`
    is the webhook sender, whose URLs are stored only after the SSRF policy
    (`parse_webhook_request` → `check_url`) accepted them."""
    sender = ROOT / "durable/src/webhooks.rs"
    sender_text = sender.read_text(encoding="utf-8")
    assert "parse_webhook_request(body, ctx.cfg.delivery.allow_loopback)" in sender_text
    assert sender_text.count("INSERT INTO webhooks") == 1 and sender_text.count("UPDATE webhooks SET url") == 0
    for d in ("src", "durable/src"):
        for f in (ROOT / d).rglob("*.rs"):
            text = f.read_text(encoding="utf-8")
            if f == sender:
                assert len(re.findall(r"\bFetch::(Url|Request)\b", text)) == 1, f"one outbound fetch in {f}"
                continue
            assert not re.search(r"\bFetch::(Url|Request)\b|\bFetch\s*\{", text), f"outbound fetch in {f}"
            for m in re.finditer(r"\.fetch_with_(str|request)\(([^)]*)\)", text):
                arg = m.group(2).strip()
                if arg == "ARM_URL":
                    # The Janitor's fixed internal URL, imported by name.
                    assert re.search(r"use crate::janitor::\{[^}]*\bARM_URL\b", text), f"{f}: ARM_URL not the Janitor's"
                    continue
                assert arg in ("request", "crate::janitor::ARM_URL"), f"{f}: {m.group(0)}"
