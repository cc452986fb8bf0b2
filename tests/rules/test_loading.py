"""Bad rule files are refused with the exact error; good folders load across many files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.rules.conftest import BASE, EXAMPLE_CITY, WEDNESDAY_10AM, incident, route, write_rules
from worker.rules import RulesLoadError, decide, load_ruleset
from worker.rules.loader import check, rule_files

BAD = Path(__file__).parent / "bad"


def _expected(path: Path) -> list[str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <error>'"
    return first.removeprefix("# expect: ").split(" | ")


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_rules_are_refused_with_the_exact_error(path: Path) -> None:
    errors = [str(e).replace(f"{BAD}/", "") for e in check(path)]
    assert errors == _expected(path)


def test_there_is_a_bad_file_for_each_kind_of_mistake() -> None:
    names = {p.stem for p in BAD.glob("*.yaml")}
    assert {
        "unknown-department",
        "unknown-category",
        "bad-duration",
        "missing-catch-all",
        "duplicate-department",
        "duplicate-route-id",
        "bad-polygon",
        "bad-timezone",
        "yaml-syntax",
        "unknown-key",
        "wrong-type",
    } <= names


def test_a_bad_file_in_a_folder_refuses_the_whole_folder(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    (folder / "extra.yaml").write_text(
        "routes:\n  - id: more\n    lead: gass\n"
        "    acknowledge_within: 1h\n    resolve_within: 1d\n"
    )
    with pytest.raises(RulesLoadError) as refused:
        load_ruleset(folder)
    assert [str(e) for e in refused.value.errors] == [
        f"{folder}/extra.yaml:3:11: unknown department 'gass' (did you mean 'gas'?)"
    ]


def test_rules_split_across_files_in_path_order(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    (folder / "routes").mkdir(parents=True)
    sections = {k: v for k, v in BASE.items() if k != "catch_all"}
    (folder / "city.yaml").write_text(yaml.safe_dump(sections, allow_unicode=True))
    (folder / "routes" / "20-later.yaml").write_text(
        yaml.safe_dump({"routes": [route("later", "gas")]})
    )
    (folder / "routes" / "10-first.yaml").write_text(
        yaml.safe_dump({"routes": [route("first", "water")]})
    )
    (folder / "routes" / "99-catch-all.yaml").write_text(
        yaml.safe_dump({"catch_all": BASE["catch_all"]})
    )
    (folder / "cases.yaml").write_text("not: [rules")  # expectation files are not rules
    rules = load_ruleset(folder)
    assert [r.path for r in rules.routes.routes] == ["first", "later"]
    assert decide(rules, incident(), WEDNESDAY_10AM).lead == "water"


def test_duplicate_top_level_route_across_files_names_both(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("water", "water")])
    (folder / "zz-more.yaml").write_text(
        "routes:\n  - {id: water, lead: gas, acknowledge_within: 1h, resolve_within: 1d}\n"
    )
    errors = [str(e) for e in check(folder)]
    assert errors == [
        f"{folder}/zz-more.yaml:2:10: duplicate route id 'water' "
        f"(first defined at {folder}/rules.yaml:{_line_of(folder / 'rules.yaml', 'id: water')}:7); "
        "ids must be unique"
    ]


def _line_of(path: Path, text: str) -> int:
    """The line of `text` in the routes section (the last section written)."""
    lines = path.read_text().splitlines()
    start = lines.index("routes:")
    return next(n for n, line in enumerate(lines[start:], start + 1) if text in line)


def test_a_second_catch_all_is_refused(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules", [route("r", "water")])
    (folder / "zz.yaml").write_text(
        "catch_all: {lead: ops, acknowledge_within: 1h, resolve_within: 1d}\n"
    )
    [error] = check(folder)
    assert error.message.startswith("a second `catch_all` section (the first is at ")
    assert (error.file, error.line, error.column) == (f"{folder}/zz.yaml", 1, 1)


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    one = write_rules(tmp_path / "one", [route("r", "water")])
    two = write_rules(tmp_path / "two", [route("r", "water")])
    assert load_ruleset(one).version == load_ruleset(two).version
    write_rules(two, [route("r", "gas")])
    assert load_ruleset(one).version != load_ruleset(two).version


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert [str(e) for e in check(tmp_path / "nope")] == [
        f"{tmp_path}/nope:1:1: no such rules folder or file; check the path"
    ]


def test_times_of_day_need_no_quotes(tmp_path: Path) -> None:
    # YAML 1.1 would read 22:00 as the number 1320.
    folder = write_rules(tmp_path / "rules", [route("r", "water", match={"window": "late"})])
    (folder / "w.yaml").write_text(
        "windows:\n  - {id: late, timezone: UTC, start: 22:00, end: 23:00}\n"
    )
    assert check(folder) == []


def test_example_city_is_the_default_and_loads() -> None:
    rules = load_ruleset(EXAMPLE_CITY)
    assert len(rules.departments) >= 12
    assert len(rules.categories) >= 40
    assert len(rules.districts) >= 3
    assert len(rules.grids) >= 6
    assert all(not f.name.startswith("cases") for f in rule_files(EXAMPLE_CITY))


def test_example_city_copy_still_loads(tmp_path: Path) -> None:
    # Errors and versions must not depend on where the folder lives.
    copy = tmp_path / "city"
    shutil.copytree(EXAMPLE_CITY, copy)
    assert load_ruleset(copy).version == load_ruleset(EXAMPLE_CITY).version
