"""Anchors: signed checkpoints of every audit chain's head, kept outside the database.

An anchor is a JSON file: each chain's head (case, sequence number, hash), their Merkle root,
and an HMAC-SHA256 under the audit key over the file's header (format, time, key id, count,
root). Verification against it proves that every anchored chain still exists and still has
the anchored hash at the anchored sequence number (a chain may have grown since), so a chain
cut back with its head, or a case removed with all its events, is found.

HMAC rather than a public-key signature: it needs no other key to keep and rotate, and the
one who checks an anchor is the operator holding the audit keys anyway. (Handing anchors to a
third party to check would need Ed25519; the Merkle root is what such a party would keep.)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import Engine

from worker.ledger.audit import VerifyReport, verify
from worker.ledger.audit_keys import Keyring, keyring

FORMAT = "closeloop-audit-anchor-v1"
_PREFIX = "anchor-"


class AnchorInvalid(Exception):
    """An anchor file that cannot be trusted: unreadable, or its root or signature fails."""


@dataclass(frozen=True)
class Anchor:
    path: Path | None
    created_at: str
    heads: list[tuple[str, tuple[int, str]]]
    root: str


def merkle_root(heads: list[tuple[str, int, str]]) -> str:
    """Leaves are the heads sorted by case id; leaf and inner hashes are domain-separated
    (RFC 6962 style) so that a leaf can never pass for an inner node; an odd node goes up as is."""
    level = [
        hashlib.sha256(b"\x00" + orjson.dumps([case_id, seq, digest])).digest()
        for case_id, seq, digest in sorted(heads)
    ]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def _header(created_at: str, key_id: str, count: int, root: str) -> bytes:
    return orjson.dumps([FORMAT, created_at, key_id, count, root])


def write_anchor(
    engine: Engine, folder: Path, keys: Keyring | None = None
) -> tuple[Path | None, VerifyReport]:
    """Verify the store (against the newest anchor in `folder`, if any) and, if it holds,
    write a new anchor of every chain's head there. An unsound store is not anchored: that
    would bless what was done to it. Returns the file (None if not written) and the report."""
    keys = keys or keyring()
    previous = newest_anchor(folder)
    anchor = load_anchor(previous, keys) if previous is not None else None
    report = verify(engine, keys=keys, anchor=anchor, collect_heads=True)
    if not report.ok:
        return None, report
    heads = report.heads or []
    created = datetime.now(UTC)
    created_at = created.isoformat(timespec="microseconds")
    root = merkle_root(heads)
    signature = hmac.new(
        keys.current, _header(created_at, keys.current_id, len(heads), root), "sha256"
    ).hexdigest()
    document = {
        "format": FORMAT,
        "created_at": created_at,
        "key_id": keys.current_id,
        "chains": len(heads),
        "events": report.events,
        "root": root,
        "signature": signature,
        "heads": [list(head) for head in sorted(heads)],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_PREFIX}{created:%Y%m%dT%H%M%S%fZ}.json"
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(document))
    os.replace(partial, path)  # a reader never sees half an anchor
    return path, report


def newest_anchor(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    files = sorted(folder.glob(f"{_PREFIX}*.json"))
    return files[-1] if files else None


def load_anchor(path: Path, keys: Keyring | None = None) -> Anchor:
    keys = keys or keyring()
    try:
        document = orjson.loads(path.read_bytes())
        if document.get("format") != FORMAT:
            raise AnchorInvalid(f"anchor {path}: not a {FORMAT} file")
        heads = [(str(c), int(s), str(h)) for c, s, h in document["heads"]]
        created_at, key_id = str(document["created_at"]), str(document["key_id"])
        root, signature = str(document["root"]), str(document["signature"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise AnchorInvalid(f"anchor {path}: unreadable ({error})") from None
    key = keys.keys.get(key_id)
    if key is None:
        raise AnchorInvalid(
            f"anchor {path}: signed with key {key_id!r}, which is not among the audit keys "
            "(add it back to CLOSELOOP_AUDIT_KEYS)"
        )
    expected = hmac.new(key, _header(created_at, key_id, len(heads), root), "sha256").hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AnchorInvalid(f"anchor {path}: its signature does not hold (the file was altered)")
    if merkle_root(heads) != root:
        raise AnchorInvalid(f"anchor {path}: its heads do not make its root (the file was altered)")
    return Anchor(path, created_at, [(c, (s, h)) for c, s, h in heads], root)
