// Values of every contract type, written as the frontend writes them: `make types` type-checks this file with
// `tsc --strict` against api.d.ts (generated from openapi.json), so a contract field renamed, dropped or retyped
// in the API breaks the check. Object literals are checked for excess properties, so a name only the frontend
// knows fails too.
import type { components, operations, paths } from "./api.d.ts";

type Schemas = components["schemas"];

const at = "2026-12-07T12:00:00Z";
const flowId = "3f2b6c1e-0000-4000-8000-000000000001";
const userId = "9d1c2b3a-0000-4000-8000-000000000009";

export const user: Schemas["User"] = {
  id: userId,
  clerkId: "user_demo",
  email: "demo@example.com",
  name: "Demo User",
  avatarUrl: null,
  tier: "pro",
  createdAt: at,
};

const canvasState: Schemas["CanvasState"] = {
  nodes: [{ id: "n1", type: "listener", position: { x: 0, y: 0 }, data: { label: "upper" } }],
  edges: [{ id: "e1", source: "n1", target: "n2", sourceHandle: null, targetHandle: null }],
  viewport: { x: 0, y: 0, zoom: 1 },
};

export const flow: Schemas["Flow"] = {
  id: flowId,
  userId,
  name: "Shout",
  description: null,
  organismYaml: "organism: {name: shout}",
  canvasState,
  status: "running",
  containerId: null,
  errorMessage: null,
  createdAt: at,
  updatedAt: at,
};

export const webhookTrigger: Schemas["Trigger"] = {
  id: "7c1d2e3f-0000-4000-8000-000000000002",
  flowId,
  type: "webhook",
  name: "GitHub push",
  config: {
    type: "webhook",
    verify: { scheme: "hmac-sha256", header: "X-Hub-Signature-256", secret: "secret('GITHUB')" },
    rate_limit: { per_second: 5, burst: 10 },
  },
  webhookToken: "token",
  webhookUrl: "https://api.example.com/webhooks/token",
  createdAt: at,
  nextRunAt: null,
  nextRunTimes: null,
};

export const scheduleTrigger: Schemas["Trigger"] = {
  id: "7c1d2e3f-0000-4000-8000-000000000003",
  flowId,
  type: "schedule",
  name: "Nightly",
  config: { type: "schedule", cron: "0 3 * * *", timezone: "Europe/Berlin" },
  createdAt: at,
  nextRunAt: at,
  nextRunTimes: [at],
};

export const manualTrigger: Schemas["Trigger"] = {
  id: "7c1d2e3f-0000-4000-8000-000000000004",
  flowId,
  type: "manual",
  name: "By hand",
  config: { type: "manual" },
  createdAt: at,
};

export const execution: Schemas["Execution"] = {
  id: "1e2d3c4b-0000-4000-8000-000000000005",
  flowId,
  triggerId: null,
  triggerType: "manual",
  status: "success",
  startedAt: at,
  completedAt: at,
  durationMs: 12,
  errorMessage: null,
  inputPayload: '{"name": "ada"}',
  outputPayload: '{"shout": "ADA"}',
  retryOf: null,
  retriedBy: null,
  cancelled: null,
  reason: null,
};

export const wasmModule: Schemas["WasmModule"] = {
  id: "5a7e0c2d-0000-4000-8000-000000000003",
  userId,
  name: "Echo",
  description: null,
  witInterface: null,
  sizeBytes: 1024,
  createdAt: at,
  updatedAt: at,
  status: "ready",
  error: null,
  sha256: "0".repeat(64),
  exports: ["handle_echo"],
  imports: [],
  upload: { url: "https://bucket.s3.amazonaws.com/", fields: { key: "uploads/x" }, expiresAt: at },
};

export const toolListing: Schemas["MarketplaceListing"] = {
  id: "6b8f1d3e-0000-4000-8000-000000000006",
  authorId: userId,
  authorName: "Demo User",
  type: "tool",
  name: "Echo tool",
  description: "Echoes its input",
  category: "utilities",
  tags: ["echo"],
  downloads: 3,
  rating: 4.5,
  content: { type: "tool", wasmModuleId: wasmModule.id, witInterface: "echo", exampleUsage: "echo(x)" },
  createdAt: at,
  updatedAt: at,
};

export const flowTemplateListing: Schemas["MarketplaceListing"] = {
  ...toolListing,
  type: "flow",
  content: { type: "flow", organismYaml: flow.organismYaml, canvasState },
};

export const projectMemory: Schemas["ProjectMemory"] = {
  flowId,
  enabled: true,
  usedBytes: 42,
  maxBytes: 1048576,
  keys: ["greeting"],
  hasMoreKeys: false,
};

export const memoryEntry: Schemas["MemoryEntry"] = {
  key: "greeting",
  value: '"hello"',
  sizeBytes: 7,
  updatedAt: at,
  version: 1,
  expiresAt: null,
};

export const logEntry: Schemas["LogEntry"] = { timestamp: at, level: "info", message: "started", metadata: null };

export const flowStats: Schemas["FlowStats"] = {
  flowId,
  executionsTotal: 3,
  executionsSuccess: 2,
  executionsError: 1,
  avgDurationMs: 12.5,
  lastExecutedAt: at,
};

export const usageStats: Schemas["UsageStats"] = {
  userId,
  period: "month",
  flowCount: 1,
  executionCount: 3,
  executionLimit: 1000,
  tokenCount: 0,
  tokenLimit: 100000,
};

export const flowPage: Schemas["PaginatedResponse_FlowSummary_"] = {
  items: [{ id: flowId, name: flow.name, description: null, status: "running", updatedAt: at }],
  total: 1,
  page: 1,
  pageSize: 20,
  hasMore: false,
};

export const apiError: Schemas["ApiError"] = {
  code: "validation_error",
  message: "Request validation failed",
  details: { "body.name": "String should have at most 100 characters" },
};

// The routes answer these types: what `GET /api/v1/flows` returns is a page of flows, and its 404 is an
// ApiError whose code the document lists.
type Json<R> = R extends { content: { "application/json": infer Body } } ? Body : never;
export const listed: Json<paths["/api/v1/flows"]["get"]["responses"][200]> = flowPage;
export const started: Json<operations["StartFlow"]["responses"][200]> = flow;
export const notFound: Json<operations["GetFlow"]["responses"][404]> = { code: "not_found", message: "Flow not found" };
