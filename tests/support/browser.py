"""Debian's Chromium for the browser tests, installed on first use where it can be.

The README's test command must pass on a fresh machine of this kind, where Chromium is not
installed yet: as root with apt-get, the first browser test installs Debian's `chromium`
(never a browser downloaded by Playwright). Elsewhere the test fails saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

_lock = threading.Lock()


def chromium() -> Path:
    with _lock:
        found = shutil.which("chromium")
        if found is None and _can_install():
            _install()
            found = shutil.which("chromium")
        if found is None:
            pytest.fail(
                "Debian's chromium is missing and cannot be installed here (needs root and "
                "apt-get): run `apt-get install -y chromium`, then the tests again"
            )
        return Path(found)


def _can_install() -> bool:
    return shutil.which("apt-get") is not None and os.geteuid() == 0


def _install() -> None:
    print("\ninstalling Debian's chromium for the browser tests (apt-get, once)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed:\n{done.stdout}\n{done.stderr}")
