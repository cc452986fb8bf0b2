"""Webhook secrets for the embedded default, so that `closeloop up` signs from the first run.

Production names each department's secret in its own environment variable (the rules hold
only the variable's name). On the embedded default, any such variable left unset gets a
secret generated once and kept in `DATA_DIR/webhook-secrets.env` (readable by its owner
only), so receivers can be given the same secrets and verify what they get.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from worker.rules.loader import load_ruleset

FILE_NAME = "webhook-secrets.env"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def ensure_secrets(rules_dir: Path, data_dir: Path) -> Path:
    """Fill every department's unset secret variable from (or into) the data folder's file."""
    path = data_dir / FILE_NAME
    kept = read_env_file(path)
    for department in load_ruleset(rules_dir).departments.values():
        variable = department.secret_env
        if os.environ.get(variable):
            continue
        kept.setdefault(variable, new_secret())
        os.environ[variable] = kept[variable]
    path.write_text("".join(f"{name}={value}\n" for name, value in sorted(kept.items())))
    path.chmod(0o600)
    return path
