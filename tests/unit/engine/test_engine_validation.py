"""Validation and safe loading of organism YAML: what `validate` reports and what `load_organism` refuses."""

from __future__ import annotations

import textwrap

import pytest

from bloxserver import executions
from bloxserver.engine import DEFAULT_ORGANISM_YAML, OrganismError, load_organism, loader, validate
from bloxserver.errors import ErrorCode


def organism(listeners: str, header: str = "organism: {name: test}") -> str:
    return header + "\nlisteners:\n" + textwrap.indent(textwrap.dedent(listeners), "  ")


def codes(yaml_text: str) -> set[tuple[str, str | None, str]]:
    return {(issue.code, issue.listener, issue.severity) for issue in validate(yaml_text)}


def test_the_default_template_validates_without_any_issue():
    assert validate(DEFAULT_ORGANISM_YAML) == []


def test_issues_serialise_to_the_api_shape():
    [issue] = validate(organism("- {name: a, description: x, handler: nope}"))
    assert issue.as_dict() == {
        "code": "unknown_handler",
        "message": issue.message,
        "listener": "a",
        "severity": "error",
    }


def test_duplicate_listener_names_are_an_error():
    yaml_text = organism("""
        - {name: a, description: x, handler: output}
        - {name: a, description: y, handler: output}
    """)
    assert ("duplicate_node_name", "a", "error") in codes(yaml_text)


@pytest.mark.parametrize("name", ["", "calculator.add", "has space", "x" * 65, 42, ["a"], {"a": 1}])
def test_names_must_be_letters_digits_underscores_or_dashes(name):
    yaml_text = organism(f"- {{name: {name!r}, description: x, handler: output}}")
    assert "invalid_node_name" in {code for code, _, _ in codes(yaml_text)}


def test_an_agent_without_a_prompt_is_an_error():
    yaml_text = organism("- {name: helper, description: helps, agent: true}")
    assert ("missing_agent_prompt", "helper", "error") in codes(yaml_text)


@pytest.mark.parametrize(
    ("handler", "hint"),
    [
        ("handlers.hello.handle_greeting", "Python import paths are not allowed"),
        ("os.system", "Python import paths are not allowed"),
        ("frobnicate", "built-in handlers are"),
        ("wasm:scorer", "WASM"),
    ],
)
def test_handlers_outside_the_registry_are_refused(handler, hint):
    [issue] = validate(organism(f"- {{name: a, description: x, handler: '{handler}'}}"))
    assert (issue.code, issue.listener, issue.severity) == ("unknown_handler", "a", "error")
    assert hint in issue.message


def test_peers_and_next_must_name_listeners():
    yaml_text = organism("""
        - {name: a, description: x, handler: transform, config: {expression: '@'}, peers: [ghost]}
        - {name: b, description: x, agent: true, prompt: go, next: [phantom]}
    """)
    found = codes(yaml_text)
    assert ("unknown_peer", "a", "error") in found
    assert ("unknown_peer", "b", "error") in found


def test_an_explicit_entry_must_name_a_listener():
    yaml_text = organism("- {name: a, description: x, handler: output}", "organism: {name: t, entry: b}")
    assert ("unknown_entry", None, "error") in codes(yaml_text)


@pytest.mark.parametrize("entry", ["[a]", "{a: 1}", "7", "null"])
def test_an_entry_that_is_not_a_name_is_invalid_config(entry):
    yaml_text = organism("- {name: a, description: x, handler: output}", f"organism: {{name: t, entry: {entry}}}")
    [issue] = validate(yaml_text)
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", None, "error")
    assert "organism.entry must be a listener name" in issue.message


def test_listeners_no_path_reaches_are_a_warning_and_cycles_an_info():
    yaml_text = organism("""
        - {name: a, description: x, handler: transform, config: {expression: '@'}, peers: [b]}
        - {name: b, description: x, handler: transform, config: {expression: '@'}, peers: [a]}
        - {name: lonely, description: x, handler: output}
    """)
    found = codes(yaml_text)
    assert ("unreachable_entry_node", "lonely", "warning") in found
    assert ("cycle_detected", "a", "info") in found
    assert load_organism(yaml_text).entry == "a"  # warnings and infos do not block loading


def test_an_agents_tools_count_as_reachable():
    yaml_text = organism("""
        - {name: agent, description: x, agent: true, prompt: go, peers: [tool]}
        - {name: tool, description: x, handler: output}
    """)
    assert validate(yaml_text) == []


@pytest.mark.parametrize(
    ("listener", "fragment"),
    [
        ("{name: a, description: x, handler: transform, config: {expression: 'foo[('}}", "invalid JMESPath"),
        ("{name: a, description: x, handler: transform, config: {}}", "exactly one of"),
        ("{name: a, description: x, handler: transform, config: {expression: '@', colour: red}}", "unknown config"),
        ("{name: a, description: x, handler: conditional, config: {when: [{if: '@', to: b}]}}", "peers"),
        ("{name: a, description: x, handler: http, config: {url: 'https://x/{{ (( }}'}}", "invalid JMESPath"),
        ("{name: a, description: x, handler: http, config: {url: 'https://x', method: BREW}}", "method"),
        ("{name: a, description: x, handler: output, timeout_seconds: -1}", "timeout_seconds"),
        ("{name: a, description: x, handler: llm}", "agent: true"),
        ("{name: a, description: x, handler: output, next: [a]}", "only agents"),
        (
            "{name: a, description: x, handler: transform, config: {set: {%s}}}"
            % ", ".join(f"k{i}: '@'" for i in range(101)),
            "config.set may hold at most 100 entries",
        ),
        (
            "{name: a, description: x, handler: conditional, peers: [a], config: {when: [%s]}}"
            % ", ".join("{if: '@', to: a}" for _ in range(101)),
            "config.when may hold at most 100 entries",
        ),
        (
            "{name: a, description: x, handler: http, config: {url: 'https://x', headers: {%s}}}"
            % ", ".join(f"X-{i}: v" for i in range(101)),
            "config.headers may hold at most 100 entries",
        ),
    ],
)
def test_config_a_handler_cannot_use_is_invalid_config(listener, fragment):
    issues = [issue for issue in validate(organism(f"- {listener}")) if issue.severity == "error"]
    assert [issue.code for issue in issues] == ["invalid_config"]
    assert fragment in issues[0].message


@pytest.mark.parametrize(
    ("listener", "where"),
    [
        ("{name: a, description: x, handler: output, config: {1: a}}", "config"),
        ("{name: a, description: x, handler: transform, config: {null: a, expression: '@'}}", "config"),
        ("{name: a, description: x, handler: output, config: {1: a, x: b}}", "config"),
        ("{name: a, description: x, agent: true, prompt: go, config: {yes: a}}", "config"),
        ("{name: a, description: x, handler: transform, config: {set: {1: '@'}}}", "config.set"),
        ("{name: a, description: x, handler: http, config: {url: 'https://x', headers: {null: v}}}", "config.headers"),
    ],
)
def test_config_keys_yaml_reads_as_numbers_null_or_booleans_are_invalid_config(listener, where):
    issues = [issue for issue in validate(organism(f"- {listener}")) if issue.severity == "error"]
    assert [(issue.code, issue.listener) for issue in issues] == [("invalid_config", "a")]
    assert f"{where} keys must be text" in issues[0].message


@pytest.mark.parametrize(
    ("header", "listener"),
    [
        ("organism: {name: t}\n1: x", "{name: a, description: x, handler: output}"),
        ("organism: {name: t, null: x}", "{name: a, description: x, handler: output}"),
        ("organism: {name: t}\nllm: {true: x}", "{name: a, description: x, handler: output}"),
        ("organism: {name: t}", "{name: a, description: x, handler: output, 2: x}"),
    ],
)
def test_other_keys_yaml_reads_as_numbers_null_or_booleans_are_unknown_keys(header, listener):
    [issue] = validate(organism(f"- {listener}", header))
    assert (issue.code, issue.severity) == ("unknown_key", "warning")


@pytest.mark.parametrize(
    ("header", "listener", "named"),
    [
        ("organism: {name: t, null: x}", "{name: a, description: x, handler: output}", "unknown key null is ignored"),
        ("organism: {name: t, yes: x}", "{name: a, description: x, handler: output}", "unknown key true is ignored"),
        (
            "organism: {name: t, entry: 2024-01-01}",
            "{name: a, description: x, handler: output}",
            "organism.entry must be a listener name, got the date 2024-01-01",
        ),
        (
            "organism: {name: t}",
            "{name: a, description: x, handler: transform, config: {expression: 2024-01-01}}",
            "expected a JMESPath expression string, got the date 2024-01-01",
        ),
        (
            "organism: {name: t}",
            "{name: a, description: x, handler: transform, config: {expression: [a]}}",
            "expected a JMESPath expression string, got a list",
        ),
    ],
)
def test_a_message_names_a_yaml_value_in_yamls_words_not_pythons(header, listener, named):
    messages = [issue.message for issue in validate(organism(f"- {listener}", header))]
    assert any(message.endswith(named) for message in messages), messages
    assert not any("datetime" in message or "None" in message or "True" in message for message in messages)


@pytest.mark.parametrize(
    "setting",
    [
        "timeout_seconds: .nan",
        "timeout_seconds: .inf",
        "timeout_seconds: 0x" + "f" * 300,  # an integer, but past the largest float
        "max_iterations: .inf",
        "max_tokens_per_thread: .nan",
        "llm: {temperature: .nan}",
        "llm: {max_tokens: .inf}",
    ],
)
def test_flow_settings_must_be_finite_numbers(setting):
    [issue] = validate(organism("- {name: a, description: x, handler: output}", f"organism: {{name: t}}\n{setting}"))
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", None, "error")
    assert "finite" in issue.message


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        # QA's cycle: a billion iterations kept 2.2 million log records (1 GB) in memory after 30 s.
        ("max_iterations: 1000000000", "flow.max_iterations must be at most 10000, got 1000000000"),
        ("timeout_seconds: 901", "flow.timeout_seconds must be at most 900, got 901"),
    ],
)
def test_flow_limits_beyond_what_a_run_can_hold_or_last_are_invalid_config(setting, message):
    [issue] = validate(organism("- {name: a, description: x, handler: output}", f"organism: {{name: t}}\n{setting}"))
    assert (issue.code, issue.listener, issue.severity, issue.message) == ("invalid_config", None, "error", message)


def test_a_listener_timeout_beyond_the_executors_is_invalid_config():
    [issue] = validate(organism("- {name: a, description: x, handler: output, timeout_seconds: 900.5}"))
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", "a", "error")
    assert issue.message == "listener 'a'.timeout_seconds must be at most 900, got 900.5"


def test_the_largest_limits_validate_and_the_timeout_limit_is_the_executors():
    header = "organism: {name: t}\nmax_iterations: 10000\ntimeout_seconds: 900"
    assert validate(organism("- {name: a, description: x, handler: output, timeout_seconds: 900}", header)) == []
    assert loader.MAX_TIMEOUT_SECONDS == executions.EXECUTOR_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    "setting", ["timeout_seconds: .nan", "timeout_seconds: -.inf", "temperature: .inf", "max_tokens: .nan"]
)
def test_listener_settings_must_be_finite_numbers(setting):
    [issue] = validate(organism(f"- {{name: a, description: x, agent: true, prompt: go, {setting}}}"))
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", "a", "error")
    assert "finite" in issue.message


@pytest.mark.parametrize(
    "listener",
    [
        "{name: a, description: x, handler: transform, config: {expression: 'nosuchfn(a)'}}",
        "{name: a, description: x, handler: output, config: {expression: '{x: [upper(a), nosuchfn(b)]}'}}",
        "{name: a, description: x, handler: http, config: {url: 'https://x/{{ nosuchfn(id) }}'}}",
    ],
)
def test_an_expression_calling_an_unknown_function_is_invalid_config_naming_it(listener):
    [issue] = validate(organism(f"- {listener}"))
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", "a", "error")
    assert "unknown function nosuchfn()" in issue.message


def output_shaped_by(expression: str) -> str:
    return organism(f"- {{name: a, description: x, handler: output, config: {{expression: '{expression}'}}}}")


@pytest.mark.parametrize(
    "expression",
    ["(" * 3000 + "a" + ")" * 3000, "!" * 3000 + "a", " | ".join(["a"] * 1000)],
    ids=["parentheses", "negations", "pipes"],
)
def test_an_expression_nested_too_deeply_to_evaluate_is_invalid_config(expression):
    [issue] = validate(output_shaped_by(expression))
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", "a", "error")
    assert "nests too deeply" in issue.message


@pytest.mark.parametrize(
    "expression",
    ["length(not_null(a, b))", "sort_by(items, &price)[0]", "concat(upper(a), to_string(add(b, `1`)))", "!" * 99 + "a"],
)
def test_expressions_using_builtin_and_engine_functions_and_moderate_nesting_validate(expression):
    assert validate(output_shaped_by(expression)) == []


def test_an_index_with_more_digits_than_python_reads_is_invalid_config_not_a_crash():
    [issue] = validate(output_shaped_by("a[" + "1" * 5000 + "]"))
    assert (issue.code, issue.listener, issue.severity) == ("invalid_config", "a", "error")
    assert "invalid JMESPath expression" in issue.message


def test_an_output_listener_cannot_have_peers():
    yaml_text = organism("""
        - {name: a, description: x, handler: output, peers: [b]}
        - {name: b, description: x, handler: output}
    """)
    assert ("invalid_config", "a", "error") in codes(yaml_text)


def test_unknown_keys_are_warnings_and_llm_keys_never_come_from_yaml():
    yaml_text = organism(
        "- {name: a, description: x, handler: output, trusted: true}",
        "organism: {name: t}\nllm: {provider: openai, api_key_env: OPENAI_API_KEY}",
    )
    found = codes(yaml_text)
    assert ("unknown_key", "a", "warning") in found
    assert ("unknown_key", None, "warning") in found
    assert not any(severity == "error" for _, _, severity in found)


@pytest.mark.parametrize(
    "yaml_text",
    [
        "organism: {name: t\nlisteners: [",
        "\tlisteners: - x",
        "",
        "organism: {name: t}\nlisteners: []",
        "just a string",
    ],
)
def test_malformed_documents_are_errors_not_exceptions(yaml_text):
    issues = validate(yaml_text)
    assert issues and all(issue.severity == "error" for issue in issues)
    assert {issue.code for issue in issues} <= {"yaml_syntax", "no_listeners", "invalid_config"}


@pytest.mark.parametrize(
    "value",
    ["2024-02-30", "!!bool maybe", "!!int abc", "!!float abc", "!!timestamp garbage", "1" * 5000, "-0x" + "f" * 5000],
    ids=["impossible date", "bool", "int", "float", "timestamp", "long integer", "long hexadecimal integer"],
)
def test_a_value_that_does_not_fit_its_yaml_type_is_a_syntax_error_at_its_position(value):
    [issue] = validate(f"organism: {{name: t}}\ntimeout_seconds: {value}\nlisteners: [{{name: a, handler: output}}]")
    assert issue.code == "yaml_syntax"
    assert "line 2" in issue.message


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!python/object:object {}"]
)
def test_python_tags_are_refused(tag):
    [issue] = validate(f"organism: {{name: t}}\nevil: {tag}\nlisteners: [{{name: a, handler: output}}]")
    assert issue.code == "yaml_syntax"
    assert "python" in issue.message.lower()


def test_a_billion_laughs_document_is_refused_before_it_expands():
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        levels.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
    [issue] = validate("\n".join(levels) + "\nlisteners: []\n")
    assert issue.code == "document_too_large"


def test_recursive_aliases_are_refused():
    [issue] = validate("loop: &loop [*loop]\nlisteners: []\n")
    assert issue.code == "yaml_syntax"


def test_modest_anchors_and_merge_keys_still_work():
    yaml_text = organism("""
        - &base {name: a, description: x, handler: transform, config: {expression: '@'}, peers: [b]}
        - <<: *base
          name: b
          handler: output
          config: {}
          peers: []
    """)
    assert validate(yaml_text) == []


def test_an_oversized_document_is_refused():
    [issue] = validate("# " + "x" * 300_000 + "\n" + DEFAULT_ORGANISM_YAML)
    assert issue.code == "document_too_large"


def test_load_organism_raises_with_every_issue_and_the_invalid_flow_code():
    yaml_text = organism("""
        - {name: a, description: x, handler: output}
        - {name: b, description: x, handler: nope}
        - {name: c, description: x, handler: output}
    """)
    with pytest.raises(OrganismError) as raised:
        load_organism(yaml_text)
    assert raised.value.code == ErrorCode.INVALID_FLOW
    assert [issue.code for issue in raised.value.issues] == ["unknown_handler", "unreachable_entry_node"]
    assert raised.value.details["issues"][0]["listener"] == "b"
    assert raised.value.message.startswith("listener 'b': unknown handler 'nope'")


def test_loading_the_same_text_twice_reuses_the_parsed_organism():
    text = organism("- {name: cached, description: x, handler: output}")
    assert load_organism(text) is load_organism(str(text))
