"""Organisms the product ships: the template of a new flow, and the reference flow the CPU benchmark runs."""

from __future__ import annotations

# A new flow's organism: no agent, so it runs with no LLM configured.
DEFAULT_ORGANISM_YAML = """\
organism:
  name: my-flow
listeners:
  - name: greeter
    description: Greets whoever the trigger payload names
    handler: transform
    config:
      set:
        greeting: "concat('Hello, ', name || 'world', '!')"
    peers: [result]
  - name: result
    description: The flow's output
    handler: output
"""

# The benchmark's reference flow (also in docs/organism.md): price a webhook order, branch on its total, tier it.
REFERENCE_FLOW_YAML = """\
organism:
  name: order-tiering
  entry: price
listeners:
  - name: price
    description: Computes the order total and a display label
    handler: transform
    config:
      set:
        total: "multiply(qty, price)"
        label: "upper(name)"
    peers: [route]
  - name: route
    description: Sends large orders to the premium tier
    handler: conditional
    config:
      when:
        - if: "total > `100`"
          to: premium
      default: standard
    peers: [premium, standard]
  - name: premium
    description: Marks the order premium
    handler: transform
    config:
      set:
        tier: "'premium'"
    peers: [result]
  - name: standard
    description: Marks the order standard
    handler: transform
    config:
      set:
        tier: "'standard'"
    peers: [result]
  - name: result
    description: The priced, tiered order
    handler: output
"""

REFERENCE_FLOW_INPUT = '{"name":"widget","qty":3,"price":50}'
