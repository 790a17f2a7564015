"""The flow engine: loads, validates and runs organism YAML. Pure library; the executor calls `run_flow`.

Importing it is cheap: boto3 and httpx load only when an agent or http listener runs, wasmtime only when a WASM
listener runs.
"""

from bloxserver.engine.context import FlowContext, MemoryStore, RunServices, StoreRefused, TokenQuota, WasmModuleFacts
from bloxserver.engine.examples import DEFAULT_ORGANISM_YAML, REFERENCE_FLOW_INPUT, REFERENCE_FLOW_YAML
from bloxserver.engine.loader import load_organism, validate, wasm_module_ids
from bloxserver.engine.model import EngineLog, EngineResult, Organism, OrganismError, ValidationIssue
from bloxserver.engine.runtime import run_flow
from bloxserver.engine.settings import EngineSettings, get_engine_settings

__all__ = [
    "DEFAULT_ORGANISM_YAML",
    "REFERENCE_FLOW_INPUT",
    "REFERENCE_FLOW_YAML",
    "RunServices",
    "StoreRefused",
    "EngineLog",
    "EngineResult",
    "EngineSettings",
    "FlowContext",
    "MemoryStore",
    "Organism",
    "RunServices",
    "OrganismError",
    "RunServices",
    "TokenQuota",
    "ValidationIssue",
    "get_engine_settings",
    "load_organism",
    "run_flow",
    "validate",
    "WasmModuleFacts",
    "wasm_module_ids",
]
