"""Regenerate the Python code for every .proto under protos/ into the `shoal` package.

Run: `python protos/generate.py` (or `--check` to fail when the committed code is stale).
Generated modules land beside the package path of their proto (`protos/shoal/v1/pool.proto`
-> `shoal/v1/pool_pb2.py`), so `import shoal.v1.pool_pb2` works for users and services alike.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGES = ("shoal/v1", "shoal/agent/v1", "shoal/internal/v1")
SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


def generate(out: Path) -> None:
    include = str(resources.files("grpc_tools") / "_proto")
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in PACKAGES:
        # Each directory level must be a package; the files are empty on purpose.
        parts = Path(package).parts
        for depth in range(1, len(parts) + 1):
            init = out.joinpath(*parts[:depth], "__init__.py")
            if not init.exists() and depth > 1:
                init.write_text("")


def generated_files(base: Path) -> set[str]:
    return {
        str(p.relative_to(base))
        for package in PACKAGES
        for p in (base / package).glob("*")
        if p.name.endswith(SUFFIXES) or (p.name == "__init__.py" and package != "shoal")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = generated_files(out)
        if ns.check:
            current = generated_files(ROOT)
            stale = sorted(
                f for f in fresh | current
                if f not in fresh or f not in current
                or not filecmp.cmp(out / f, ROOT / f, shallow=False)
            )
            if stale:
                print("stale generated code (run python protos/generate.py):", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        for package in PACKAGES:
            for old in (ROOT / package).glob("*_pb2*.py*"):
                old.unlink()
        for f in sorted(fresh):
            dest = ROOT / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / f, dest)
        print(f"generated {len(fresh)} files")
        return 0


if __name__ == "__main__":
    sys.exit(main())
