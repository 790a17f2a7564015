"""Benchmarks (`make bench`): ratios against a baseline measured side by side in the same run."""

from __future__ import annotations

import statistics


def ratio_table(header: str, samples: dict[str, list[float]], baseline: str, digits: int) -> list[str]:
    """A Markdown table of each target's median and its ratio to the baseline's median; `header` names the first two
    columns (e.g. "| function | median CPU ms")."""
    floor = statistics.median(samples[baseline])
    lines = [f"{header} | ratio to baseline |", "|---|---:|---:|"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.{digits}f} | {median / floor:.2f}× |")
    return lines
