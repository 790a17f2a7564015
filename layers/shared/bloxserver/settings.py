"""Runtime settings, read from the environment once per process (template.yaml sets them in AWS)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    table_name: str
    idempotency_table_name: str
    environment: str
    authorized_parties: tuple[str, ...]
    public_base_url: str
    clerk_webhook_secret: str
    queue_url: str
    schedule_group_name: str
    scheduler_role_arn: str
    schedule_function_arn: str
    module_bucket_name: str
    secrets_key_id: str  # the KMS key (an alias) that encrypts users' secrets
    # Wall time a quick flow may take at the door (docs/executions.md, "The fast path"); 0 turns the fast path off.
    fast_path_budget_ms: int

    @property
    def is_production(self) -> bool:
        return self.environment == "prod"


@cache
def get_settings() -> Settings:
    env = os.environ
    return Settings(
        table_name=env.get("TABLE_NAME", "bloxserver"),
        idempotency_table_name=env.get("IDEMPOTENCY_TABLE_NAME", "bloxserver-idempotency"),
        environment=env.get("ENVIRONMENT", "dev"),
        authorized_parties=_csv(env.get("AUTHORIZED_PARTIES", "")),
        public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:3000").rstrip("/"),
        clerk_webhook_secret=env.get("CLERK_WEBHOOK_SECRET", ""),
        queue_url=env.get("EXECUTION_QUEUE_URL", ""),
        schedule_group_name=env.get("SCHEDULE_GROUP_NAME", "bloxserver"),
        scheduler_role_arn=env.get("SCHEDULER_ROLE_ARN", ""),
        schedule_function_arn=env.get("SCHEDULE_FUNCTION_ARN", ""),
        module_bucket_name=env.get("MODULE_BUCKET_NAME", ""),
        secrets_key_id=env.get("SECRETS_KEY_ID", ""),
        fast_path_budget_ms=int(env.get("FAST_PATH_BUDGET_MS", "50")),
    )
