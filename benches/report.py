"""Turn one pytest-benchmark JSON file into the README's markdown table:
one row per benchmark group, Rust and pure-Python means side by side, and
the ratio.

    python -m pytest benches --benchmark-only --benchmark-json=bench.json
    python benches/report.py bench.json
"""

from __future__ import annotations

import json
import platform
import re
import sys
from collections import defaultdict
from pathlib import Path


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        impl = re.search(r"\[(rust|python)\b", bench["name"])
        if impl is None:
            continue
        groups[bench["group"]][impl.group(1)] = bench["stats"]["mean"]
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", platform.processor() or "unknown CPU")
    print(f"{cpu}, {machine.get('python_implementation', '')} {machine.get('python_version', '')}")
    print()
    print("| benchmark | Rust | pure Python | Rust speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for group in sorted(groups):
        times = groups[group]
        if {"rust", "python"} <= times.keys():
            ratio = times["python"] / times["rust"]
            print(f"| {group} | {_fmt(times['rust'])} | {_fmt(times['python'])} | {ratio:.1f}x |")


if __name__ == "__main__":
    main(sys.argv[1])
