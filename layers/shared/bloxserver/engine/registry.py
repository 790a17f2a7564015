"""The handler registry: every handler a listener may name, and nothing else (users never make the server import
code). Handler modules depend on base.py only; this is the one module that knows them all.
"""

from __future__ import annotations

from bloxserver.engine.agent import Agent
from bloxserver.engine.base import HandlerFactory
from bloxserver.engine.builtins import Conditional, Output, Transform
from bloxserver.engine.http_handler import HttpRequest
from bloxserver.engine.wasm_tool import WASM_HANDLER_PREFIX, WasmTool
from bloxserver.engine.memory_handler import MemoryHandler

HANDLERS: dict[str, HandlerFactory] = {
    "transform": Transform,
    "conditional": Conditional,
    "output": Output,
    "http": HttpRequest,
    "llm": Agent,
    "memory": MemoryHandler,
}


def is_wasm_handler(handler_name: str) -> bool:
    """`wasm:<module id>`: one of the flow owner's uploaded modules (docs/wasm.md)."""
    return handler_name.startswith(WASM_HANDLER_PREFIX)


def handler_factory(handler_name: str) -> HandlerFactory:
    """The class a listener's handler name builds (a known built-in, or a WASM module's)."""
    return WasmTool if is_wasm_handler(handler_name) else HANDLERS[handler_name]
