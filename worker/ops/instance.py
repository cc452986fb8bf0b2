"""The running instance a data folder belongs to: what `closeloop up` hands the other commands.

`closeloop up` writes `up.json` into its data folder while it runs: the broker its children
use (an embedded Redis on a port chosen at start), the store, the rules folder and the API's
address. A command run in another shell (`closeloop intake send`, `closeloop rules reload`,
`closeloop token create`) finds them there, so that it reaches the instance that is running
instead of a default that nobody reads. The environment always wins over the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "up.json"


@dataclass(frozen=True)
class RunningInstance:
    pid: int
    api_url: str
    broker_url: str
    database_url: str
    rules_dir: str

    def settings_values(self) -> dict[str, object]:
        """What another command takes from the instance, by Settings field."""
        return {
            "broker_url": self.broker_url,
            "database_url": self.database_url,
            "rules_dir": Path(self.rules_dir),
        }


def instance_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def announce(data_dir: Path, instance: RunningInstance) -> Path:
    """Write the instance's file (readable by its owner only: it names the broker)."""
    path = instance_file(data_dir)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(instance), indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
    return path


def withdraw(data_dir: Path, pid: int) -> None:
    """Remove the file, if it is still this process's."""
    found = running_instance(data_dir)
    if found is not None and found.pid == pid:
        instance_file(data_dir).unlink(missing_ok=True)


def running_instance(data_dir: Path) -> RunningInstance | None:
    """The instance running on `data_dir`, or None if there is none (no file, an unreadable
    one, or one left behind by an `up` that is gone)."""
    try:
        values = json.loads(instance_file(data_dir).read_text(encoding="utf-8"))
        instance = RunningInstance(**values)
    except (OSError, ValueError, TypeError):
        return None
    return instance if _alive(instance.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
