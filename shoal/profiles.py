"""The client's config file: named profiles of where to find Shoal and as whom, found from
any directory.

    # ~/.config/shoal/config.toml  ($SHOAL_CONFIG, else $XDG_CONFIG_HOME/shoal/config.toml)
    default_profile = "local"

    [profiles.local]            # written by `shoal up`: endpoint and key from its client.json
    state_dir = "/home/me/work/.shoal"

    [profiles.team-a]           # written by `shoal profile set` or `shoal account create`
    endpoint = "batch.example.com:50051"
    key = "shoal_..."
    account = "team-a"

The file holds account keys: it is written readable by its owner only. Edits keep the
file's comments and layout (tomlkit), so people may edit it too.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from shoal.errors import ClientConfigError

ENV_CONFIG = "SHOAL_CONFIG"
ENV_PROFILE = "SHOAL_PROFILE"
FIELDS = ("endpoint", "key", "account", "state_dir")


@dataclass(frozen=True)
class Profile:
    name: str
    endpoint: str = ""
    """host:port of the gateway."""
    key: str = ""
    """The account key."""
    account: str = ""
    """The account's name (for people: the key says who you are)."""
    state_dir: str = ""
    """Instead of endpoint and key: the state dir of a `shoal up`, whose client.json has both."""


def config_path() -> Path:
    """$SHOAL_CONFIG, else $XDG_CONFIG_HOME/shoal/config.toml, else ~/.config/shoal/config.toml."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shoal" / "config.toml"


@dataclass(frozen=True)
class Profiles:
    path: Path
    default: str
    """The profile used when none is named; "" when none is set."""
    by_name: dict[str, Profile]

    def get(self, name: str) -> Profile:
        found = self.by_name.get(name)
        if found is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise ClientConfigError(f"no profile {name!r} in {self.path} (profiles: {known})")
        return found


def read_profiles(path: Path | None = None) -> Profiles:
    """The profiles of the config file; none when it does not exist. ClientConfigError when
    it cannot be read or is not what this module writes."""
    path = path or config_path()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Profiles(path, "", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ClientConfigError(f"cannot read {path}: {e}") from None
    default = raw.get("default_profile", "")
    tables = raw.get("profiles", {})
    if not isinstance(default, str) or not isinstance(tables, dict):
        raise ClientConfigError(f"{path}: default_profile must be a string and [profiles.NAME] tables")
    by_name = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or not all(
            k in FIELDS and isinstance(v, str) for k, v in table.items()
        ):
            raise ClientConfigError(
                f"{path}: profile {name!r} may hold only strings {', '.join(FIELDS)}")
        by_name[name] = Profile(name, **table)
    return Profiles(path, default, by_name)


def save_profile(profile: Profile, *, make_default: bool = False, path: Path | None = None) -> Path:
    """Add or replace a profile (keeping the rest of the file as it was)."""
    path = path or config_path()

    def change(doc: tomlkit.TOMLDocument) -> None:
        tables = doc.setdefault("profiles", tomlkit.table(is_super_table=True))
        table = tomlkit.table()
        for field in FIELDS:
            value = getattr(profile, field)
            if value:
                table[field] = value
        tables[profile.name] = table
        if make_default or not doc.get("default_profile"):
            doc["default_profile"] = profile.name

    return _edit(path, change)


def set_default(name: str, path: Path | None = None) -> Path:
    path = path or config_path()
    read_profiles(path).get(name)

    def change(doc: tomlkit.TOMLDocument) -> None:
        doc["default_profile"] = name

    return _edit(path, change)


def delete_profile(name: str, path: Path | None = None) -> Path:
    path = path or config_path()
    read_profiles(path).get(name)

    def change(doc: tomlkit.TOMLDocument) -> None:
        del doc["profiles"][name]  # type: ignore[union-attr]
        if doc.get("default_profile") == name:
            del doc["default_profile"]

    return _edit(path, change)


def _edit(path: Path, change: Any) -> Path:
    try:
        doc = tomlkit.parse(path.read_text())
    except FileNotFoundError:
        doc = tomlkit.document()
        doc.add(tomlkit.comment("Shoal's client settings; see `shoal profile --help`."))
    except (OSError, UnicodeDecodeError, TOMLKitError) as e:
        raise ClientConfigError(f"cannot read {path}: {e}") from None
    change(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tomlkit.dumps(doc))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
