"""The committed generated code matches protos/: regenerate with `python protos/generate.py`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_public_field_and_method_is_commented() -> None:
    # Clients in any language generate from these files alone, so every field says what it is.
    missing = []
    for proto in (ROOT / "protos" / "shoal" / "v1").glob("*.proto"):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            s = line.strip()
            is_field = s.endswith(";") and "=" in s and not s.startswith(("option", "syntax", "//"))
            is_rpc = s.startswith("rpc ")
            if (is_field or is_rpc) and not lines[i - 1].strip().startswith("//"):
                missing.append(f"{proto.name}:{i + 1}: {s}")
    enum_values = [m for m in missing if m.split(": ", 1)[1].split(" ")[0].isupper()]
    assert [m for m in missing if m not in enum_values] == []
