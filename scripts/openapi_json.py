#!/usr/bin/env python3
"""Writes docs/openapi.json from docs/openapi.yaml, the source of truth.

The Worker serves docs/openapi.json at `GET /v1/openapi.json` (embedded in the
wasm at build time), so regenerate it after every change to the YAML:

    .venv/bin/python scripts/openapi_json.py          # rewrite docs/openapi.json
    .venv/bin/python scripts/openapi_json.py --check  # exit 1 when it is stale

tests/test_openapi.py fails while the two differ.
"""

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "docs" / "openapi.yaml"
TARGET = ROOT / "docs" / "openapi.json"


def render() -> str:
    """The JSON text of the YAML spec. Values YAML would read as something
    JSON has not (dates, timestamps) are an error: quote them in the YAML."""
    spec = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    return json.dumps(spec, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run .venv/bin/python scripts/openapi_json.py",
                  file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
