"""The README's tier table says what bloxserver/limits.py enforces: rebuilt here from TIER_LIMITS and RUN_LIMITS,
it must appear in the README as is, so a changed limit cannot leave the README behind."""

from __future__ import annotations

from pathlib import Path

from bloxserver.contract import Tier
from bloxserver.limits import MAX_WASM_MODULE_BYTES, MB, RUN_LIMITS, TIER_LIMITS

README = Path(__file__).resolve().parents[2] / "README.md"
TIERS = list(Tier)


def _count(value: int | None) -> str:
    return "unlimited" if value is None else f"{value:,}"


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def tier_table() -> list[str]:
    limits = [TIER_LIMITS[tier] for tier in TIERS]
    runs = [RUN_LIMITS[tier] for tier in TIERS]
    return [
        _row("limit", [tier.value for tier in TIERS]),
        "|---|" + "---|" * len(TIERS),
        _row("flows", [_count(limit.flows) for limit in limits]),
        _row("executions per month", [_count(limit.executions_per_month) for limit in limits]),
        _row("WASM modules", [_count(limit.wasm_modules) for limit in limits]),
        _row("project memory", [f"{limit.project_memory_bytes // MB:,} MB" if limit.project_memory_bytes else "none" for limit in limits]),
        _row("secrets", [_count(limit.secrets) for limit in limits]),
        _row(
            "webhook rate ceiling (per second / burst)",
            [f"{limit.webhook_rate_ceiling.per_second:g} / {limit.webhook_rate_ceiling.burst:,}" for limit in limits],
        ),
        _row("runs at once (per executor batch)", [_count(run.concurrent_runs) for run in runs]),
        _row("run timeout", [f"{run.timeout_seconds} s" for run in runs]),
        _row("agent iterations per run", [_count(run.max_iterations) for run in runs]),
        _row("LLM tokens per call", [_count(run.max_tokens) for run in runs]),
        _row("LLM tokens per execution", [_count(run.max_tokens_per_thread) for run in runs]),
        _row("LLM tokens per month", [_count(run.llm_tokens_per_month) for run in runs]),
        _row("WASM module size", [f"{MAX_WASM_MODULE_BYTES // MB} MB"] * len(TIERS)),
    ]


def test_the_readme_tier_table_matches_the_limits_enforced():
    expected = "\n".join(tier_table())
    assert expected in README.read_text(), "README.md's tier table differs from limits.py; expected:\n" + expected
