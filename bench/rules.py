"""Routing speed: decisions per second and p99 decision time, one process.

    python bench/rules.py [--decisions N]

Measures the example city, then generated rule sets of 20, 200 and 2,000 routes whose
taxonomy grows with them (as a real city's would): a decision should cost about the same
whatever the number of routes that cannot match.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.contracts.incident import Incident
from worker.rules import Ruleset, decide, load_ruleset

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)
WORDS = [
    "水管爆裂",
    "闻到煤气味",
    "路灯不亮",
    "半夜施工",
    "有人被困",
    "fire",
    "垃圾没人收",
    "停电了",
]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = f"{platform.python_version()} ({sys.implementation.name})"
    return f"cpu: {model}, {os.cpu_count()} cores; python {python}"


def city_incidents(ruleset: Ruleset, count: int, rng: random.Random) -> list[Incident]:
    categories = sorted(ruleset.categories)
    grids = sorted(ruleset.grids.items())
    result = []
    for _ in range(count):
        grid, district = rng.choice(grids)
        location: dict[str, Any] = {"district": district, "grid": grid}
        if rng.random() < 0.5:
            location |= {
                "longitude": rng.uniform(118.68, 118.86),
                "latitude": rng.uniform(32.0, 32.17),
            }
        result.append(
            Incident.model_validate(
                {
                    "source": rng.choice(["hotline", "hotline", "app", "monitor"]),
                    "category": rng.choice(categories),
                    "title": rng.choice(WORDS),
                    "description": "市民来电反映" * rng.randint(0, 20),
                    "priority_hint": rng.choice([None, None, "low", "normal", "high", "critical"]),
                    "location": location,
                    "attributes": rng.choice([{}, {"sensor_type": "pressure"}]),
                }
            )
        )
    return result


def generated_rules(routes: int, folder: Path) -> Path:
    """A city with `routes` routes over routes/2 categories, 10 per group, nested in groups."""
    departments = [f"dept-{i}" for i in range(max(12, routes // 10))]
    codes = [f"g{i // 10}.c{i % 10}" for i in range(max(10, routes // 2))]
    groups = sorted({c.split(".")[0] for c in codes})
    districts = [f"d{i}" for i in range(8)]

    def names(text: str) -> dict[str, str]:
        return {"zh": text, "en": text}

    content: dict[str, Any] = {
        "departments": [
            {
                "id": d,
                "name": names(d),
                "url": f"http://127.0.0.1:9900/hooks/{d}",
                "secret_env": "S",
            }
            for d in [*departments, "ops"]
        ],
        "categories": [
            {
                "group": g,
                "name": names(g),
                "categories": [
                    {"code": c, "name": names(c)} for c in codes if c.startswith(g + ".")
                ],
            }
            for g in groups
        ],
        "districts": [{"id": d, "name": names(d), "grids": [{"id": f"{d}-1"}]} for d in districts],
        "windows": [{"id": "night", "timezone": "Asia/Shanghai", "start": "22:00", "end": "06:00"}],
        "defaults": {"acknowledge_within": "24h", "resolve_within": "7d"},
        "catch_all": {"lead": "ops", "acknowledge_within": "2h", "resolve_within": "7d"},
        "routes": [],
    }
    per_group = max(1, routes // len(groups))
    made = 0
    for g in groups:
        children = []
        for j in range(per_group):
            if made >= routes:
                break
            code = f"{g}.c{j % 10}"
            match: dict[str, Any] = {"category": code}
            if j % 2:
                match["district"] = districts[j % len(districts)]
            if j % 5 == 0:
                match["keywords"] = ["爆裂", "fire"]
            if j % 7 == 0:
                match["window"] = "night"
            children.append(
                {"id": f"r{made}", "match": match, "lead": departments[made % len(departments)]}
            )
            made += 1
        content["routes"].append({"id": g, "match": {"category": f"{g}.*"}, "routes": children})
    path = folder / f"generated-{routes}"
    path.mkdir()
    (path / "rules.yaml").write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False))
    return path


def generated_incidents(ruleset: Ruleset, count: int, rng: random.Random) -> list[Incident]:
    categories = sorted(ruleset.categories)
    districts = sorted(ruleset.districts)
    return [
        Incident.model_validate(
            {
                "source": "hotline",
                "category": rng.choice(categories),
                "title": rng.choice(WORDS),
                "location": {"district": rng.choice(districts)},
            }
        )
        for _ in range(count)
    ]


def measure(name: str, ruleset: Ruleset, incidents: list[Incident]) -> None:
    routes = len(ruleset.all_routes())
    for incident in incidents[:1000]:  # warm up
        decide(ruleset, incident, START)
    timings = []
    clock = time.perf_counter_ns
    began = clock()
    for n, incident in enumerate(incidents):
        now = START + timedelta(minutes=n)
        t0 = clock()
        decide(ruleset, incident, now)
        timings.append(clock() - t0)
    elapsed = (clock() - began) / 1e9
    timings.sort()
    p50 = timings[len(timings) // 2] / 1000
    p99 = timings[int(len(timings) * 0.99)] / 1000
    rate = len(incidents) / elapsed
    print(f"{name:<22} {routes:>6} {rate:>14,.0f} {p50:>9.1f} {p99:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=50_000)
    args = parser.parse_args()
    rng = random.Random(12345)
    print(machine())
    print(f"{'rule set':<22} {'routes':>6} {'decisions/s':>14} {'p50 µs':>9} {'p99 µs':>9}")
    city = load_ruleset(ROOT / "routing_rules")
    measure("example city", city, city_incidents(city, args.decisions, rng))
    with tempfile.TemporaryDirectory() as folder:
        for size in (20, 200, 2000):
            ruleset = load_ruleset(generated_rules(size, Path(folder)))
            measure(f"generated {size}", ruleset, generated_incidents(ruleset, args.decisions, rng))


if __name__ == "__main__":
    main()
