"""Load a rules folder: parse every file, check every reference, compile, or refuse it whole.

Files are read in path order (`routes/10-emergency.yaml` before `routes/20-utilities.yaml`),
which is also the order of their routes. `cases.yaml` and `*.cases.yaml` are expectation
files for `closeloop rules test`, not rules. Errors name file, line and column, and say
how to fix the mistake.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from worker.rules import yamlsrc
from worker.rules.compiled import CompiledRoute, Ruleset
from worker.rules.compiler import Compiler, Located
from worker.rules.model import ALL_KEYS, RulesFile

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RulesLoadError(Exception):
    """The rules were refused; `errors` says every reason found."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.column, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))

    def __reduce__(self) -> tuple[type[RulesLoadError], tuple[list[RuleError]]]:
        # Celery pickles a task's exception across processes; keep the errors, not a wrapper.
        return (RulesLoadError, (self.errors,))


def is_cases_file(path: Path) -> bool:
    return path.name in ("cases.yaml", "cases.yml") or path.name.endswith(
        (".cases.yaml", ".cases.yml")
    )


def rule_files(path: Path) -> list[Path]:
    """The rule files of a folder (or the one file given), in the order their routes are tried."""
    if path.is_file():
        return [path]
    found = [p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(
        (p for p in found if not is_cases_file(p) and not _hidden(p.relative_to(path))),
        key=lambda p: p.relative_to(path).as_posix(),
    )


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times: cheap to take, changes when any rule file does."""
    result = []
    for file in rule_files(path) if path.exists() else []:
        stat = file.stat()
        result.append((file.as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(result)


def load_ruleset(path: Path | str) -> Ruleset:
    """Load and compile the rules at `path` (a folder, or one file); raise RulesLoadError."""
    path = Path(path)
    sources, errors = _read(path)
    if errors:
        raise RulesLoadError(errors)
    compiler = Compiler(sources)
    ruleset = compiler.compile(version=_version(sources), source=str(path))
    if compiler.problems:
        raise RulesLoadError([_locate(sources, p) for p in compiler.problems])
    assert ruleset is not None
    return ruleset


def check(path: Path | str) -> list[RuleError]:
    """Every error of the rules at `path`; empty when they load."""
    try:
        load_ruleset(path)
    except RulesLoadError as exc:
        return exc.errors
    return []


@dataclass(frozen=True)
class Source:
    name: str  # as shown in errors
    relative: str  # for the version hash: moving the folder keeps its version
    content: bytes
    document: yamlsrc.Document
    rules: RulesFile


def _read(path: Path) -> tuple[list[Source], list[RuleError]]:
    if not path.exists():
        return [], [RuleError(str(path), 1, 1, "no such rules folder or file; check the path")]
    files = rule_files(path)
    if not files:
        return [], [RuleError(str(path), 1, 1, "no *.yaml rule files in this folder")]
    base = path if path.is_dir() else path.parent
    sources: list[Source] = []
    errors: list[RuleError] = []
    for file in files:
        source, problems = _read_file(file, file.relative_to(base).as_posix())
        errors.extend(problems)
        if source is not None:
            sources.append(source)
    return sources, errors


def _read_file(file: Path, relative: str) -> tuple[Source | None, list[RuleError]]:
    name = str(file)
    content = file.read_bytes()
    try:
        document = yamlsrc.parse(content.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [RuleError(name, 1, 1, "not UTF-8 text; save the file as UTF-8")]
    except yamlsrc.YamlProblem as exc:
        return None, [RuleError(name, exc.position.line, exc.position.column, exc.message)]
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        return None, [
            RuleError(
                name, 1, 1, "a rules file is a mapping of sections (departments:, routes:, ...)"
            )
        ]
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_errors(name, document, exc.errors())
    return Source(name, relative, content, document, rules), []


def _pydantic_errors(
    name: str, document: yamlsrc.Document, errors: list[ErrorDetails]
) -> list[RuleError]:
    # A value failing every member of a union gives one error per member; one is enough.
    found: dict[tuple[int, int], RuleError] = {}
    for error in errors:
        loc = tuple(error["loc"])
        where = document.position(loc, key=error["type"] == "extra_forbidden")
        field = next((s for s in reversed(document.trail(loc)) if isinstance(s, str)), "")
        message = _explain(error, field)
        found.setdefault(
            (where.line, where.column), RuleError(name, where.line, where.column, message)
        )
    return list(found.values())


_PATTERN_HINTS = {
    "^[a-z0-9][a-z0-9_-]*$": "ids use lower-case letters, digits, - and _ (e.g. water, gulou-03)",
    "^(\\$district|[a-z0-9][a-z0-9_-]*)$": "write a department id (e.g. water) or $district",
    "^[a-z0-9_]+(\\.[a-z0-9_]+)+$": "category codes look like group.name (e.g. water.pipe_burst)",
    "^[a-z0-9_]+(\\.[a-z0-9_]+)*(\\.\\*)?$": "write a code (water.pipe_burst) or a group (water.*)",
}


def _explain(error: ErrorDetails, field: str) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"missing required key {field!r}; add it here"
    if kind == "extra_forbidden":
        return f"unknown key {field!r}{_did_you_mean(str(field), ALL_KEYS)}; remove or rename it"
    if kind == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        hint = _PATTERN_HINTS.get(pattern, f"it must match {pattern}")
        return f"{field}: {error['input']!r} is not allowed here; {hint}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{field}: write true or false, got {error['input']!r}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return f"{field}: {message}" if field else message
    return (
        f"{field}: {message}, got {error['input']!r}"
        if field
        else f"{message}, got {error['input']!r}"
    )


def _did_you_mean(word: str, known: object) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)  # type: ignore[call-overload]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _locate(sources: Sequence[Source], problem: Located) -> RuleError:
    if problem.source is None:
        return RuleError(sources[0].name, 1, 1, problem.message)
    source = sources[problem.source]
    where = source.document.position(problem.loc, key=problem.at_key)
    return RuleError(source.name, where.line, where.column, problem.message)


def _version(sources: Sequence[Source]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.relative.encode() + b"\0" + source.content + b"\0")
    return digest.hexdigest()[:16]


__all__ = [
    "CompiledRoute",
    "RuleError",
    "RulesLoadError",
    "Ruleset",
    "check",
    "fingerprint",
    "is_cases_file",
    "load_ruleset",
    "rule_files",
]
