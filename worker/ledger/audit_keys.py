"""The audit store's keys: what each event's MAC and each anchor's signature are made with.

The keys live outside the database (an intruder with the database alone can then neither forge
an event nor re-seal an altered chain). `CLOSELOOP_AUDIT_KEYS` holds `id:base64key` entries,
comma-separated: the first signs new events, the others stay to verify older ones (rotation:
put a new entry first, keep the old ones). Unset, the key is read from
`DATA_DIR/audit-keys.env`, which `closeloop up` writes once for the embedded default.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from worker.config import get_settings

FILE_NAME = "audit-keys.env"
VARIABLE = "CLOSELOOP_AUDIT_KEYS"
_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


class AuditKeyError(Exception):
    """No usable audit key: the message says what to set."""


@dataclass(frozen=True)
class Keyring:
    current_id: str
    current: bytes
    keys: dict[str, bytes]


def parse_keys(text: str) -> Keyring:
    keys: dict[str, bytes] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        key_id, _, encoded = entry.partition(":")
        if not _ID.match(key_id) or not encoded:
            raise AuditKeyError(
                f"{VARIABLE}: {entry[:12]!r}... is not `id:base64key` (id of letters, digits, "
                "'.', '_' or '-'); make one with `closeloop audit new-key`"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise AuditKeyError(f"{VARIABLE}: key {key_id!r} is not valid base64") from None
        if len(key) < 16:
            raise AuditKeyError(f"{VARIABLE}: key {key_id!r} is shorter than 16 bytes")
        if key_id in keys:
            raise AuditKeyError(f"{VARIABLE}: key id {key_id!r} is given twice")
        keys[key_id] = key
    if not keys:
        raise AuditKeyError(f"{VARIABLE} is empty; make a key with `closeloop audit new-key`")
    current_id = next(iter(keys))
    return Keyring(current_id, keys[current_id], keys)


def new_key_entry() -> str:
    """A fresh `id:base64key` entry: 32 random bytes, an id that tells keys apart."""
    return f"k-{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def key_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def ensure_key(data_dir: Path) -> Path | None:
    """For the embedded default: unless the environment names keys, keep one in the data folder
    (made once, readable by its owner only). Returns the file, or None if the environment rules."""
    if os.environ.get(VARIABLE):
        return None
    path = key_file(data_dir)
    if not _read_file(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{VARIABLE}={new_key_entry()}\n")
    path.chmod(0o600)
    _keyring.cache_clear()  # a folder asked for before may have had no key yet
    return path


def _read_file(path: Path) -> str | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == VARIABLE and value.strip():
            return value.strip()
    return None


def keyring_in(data_dir: Path) -> Keyring:
    """The keys `closeloop up` (or the demo) keeps in a data folder."""
    text = _read_file(key_file(data_dir))
    if not text:
        raise AuditKeyError(f"no audit key in {key_file(data_dir)}")
    return parse_keys(text)


def keyring() -> Keyring:
    """The keys in force for the settings in force."""
    settings = get_settings()
    return _keyring(settings.audit_keys, settings.data_dir)


@lru_cache(maxsize=4)
def _keyring(keys: str | None, data_dir: Path) -> Keyring:
    # Cached by what decides it: the hot path asks for the keys on every event, and settings
    # changed (tests, `closeloop up`) simply ask with other arguments.
    text = keys or _read_file(key_file(data_dir))
    if not text:
        raise AuditKeyError(
            f"no audit key: set {VARIABLE}=id:base64key (make one with `closeloop audit "
            f"new-key`), or run `closeloop up`, which keeps one in {key_file(data_dir)}"
        )
    return parse_keys(text)
