"""The wire contract: every model of shared/contract/api_contract_models.py, in Pydantic v2 style.

Field names, camelCase aliases, enums, defaults and constraints are fixed (a frontend is built against them);
tests/unit/test_contract.py loads the contract file and fails on any drift. Fields may be added, never renamed
or dropped. Additions are marked "extra" and listed in docs/api.md.
"""

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel as _PydanticBase, ConfigDict, Field, model_serializer, model_validator


# =============================================================================
# Common Types
# =============================================================================


T = TypeVar("T")


class BaseModel(_PydanticBase):
    """Every contract model: accepts camelCase aliases and snake_case names, serialises by alias (FastAPI does)."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)


class PaginatedResponse(BaseModel, Generic[T]):
    """Paginated list response."""

    items: list[T]
    total: int
    page: int
    page_size: int = Field(alias="pageSize")
    has_more: bool = Field(alias="hasMore")



class ApiError(BaseModel):
    """API error response."""

    code: str
    message: str
    details: dict[str, Any] | None = None


# =============================================================================
# User (synced from Clerk)
# =============================================================================


class Tier(str, Enum):
    FREE = "free"
    PAID = "paid"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class User(BaseModel):
    """User account (synced from Clerk)."""

    id: UUID
    clerk_id: str = Field(alias="clerkId")
    email: str
    name: str | None = None
    avatar_url: str | None = Field(default=None, alias="avatarUrl")
    tier: Tier = Tier.FREE
    created_at: datetime = Field(alias="createdAt")



# =============================================================================
# Flows
# =============================================================================


class FlowStatus(str, Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    ERROR = "error"


class CanvasNode(BaseModel):
    """A node in the React Flow canvas."""

    id: str
    type: str
    position: dict[str, float]
    data: dict[str, Any]


class CanvasEdge(BaseModel):
    """An edge connecting nodes in the canvas."""

    id: str
    source: str
    target: str
    source_handle: str | None = Field(default=None, alias="sourceHandle")
    target_handle: str | None = Field(default=None, alias="targetHandle")



class CanvasState(BaseModel):
    """React Flow canvas state."""

    nodes: list[CanvasNode]
    edges: list[CanvasEdge]
    viewport: dict[str, float]


class AlertOn(str, Enum):
    """extra: how an execution may end that a flow's failure alert reports (docs/alerts.md)."""

    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class FlowAlerts(BaseModel):
    """extra: a flow's failure alerts: one signed POST to `url` when an execution ends in one of `on` (docs/alerts.md)."""

    on: list[AlertOn] = Field(min_length=1, max_length=3)
    url: str = Field(min_length=1, max_length=2048, description="https:// address of the receiver")
    secret: str = Field(min_length=1, max_length=100, description="secret('NAME'): a Standard Webhooks signing secret")


class Flow(BaseModel):
    """A user's workflow/flow."""

    id: UUID
    user_id: UUID = Field(alias="userId")
    name: str
    description: str | None = None
    organism_yaml: str = Field(alias="organismYaml")
    canvas_state: CanvasState | None = Field(default=None, alias="canvasState")
    status: FlowStatus = FlowStatus.STOPPED
    container_id: str | None = Field(default=None, alias="containerId")
    error_message: str | None = Field(default=None, alias="errorMessage")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    alerts: FlowAlerts | None = None  # extra (docs/alerts.md): failure alerts
    # extra (docs/api.md, "Flow versions"): the number of the definition (organismYaml + canvasState) it holds, from 1
    version: int = 1



class FlowSummary(BaseModel):
    """Abbreviated flow for list views."""

    id: UUID
    name: str
    description: str | None = None
    status: FlowStatus
    updated_at: datetime = Field(alias="updatedAt")



class CreateFlowRequest(BaseModel):
    """Request to create a new flow."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    organism_yaml: str | None = Field(default=None, alias="organismYaml")
    canvas_state: CanvasState | None = Field(default=None, alias="canvasState")  # extra



class UpdateFlowRequest(BaseModel):
    """Request to update a flow."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    organism_yaml: str | None = Field(default=None, alias="organismYaml")
    canvas_state: CanvasState | None = Field(default=None, alias="canvasState")
    alerts: FlowAlerts | None = None  # extra (docs/alerts.md): null removes them



class FlowVersionSummary(BaseModel):
    """extra: one stored version of a flow's definition (docs/api.md, "Flow versions")."""

    version: int
    created_at: datetime = Field(alias="createdAt")
    sha256: str  # of the version's organismYaml (UTF-8), hex


class FlowVersion(FlowVersionSummary):
    """extra: a stored version with its content."""

    organism_yaml: str = Field(alias="organismYaml")
    canvas_state: CanvasState | None = Field(default=None, alias="canvasState")


# =============================================================================
# Triggers
# =============================================================================


class TriggerType(str, Enum):
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    MANUAL = "manual"


# An HTTP header name (RFC 9110 token).
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class StandardWebhooksVerify(BaseModel):
    """extra: deliveries signed as Svix / Standard Webhooks do (webhook-id, webhook-timestamp, webhook-signature)."""

    scheme: Literal["standard-webhooks"]
    secret: str = Field(min_length=1, max_length=256, description="whsec_... or secret('NAME')")


class HmacSha256Verify(BaseModel):
    """extra: GitHub's format, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`."""

    scheme: Literal["hmac-sha256"]
    header: str = Field(default="X-Hub-Signature-256", max_length=100, pattern=HEADER_NAME_PATTERN)
    secret: str = Field(min_length=1, max_length=256, description="secret('NAME') (or the key itself)")


class HeaderVerify(BaseModel):
    """extra: a shared secret sent as one header's whole value."""

    scheme: Literal["header"]
    header: str = Field(max_length=100, pattern=HEADER_NAME_PATTERN)
    value: str = Field(min_length=1, max_length=256, description="secret('NAME') (or the value itself)")


WebhookVerify = Annotated[StandardWebhooksVerify | HmacSha256Verify | HeaderVerify, Field(discriminator="scheme")]
VERIFY_SCHEME_TAGS = frozenset({"standard-webhooks", "hmac-sha256", "header"})


class WebhookRateLimit(BaseModel):
    """extra: a token bucket per trigger; each number at most the owner's tier ceiling (bloxserver/limits.py)."""

    # At least one delivery in about 11.6 days: a smaller rate means nothing, and DynamoDB cannot store below 1e-130.
    per_second: float = Field(ge=0.000001, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class WebhookTriggerConfig(BaseModel):
    """Config for webhook triggers."""

    type: Literal["webhook"] = "webhook"
    # extra (docs/triggers.md): deliveries that do not verify are refused with 401; past the rate, 429.
    verify: WebhookVerify | None = None
    rate_limit: WebhookRateLimit | None = None
    # extra: true makes the flow's input {body, headers, query, method} (docs/triggers.md, "Request context")
    include_request: bool | None = Field(default=None, strict=True)

    @model_serializer(mode="wrap")
    def _without_absent_extras(self, serialize: Any) -> dict[str, Any]:
        # A trigger without them shows the contract's config, as before they existed.
        return {key: value for key, value in serialize(self).items() if value is not None}


class ScheduleTriggerConfig(BaseModel):
    """Config for scheduled triggers."""

    type: Literal["schedule"] = "schedule"
    cron: str = Field(description="Cron expression")
    timezone: str = "UTC"


class ManualTriggerConfig(BaseModel):
    """Config for manual triggers."""

    type: Literal["manual"] = "manual"


# Discriminated on `type`, so a bad config names the one variant it was meant to be.
TriggerConfig = Annotated[
    WebhookTriggerConfig | ScheduleTriggerConfig | ManualTriggerConfig, Field(discriminator="type")
]
# Pydantic puts the variant's tag in an error's location (body.config.schedule.cron); clients wrote body.config.cron.
TRIGGER_CONFIG_TAGS = frozenset({"webhook", "schedule", "manual"})


class Trigger(BaseModel):
    """A trigger that can start a flow."""

    id: UUID
    flow_id: UUID = Field(alias="flowId")
    type: TriggerType
    name: str
    config: TriggerConfig
    webhook_token: str | None = Field(default=None, alias="webhookToken")
    webhook_url: str | None = Field(default=None, alias="webhookUrl")
    created_at: datetime = Field(alias="createdAt")
    # extra: schedule triggers only. nextRunAt is the next time it will run (None while the flow is not
    # running); nextRunTimes previews the next 5 times the expression matches, whatever the flow's state.
    next_run_at: datetime | None = Field(default=None, alias="nextRunAt")
    next_run_times: list[datetime] | None = Field(default=None, alias="nextRunTimes")
    # extra: a disabled trigger starts nothing (a webhook answers 409, a schedule does not fire)
    enabled: bool = True



class CreateTriggerRequest(BaseModel):
    """Request to create a trigger."""

    type: TriggerType
    name: str = Field(min_length=1, max_length=100)
    config: TriggerConfig

    @model_validator(mode="before")
    @classmethod
    def _config_type_defaults_to_the_triggers(cls, data: Any) -> Any:
        # The contract gives each config's `type` a default; the discriminated union above needs it to pick the
        # variant, and the only variant that can be meant is the trigger's own type.
        config = data.get("config") if isinstance(data, dict) else None
        if isinstance(config, dict) and "type" not in config and isinstance(data.get("type"), str):
            return {**data, "config": {"type": data["type"], **config}}
        return data


class UpdateTriggerRequest(BaseModel):
    """extra: `PATCH /api/v1/flows/{id}/triggers/{tid}`; only the fields present change, the type never does."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    # A TriggerConfig of the trigger's own type, which it may leave out: checked against the stored type
    config: dict[str, Any] | None = None
    enabled: bool | None = Field(default=None, strict=True)


FLOW_EXPORT_FORMAT = "bloxserver.flow"
FLOW_EXPORT_FORMAT_VERSION = 1


class FlowExport(BaseModel):
    """extra: a flow as a portable document (`GET /api/v1/flows/{id}/export`, `POST /api/v1/flows/import`): no ids,
    tokens or secrets (docs/api.md, "Export and import")."""

    format: str
    format_version: int = Field(alias="formatVersion", strict=True)
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    organism_yaml: str = Field(alias="organismYaml")
    canvas_state: CanvasState | None = Field(default=None, alias="canvasState")
    triggers: list[CreateTriggerRequest] = Field(default_factory=list)


# =============================================================================
# Executions
# =============================================================================


class ExecutionStatus(str, Enum):
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"


class EndReason(str, Enum):
    """extra: why an execution ended `error`, where it matters to find them again (`?reason=`)."""

    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


class Execution(BaseModel):
    """A single execution/run of a flow."""

    id: UUID
    flow_id: UUID = Field(alias="flowId")
    trigger_id: UUID | None = Field(default=None, alias="triggerId")
    trigger_type: TriggerType = Field(alias="triggerType")
    status: ExecutionStatus
    started_at: datetime = Field(alias="startedAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    duration_ms: int | None = Field(default=None, alias="durationMs")
    error_message: str | None = Field(default=None, alias="errorMessage")
    input_payload: str | None = Field(default=None, alias="inputPayload")
    output_payload: str | None = Field(default=None, alias="outputPayload")
    # extra (docs/executions.md, "Operating runs"): retryOf is the execution a retry repeats, retriedBy its latest
    # retry; cancelled is true for an execution ended by a cancel (status error, errorMessage "cancelled"); reason
    # is why an error was recorded where it matters to find them again ("dead_letter", "cancelled").
    retry_of: UUID | None = Field(default=None, alias="retryOf")
    retried_by: UUID | None = Field(default=None, alias="retriedBy")
    cancelled: bool | None = None
    reason: EndReason | None = None
    # extra: the flow version whose organismYaml the execution runs (the one the flow was started with)
    flow_version: int | None = Field(default=None, alias="flowVersion")



class BulkRetryRequest(BaseModel):
    """extra: which ended executions of a flow to retry (docs/executions.md, "Operating runs")."""

    status: Literal["error", "timeout"]
    since: datetime  # started at or after; without a time zone, UTC
    limit: int = Field(default=100, ge=1, le=100)


class BulkRetryResult(BaseModel):
    """extra: the retries a bulk retry started; `details` says how many were not started and why (the quota)."""

    queued: int
    execution_ids: list[UUID] = Field(alias="executionIds")
    details: dict[str, Any] | None = None


class ExecutionSummary(BaseModel):
    """Abbreviated execution for list views."""

    id: UUID
    status: ExecutionStatus
    trigger_type: TriggerType = Field(alias="triggerType")
    started_at: datetime = Field(alias="startedAt")
    duration_ms: int | None = Field(default=None, alias="durationMs")


class OwnerExecutionSummary(ExecutionSummary):
    """extra: an execution in the caller's list across flows (`GET /api/v1/executions`)."""

    flow_id: UUID = Field(alias="flowId")
    flow_version: int | None = Field(default=None, alias="flowVersion")


class ExecutionCursorPage(BaseModel):
    """extra: a page of `GET /api/v1/executions`; `nextCursor` (opaque) asks for the next one, null at the end."""

    items: list[OwnerExecutionSummary]
    next_cursor: str | None = Field(default=None, alias="nextCursor")



# =============================================================================
# WASM Modules (Pro+)
# =============================================================================


class WasmModuleStatus(str, Enum):
    """extra: where a module's uploaded bytes stand (docs/wasm.md)."""

    PENDING = "pending"
    READY = "ready"
    INVALID = "invalid"


class WasmUpload(BaseModel):
    """extra: an S3 presigned POST: a browser sends `fields` plus `file` as one multipart form to `url`."""

    url: str
    fields: dict[str, str]
    expires_at: datetime = Field(alias="expiresAt")


class WasmModule(BaseModel):
    """A custom WASM module."""

    id: UUID
    user_id: UUID = Field(alias="userId")
    name: str
    description: str | None = None
    wit_interface: str | None = Field(default=None, alias="witInterface")
    size_bytes: int = Field(alias="sizeBytes")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    # extra: the validation's outcome (docs/wasm.md). sha256, exports (its handle_<name> functions) and imports
    # (the host functions it needs, as host.<name>) describe the bytes validated; null/[] while pending.
    status: WasmModuleStatus = WasmModuleStatus.PENDING
    error: str | None = None
    sha256: str | None = None
    exports: list[str] = Field(default_factory=list)
    imports: list[str] = Field(default_factory=list)
    # extra: only in the answer to a create, the presigned POST for the module's bytes.
    upload: WasmUpload | None = None



class WasmModuleSummary(BaseModel):
    """Abbreviated module for list views."""

    id: UUID
    name: str
    description: str | None = None
    created_at: datetime = Field(alias="createdAt")
    status: WasmModuleStatus = WasmModuleStatus.PENDING  # extra



class CreateWasmModuleRequest(BaseModel):
    """Request to create a WASM module (file uploaded separately)."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    wit_interface: str | None = Field(default=None, alias="witInterface")


class UpdateWasmModuleRequest(BaseModel):
    """extra: PATCH /api/v1/modules/{id} (the bytes change through /upload)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    wit_interface: str | None = Field(default=None, alias="witInterface")



# =============================================================================
# Marketplace
# =============================================================================


class MarketplaceListingType(str, Enum):
    TOOL = "tool"
    FLOW = "flow"


class ToolContent(BaseModel):
    """Content for a tool listing."""

    type: Literal["tool"] = "tool"
    wasm_module_id: UUID = Field(alias="wasmModuleId")
    wit_interface: str = Field(alias="witInterface")
    example_usage: str = Field(alias="exampleUsage")
    # extra (docs/marketplace.md): the version of the module the listing pinned at publish (or its last PATCH with a
    # wasmModuleId), which new installs get; set by the server, ignored in requests.
    sha256: str | None = None



class FlowTemplateContent(BaseModel):
    """Content for a flow template listing."""

    type: Literal["flow"] = "flow"
    organism_yaml: str = Field(alias="organismYaml")
    canvas_state: CanvasState = Field(alias="canvasState")



MarketplaceContent = Annotated[ToolContent | FlowTemplateContent, Field(discriminator="type")]


class MarketplaceListing(BaseModel):
    """A marketplace listing (tool or flow template)."""

    id: UUID
    author_id: UUID = Field(alias="authorId")
    author_name: str = Field(alias="authorName")
    type: MarketplaceListingType
    name: str
    description: str
    category: str
    tags: list[str]
    downloads: int = 0
    rating: float | None = None
    content: MarketplaceContent
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")



class MarketplaceListingSummary(BaseModel):
    """Abbreviated listing for browse views."""

    id: UUID
    author_name: str = Field(alias="authorName")
    type: MarketplaceListingType
    name: str
    description: str
    category: str
    downloads: int
    rating: float | None = None



class PublishToMarketplaceRequest(BaseModel):
    """Request to publish to marketplace."""

    type: MarketplaceListingType
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=10, max_length=2000)
    category: str
    tags: list[str] = Field(default_factory=list, max_length=10)
    content: MarketplaceContent


class UpdateMarketplaceListingRequest(BaseModel):
    """extra: PATCH /api/v1/marketplace/{id}, by its author; only the fields given change (docs/marketplace.md)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, min_length=10, max_length=2000)
    category: str | None = None
    tags: list[str] | None = Field(default=None, max_length=10)
    content: MarketplaceContent | None = None


class RateListingRequest(BaseModel):
    """extra: POST /api/v1/marketplace/{id}/rating."""

    stars: int = Field(ge=1, le=5)


class InstalledTool(BaseModel):
    """extra: a marketplace tool the caller installed; flows use it as `handler: <handler>` (docs/marketplace.md)."""

    listing_id: UUID = Field(alias="listingId")
    module_id: UUID = Field(alias="moduleId")
    sha256: str
    handler: str
    name: str
    exports: list[str] = Field(default_factory=list)
    installed_at: datetime = Field(alias="installedAt")


# =============================================================================
# Project Memory (Pro+)
# =============================================================================


class ProjectMemory(BaseModel):
    """Project memory status for a flow."""

    flow_id: UUID = Field(alias="flowId")
    enabled: bool = False
    used_bytes: int = Field(default=0, alias="usedBytes")
    max_bytes: int = Field(alias="maxBytes")
    keys: list[str] = Field(default_factory=list)
    has_more_keys: bool = Field(default=False, alias="hasMoreKeys")  # extra: `keys` holds the first 1000 only



class MemoryEntry(BaseModel):
    """A single memory entry."""

    key: str
    value: str # JSON string
    size_bytes: int = Field(alias="sizeBytes")
    updated_at: datetime = Field(alias="updatedAt")
    version: int = 0  # extra: changes on every write (If-Match)
    expires_at: datetime | None = Field(default=None, alias="expiresAt")  # extra


class UpdateProjectMemoryRequest(BaseModel):
    """extra: PATCH /flows/{id}/memory."""

    enabled: bool = Field(strict=True)


class PutMemoryEntryRequest(BaseModel):
    """extra: PUT /flows/{id}/memory/entries/{key}; `value` is any JSON (null included)."""

    value: Any
    ttl_seconds: int | None = Field(default=None, alias="ttlSeconds", ge=1, le=31_536_000, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _value_is_required(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data:
            raise ValueError("value is required (any JSON, null included)")
        return data



# =============================================================================
# Logs
# =============================================================================


class LogLevel(str, Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogEntry(BaseModel):
    """A log entry from a running flow."""

    timestamp: datetime
    level: LogLevel
    message: str
    metadata: dict[str, Any] | None = None


# =============================================================================
# Stats
# =============================================================================


class FlowStats(BaseModel):
    """Statistics for a single flow."""

    flow_id: UUID = Field(alias="flowId")
    executions_total: int = Field(alias="executionsTotal")
    executions_success: int = Field(alias="executionsSuccess")
    executions_error: int = Field(alias="executionsError")
    avg_duration_ms: float = Field(alias="avgDurationMs")
    last_executed_at: datetime | None = Field(default=None, alias="lastExecutedAt")



class UsageStats(BaseModel):
    """Usage statistics for billing/limits."""

    user_id: UUID = Field(alias="userId")
    period: Literal["day", "month"]
    flow_count: int = Field(alias="flowCount")
    execution_count: int = Field(alias="executionCount")
    execution_limit: int = Field(alias="executionLimit")
    # LLM tokens (input + output) the user's agents used in the period, and the tier's monthly LLM token quota.
    token_count: int = Field(0, alias="tokenCount")
    token_limit: int = Field(0, alias="tokenLimit")



# =============================================================================
# Secrets (extra: docs/security.md)
# =============================================================================


class PutSecretRequest(BaseModel):
    """A secret's value: stored encrypted, never returned."""

    value: str = Field(min_length=1)


class Secret(BaseModel):
    """A stored secret as the API shows it: its name and the last 4 characters of its value."""

    name: str
    hint: str
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
