"""The handler registry: every handler a listener may name, and nothing else (users never make the server import
code). Handler modules depend on base.py only; this is the one module that knows them all.
"""

from __future__ import annotations

from bloxserver.engine.agent import Agent
from bloxserver.engine.base import HandlerFactory
from bloxserver.engine.builtins import Conditional, Output, Transform
from bloxserver.engine.http_handler import HttpRequest
from bloxserver.engine.memory_handler import MemoryHandler

HANDLERS: dict[str, HandlerFactory] = {
    "transform": Transform,
    "conditional": Conditional,
    "output": Output,
    "http": HttpRequest,
    "llm": Agent,
    "memory": MemoryHandler,
}
