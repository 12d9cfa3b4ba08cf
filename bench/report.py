"""The results table: one row per figure, one column per registry, plus the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """Figures by row and target; ``values`` keeps the raw numbers for ``--json``."""

    targets: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, object]] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    # "higher" or "lower": which way a row's figure is better (rows that can be compared only).
    better: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_target(self, label: str) -> None:
        if label not in self.targets:
            self.targets.append(label)

    def add(
        self,
        row: str,
        target: str,
        text: str,
        value: object = None,
        section: str = "figures",
        better: str | None = None,
    ) -> None:
        self.sections[row] = section
        if better is not None:
            self.better[row] = better
        self.rows.setdefault(row, {})[target] = text
        self.values.setdefault(row, {})[target] = value if value is not None else text

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def has(self, section: str) -> bool:
        return section in self.sections.values()

    def table(self, section: str = "figures") -> str:
        headers = ["figure", *self.targets]
        lines = [
            [row, *(cells.get(t, "-") for t in self.targets)]
            for row, cells in self.rows.items()
            if self.sections[row] == section
        ]
        widths = [max(len(str(x)) for x in column) for column in zip(headers, *lines, strict=True)]

        def fmt(cells: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [fmt(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [fmt(line) for line in lines]
        return "\n".join(out)

    def write_json(self, path: Path, machine: dict[str, str]) -> None:
        path.write_text(
            json.dumps(
                {"machine": machine, "figures": self.values, "notes": self.notes},
                indent=2,
                default=str,
            )
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _tool_version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine() -> dict[str, str]:
    load = os.getloadavg()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": _memory_total(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg at start": " ".join(f"{x:.2f}" for x in load),
        "docker-registry": _tool_version(["docker-registry", "--version"]),
        "wrk": _tool_version(["wrk", "--version"]),
    }


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())
