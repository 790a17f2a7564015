"""Safe loading and validation of organism YAML, and the cache of loaded organisms.

Loading never runs user code: only YAML's safe types are built, handlers are names from the built-in registry,
and aliases may not expand a document past a fixed size (a "billion laughs" document is refused while it is
still a small node graph). Loaded organisms are cached by a hash of their text, so repeated runs of one flow
parse and compile nothing.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

import yaml

from bloxserver.engine.base import InvalidConfig, is_finite_number, is_positive_number
from bloxserver.engine.context import FlowContext
from bloxserver.engine.model import LlmChoice, Listener, ListenerSpec, Organism, OrganismError, ValidationIssue
from bloxserver.engine.registry import HANDLERS, handler_factory, is_wasm_handler
from bloxserver.engine.settings import get_engine_settings
from bloxserver.engine.wasm_tool import module_id_of
from bloxserver.engine.yamlvalues import shown

MAX_YAML_CHARS = 256 * 1024
MAX_EXPANDED_NODES = 50_000
# Far more than any setting needs, and short enough that every integer prints (Python refuses past 4300 digits).
MAX_INTEGER_CHARS = 1000
CACHE_SIZE = 64
# A run keeps each invocation's log records until it ends (2.2 million took 1 GB): this keeps them to a few MB.
MAX_ITERATIONS = 10_000
# The executor's Lambda timeout (bloxserver.executions.EXECUTOR_TIMEOUT_SECONDS): no run lasts longer.
MAX_TIMEOUT_SECONDS = 900

LLM_PROVIDERS = ("bedrock", "openai")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOP_LEVEL_KEYS = set("organism listeners llm max_iterations timeout_seconds max_tokens_per_thread log_payloads".split())
ORGANISM_KEYS = {"name", "description", "entry", "max_tokens_per_thread"}
LLM_KEYS = {"provider", "model", "temperature", "max_tokens"}
LISTENER_KEYS = set(
    "name description handler payload_class agent peers next prompt timeout_seconds config model temperature max_tokens"
    .split()
)

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT_TAG = "tag:yaml.org,2002:int"


class _Loader(_SafeLoader):
    """The safe loader, with every value it cannot build reported as a YAML error at its position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT_TAG and len(node.value) > MAX_INTEGER_CHARS:
            problem = f"integers are limited to {MAX_INTEGER_CHARS} characters"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # SafeConstructor raises plain Python errors for a scalar that does not fit its tag (`2024-02-30`,
            # `!!bool maybe`), which would otherwise escape validation.
            problem = f"this value is not a valid {node.tag.removeprefix('tag:yaml.org,2002:')}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.issue = ValidationIssue(code, message)


def _check_nodes(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Counts the nodes `node` stands for once aliases are expanded, refusing Python tags and recursive aliases."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _Refused("yaml_syntax", "recursive YAML aliases are not allowed")
    if node.tag.startswith("tag:yaml.org,2002:python/"):
        message = f"YAML tag {node.tag!r} is not allowed: organisms cannot construct Python objects"
        raise _Refused("yaml_syntax", message)
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_check_nodes(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_check_nodes(k, sizes, open_nodes) + _check_nodes(v, sizes, open_nodes) for k, v in node.value)
    open_nodes.discard(key)
    if size > MAX_EXPANDED_NODES:
        raise _Refused("document_too_large", f"the document expands to more than {MAX_EXPANDED_NODES} YAML nodes")
    sizes[key] = size
    return size


def parse_yaml(text: str) -> Any:
    """YAML text to plain data (mappings, lists, scalars); raises _Refused with a `yaml_syntax` or size issue."""
    if len(text) > MAX_YAML_CHARS:
        raise _Refused("document_too_large", f"organism YAML is larger than {MAX_YAML_CHARS} characters")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _Refused("yaml_syntax", "the organism YAML is empty")
        _check_nodes(node, {}, set())
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _Refused("yaml_syntax", f"invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise _Refused("yaml_syntax", "the YAML document is nested too deeply") from exc
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, context: FlowContext) -> None:
        from bloxserver.limits import run_limits_for

        self.context = context
        self.issues: list[ValidationIssue] = []
        # The owner's tier's ceilings (bloxserver.limits.RUN_LIMITS); none for the engine used as a library.
        self.tier_limits = run_limits_for(context.owner_tier) if context.owner_tier else None

    def tier_maximum(self, setting: str) -> int | None:
        return getattr(self.tier_limits, setting) if self.tier_limits else None

    def issue(self, code: str, message: str, listener: str | None = None, severity: str = "error") -> None:
        self.issues.append(ValidationIssue(code, message, listener, severity))  # type: ignore[arg-type]

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == "error" for issue in self.issues)

    def warn_unknown_keys(self, mapping: dict, allowed: set[str], where: str, listener: str | None = None) -> None:
        for key in mapping:
            if key not in allowed:
                self.issue("unknown_key", f"{where}: unknown key {shown(key)} is ignored", listener, "warning")

    def number(
        self,
        mapping: dict,
        key: str,
        default: float | None,
        where: str,
        listener: str | None = None,
        integer: bool = False,
        maximum: int | None = None,
        tier_maximum: int | None = None,
    ) -> Any:
        """`mapping[key]`, a positive number, at most `maximum` and the owner's tier's `tier_maximum` (an absent
        setting's default is lowered to the tier's); an issue and the default otherwise."""
        if default is not None and tier_maximum is not None:
            default = min(default, tier_maximum)
        value = mapping.get(key, default)
        if not is_positive_number(value, integer):
            kind = "a finite positive integer" if integer else "a finite positive number"
            self.issue("invalid_config", f"{where}.{key} must be {kind}, got {shown(value)}", listener)
            return default
        if maximum is not None and value > maximum:
            self.issue("invalid_config", f"{where}.{key} must be at most {maximum}, got {shown(value)}", listener)
            return default
        if tier_maximum is not None and value > tier_maximum:
            self.issue(
                "invalid_config",
                f"{where}.{key} must be at most {tier_maximum} on the {self.context.owner_tier} tier, got {shown(value)}",
                listener,
            )
            return default
        return value

    def names(self, mapping: dict, key: str, where: str, listener: str | None) -> tuple[str, ...]:
        value = mapping.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.issue("invalid_config", f"{where}.{key} must be a list of listener names", listener)
            return ()
        return tuple(dict.fromkeys(value))

    def llm_choice(self, mapping: dict, where: str, listener: str | None) -> LlmChoice:
        provider = mapping.get("provider")
        if provider is not None and provider not in LLM_PROVIDERS:
            self.issue("invalid_config", f"{where}.provider must be one of {', '.join(LLM_PROVIDERS)}", listener)
            provider = None
        model = mapping.get("model")
        if model is not None and not isinstance(model, str):
            self.issue("invalid_config", f"{where}.model must be a model id string", listener)
            model = None
        temperature = mapping.get("temperature")
        if temperature is not None and not is_finite_number(temperature):
            self.issue("invalid_config", f"{where}.temperature must be a finite number", listener)
            temperature = None
        max_tokens = None
        if "max_tokens" in mapping:
            max_tokens = self.number(
                mapping, "max_tokens", None, where, listener, integer=True, tier_maximum=self.tier_maximum("max_tokens")
            )
        return LlmChoice(provider, model, temperature, max_tokens)

    def listener_spec(self, index: int, entry: Any, seen: set[str]) -> ListenerSpec | None:
        where = f"listeners[{index}]"
        if not isinstance(entry, dict):
            self.issue("invalid_config", f"{where} must be a mapping")
            return None
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            self.issue(
                "invalid_node_name",
                f"{where}: listener name {name!r} must be 1-64 letters, digits, '_' or '-'",
                name if isinstance(name, str) else None,
            )
            return None
        if name in seen:
            self.issue("duplicate_node_name", f"two listeners are named {name!r}", name)
            return None
        seen.add(name)
        where = f"listener {name!r}"
        self.warn_unknown_keys(entry, LISTENER_KEYS, where, name)
        errors_before = len(self.issues)

        agent = entry.get("agent", False)
        if not isinstance(agent, bool):
            self.issue("invalid_config", f"{where}: agent must be true or false", name)
        prompt = entry.get("prompt", "")
        if not isinstance(prompt, str):
            self.issue("invalid_config", f"{where}: prompt must be text", name)
            prompt = ""
        if agent is True and not prompt.strip():
            self.issue("missing_agent_prompt", f"{where} is an agent but has no prompt", name)
        handler_name = entry.get("handler", "llm" if agent is True else None)
        self.check_handler_name(handler_name, agent is True, where, name)
        description = entry.get("description", "")
        if not isinstance(description, str):
            self.issue("invalid_config", f"{where}: description must be text", name)
        elif not description.strip():
            self.issue("missing_description", f"{where} has no description", name, "warning")
        if not isinstance(entry.get("payload_class", ""), str):
            self.issue("invalid_config", f"{where}: payload_class must be text (a label; nothing is imported)", name)
        config = entry.get("config", {})
        if not isinstance(config, dict):
            self.issue("invalid_config", f"{where}: config must be a mapping", name)
        peers = self.names(entry, "peers", where, name)
        next_listeners = self.names(entry, "next", where, name)
        if next_listeners and agent is not True:
            self.issue("invalid_config", f"{where}: only agents have `next`; other listeners send to their peers", name)
        timeout_seconds = self.number(
            entry, "timeout_seconds", 30, where, name, maximum=MAX_TIMEOUT_SECONDS,
            tier_maximum=self.tier_maximum("timeout_seconds"),
        )
        llm = self.llm_choice(entry, where, name)

        if any(issue.severity == "error" for issue in self.issues[errors_before:]):
            return None
        return ListenerSpec(
            name=name,
            description=description,
            handler_name=handler_name,
            config=config,
            peers=peers,
            agent=agent,
            prompt=prompt,
            next=next_listeners,
            timeout_seconds=timeout_seconds,
            llm=llm,
        )

    def check_handler_name(self, handler_name: Any, agent: bool, where: str, name: str) -> None:
        if not isinstance(handler_name, str) or not handler_name:
            self.issue("unknown_handler", f"{where} needs a handler (one of {', '.join(HANDLERS)})", name)
        elif is_wasm_handler(handler_name):
            if self.context.wasm_module(module_id_of(handler_name)) is None:
                self.issue(
                    "unknown_handler",
                    f"{where}: WASM module {module_id_of(handler_name)!r} is not one of the flow owner's modules",
                    name,
                )
            elif agent:
                self.issue("invalid_config", f"{where}: an agent's handler is llm (omit handler)", name)
        elif handler_name not in HANDLERS:
            hint = " Python import paths are not allowed;" if "." in handler_name else ""
            self.issue(
                "unknown_handler",
                f"{where}: unknown handler {handler_name!r}.{hint} built-in handlers are {', '.join(HANDLERS)}, "
                "and wasm:<module id> runs one of your WASM modules",
                name,
            )
        elif agent and handler_name != "llm":
            self.issue("invalid_config", f"{where}: an agent's handler is llm (omit handler)", name)
        elif handler_name == "llm" and not agent:
            self.issue("invalid_config", f"{where}: the llm handler runs agents: set agent: true and a prompt", name)

    def build(self, data: Any) -> Organism | None:
        if not isinstance(data, dict):
            self.issue("invalid_config", "the organism YAML must be a mapping with `organism` and `listeners`")
            return None
        self.warn_unknown_keys(data, TOP_LEVEL_KEYS, "top level")
        header = data.get("organism", {})
        if not isinstance(header, dict):
            self.issue("invalid_config", "`organism` must be a mapping with at least a name")
            header = {}
        self.warn_unknown_keys(header, ORGANISM_KEYS, "organism")
        name = header.get("name", "unnamed")
        if not isinstance(name, str) or not name.strip():
            self.issue("invalid_config", "organism.name must be non-empty text")
        log_payloads = data.get("log_payloads", False)
        if not isinstance(log_payloads, bool):
            self.issue("invalid_config", "log_payloads must be true or false")
        max_iterations = self.number(
            data, "max_iterations", 100, "flow", integer=True, maximum=MAX_ITERATIONS,
            tier_maximum=self.tier_maximum("max_iterations"),
        )
        timeout_seconds = self.number(
            data, "timeout_seconds", 300, "flow", maximum=MAX_TIMEOUT_SECONDS,
            tier_maximum=self.tier_maximum("timeout_seconds"),
        )
        # The original put the token budget at the top level in code and under `organism` in its docs: accept both.
        token_source = data if "max_tokens_per_thread" in data else header
        max_tokens = self.number(
            token_source, "max_tokens_per_thread", 100_000, "flow", integer=True,
            tier_maximum=self.tier_maximum("max_tokens_per_thread"),
        )
        llm_section = data.get("llm", {})
        if not isinstance(llm_section, dict):
            self.issue("invalid_config", "`llm` must be a mapping")
            llm_section = {}
        self.warn_unknown_keys(llm_section, LLM_KEYS, "llm (keys never come from YAML)")
        llm = self.llm_choice(llm_section, "llm", None)

        entries = data.get("listeners")
        if not isinstance(entries, list) or not entries:
            self.issue("no_listeners", "`listeners` must be a non-empty list")
            return None
        seen: set[str] = set()
        specs = [self.listener_spec(index, entry, seen) for index, entry in enumerate(entries)]
        first_name = next((e.get("name") for e in entries if isinstance(e, dict)), None)
        entry_name = header.get("entry", first_name)
        if not isinstance(entry_name, str):
            if "entry" in header:
                self.issue("invalid_config", f"organism.entry must be a listener name, got {shown(entry_name)}")
            # Without `entry`, the first listener's name is not text: that listener's issue is reported already.
            entry_name = None
        elif "entry" in header and entry_name not in seen:
            self.issue("unknown_entry", f"organism.entry {entry_name!r} is not a listener")
        for spec in specs:
            if spec is not None:
                for target in (*spec.peers, *spec.next):
                    if target not in seen:
                        self.issue("unknown_peer", f"listener {spec.name!r} names unknown peer {target!r}", spec.name)
        for spec in specs:
            if spec is not None and spec.agent:
                self.check_model(llm, spec)
        listeners = {spec.name: listener for spec in specs if spec and (listener := self.listener(spec))}
        self.check_graph(specs, entry_name)
        if self.has_errors:
            return None
        return Organism(
            name=name,
            entry=entry_name,
            listeners=listeners,
            max_iterations=max_iterations,
            timeout_seconds=timeout_seconds,
            max_tokens_per_thread=max_tokens,
            log_payloads=log_payloads,
            llm=llm,
            issues=tuple(self.issues),
            # Handlers that take secret references (http) say which; the others have none.
            secret_names=frozenset().union(
                *(getattr(listener.handler, "secret_names", ()) for listener in listeners.values())
            ),
        )

    def check_model(self, flow_llm: LlmChoice, spec: ListenerSpec) -> None:
        """An agent's model must be its provider's deployment default or one of the owner's tier's models."""
        if self.tier_limits is None:
            return
        from bloxserver.engine.llm import resolve_llm_choice

        settings = get_engine_settings()
        choice = resolve_llm_choice(settings, flow_llm, spec.llm)
        default = settings.bedrock_model_id if choice.provider == "bedrock" else settings.openai_model
        allowed = (default, *self.tier_limits.models.get(choice.provider, ()))
        if choice.model not in allowed:
            where = f"listener {spec.name!r}" if spec.llm.model else "llm"
            self.issue(
                "invalid_config",
                f"{where}.model {choice.model!r} is not available on the {self.context.owner_tier} tier; "
                f"{choice.provider} models allowed: {', '.join(dict.fromkeys(allowed))}",
                spec.name,
            )

    def listener(self, spec: ListenerSpec) -> Listener | None:
        try:
            handler = handler_factory(spec.handler_name)(spec, self.context)
        except InvalidConfig as exc:
            self.issue("invalid_config", f"listener {spec.name!r}: {exc}", spec.name)
            return None
        for code, message in getattr(handler, "validation_warnings", ()):
            self.issue(code, f"listener {spec.name!r}: {message}", spec.name, "warning")
        return Listener(spec, handler)

    def check_graph(self, specs: list[ListenerSpec | None], entry_name: Any) -> None:
        known = {spec.name: spec for spec in specs if spec is not None}
        edges = {name: [t for t in (*spec.peers, *spec.next) if t in known] for name, spec in known.items()}
        if entry_name in known:
            reached, stack = {entry_name}, [entry_name]
            while stack:
                for target in edges[stack.pop()]:
                    if target not in reached:
                        reached.add(target)
                        stack.append(target)
            for name in known:
                if name not in reached:
                    self.issue(
                        "unreachable_entry_node",
                        f"listener {name!r} cannot be reached from the entry {entry_name!r}",
                        name,
                        "warning",
                    )
        # Iterative depth-first search; an edge back to a listener still on the path closes a cycle.
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in known:
            if root in state:
                continue
            state[root] = 1
            path = [(root, iter(edges[root]))]
            while path:
                node, targets = path[-1]
                target = next(targets, None)
                if target is None:
                    state[node] = 2
                    path.pop()
                elif state.get(target) == 1:
                    self.issue(
                        "cycle_detected",
                        f"listeners form a cycle through {target!r}; max_iterations bounds it",
                        target,
                        "info",
                    )
                elif target not in state:
                    state[target] = 1
                    path.append((target, iter(edges[target])))


def _compile(text: Any, context: FlowContext) -> tuple[Organism | None, tuple[ValidationIssue, ...]]:
    if not isinstance(text, str):
        return None, (ValidationIssue("yaml_syntax", "the organism YAML must be text"),)
    try:
        data = parse_yaml(text)
    except _Refused as refused:
        return None, (refused.issue,)
    builder = _Builder(context)
    organism = builder.build(data)
    return organism, tuple(builder.issues)


_cache: OrderedDict[tuple[bytes, FlowContext], tuple[Organism | None, tuple[ValidationIssue, ...]]] = OrderedDict()
_cache_lock = threading.Lock()


def _compiled(text: Any, context: FlowContext) -> tuple[Organism | None, tuple[ValidationIssue, ...]]:
    if not isinstance(text, str) or len(text) > MAX_YAML_CHARS:
        return _compile(text, context)
    key = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), context)
    with _cache_lock:
        if (hit := _cache.get(key)) is not None:
            _cache.move_to_end(key)
            return hit
    compiled = _compile(text, context)
    with _cache_lock:
        _cache[key] = compiled
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def validate(organism_yaml: str, context: FlowContext = FlowContext()) -> list[ValidationIssue]:
    """Every finding about `organism_yaml` for a flow in `context`: errors block a start, warnings and infos do not."""
    return list(_compiled(organism_yaml, context)[1])


def load_organism(organism_yaml: str, context: FlowContext = FlowContext()) -> Organism:
    """The loaded organism, ready to run; raises OrganismError listing the issues when any is an error."""
    organism, issues = _compiled(organism_yaml, context)
    if organism is None:
        raise OrganismError(list(issues))
    return organism


def wasm_module_ids(organism_yaml: Any) -> list[str]:
    """The module ids the listeners' `wasm:<module id>` handlers name, in order (none when the YAML cannot be read:
    validation then reports why): the modules whose facts a FlowContext for this YAML needs."""
    if not isinstance(organism_yaml, str):
        return []
    try:
        data = parse_yaml(organism_yaml)
    except _Refused:
        return []
    entries = data.get("listeners") if isinstance(data, dict) else None
    handlers = [entry.get("handler") for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
    names = [handler for handler in handlers if isinstance(handler, str) and is_wasm_handler(handler)]
    return list(dict.fromkeys(module_id_of(name) for name in names))
