"""Route selection as API Gateway HTTP APIs do it.

Priority (API Gateway developer guide, "Routing API requests"): a full match of path and method, then a match
through a greedy `{name+}` variable, then `$default`. Among full matches, literal segments beat `{name}` variables
(compared left to right) and an explicit method beats `ANY`; among greedy matches the longest prefix wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from devstack.template import HttpRoute


@dataclass(frozen=True)
class RouteMatch:
    route: HttpRoute
    path_parameters: dict[str, str]


class RouteTable:
    def __init__(self, routes: list[HttpRoute]) -> None:
        self.routes = [route for route in routes if route.path != "/$default"]
        defaults = [route for route in routes if route.path == "/$default"]
        if len(defaults) > 1:
            raise ValueError("template.yaml declares more than one $default route")
        self.default = defaults[0] if defaults else None

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        """The route API Gateway picks for a request, or None (API Gateway then answers 404 itself)."""
        segments = raw_path.split("/")[1:]
        candidates = []
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            parameters = _bind(route.path.split("/")[1:], segments)
            if parameters is None:
                continue
            candidates.append((_specificity(route), RouteMatch(route, parameters)))
        if candidates:
            return min(candidates, key=lambda candidate: candidate[0])[1]
        if self.default is not None:
            return RouteMatch(self.default, {})
        return None


def _is_variable(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _is_greedy(segment: str) -> bool:
    return _is_variable(segment) and segment.endswith("+}")


def _bind(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    """Path parameters (URL-decoded, as API Gateway passes them) if `segments` fit `pattern`, else None."""
    parameters: dict[str, str] = {}
    for position, part in enumerate(pattern):
        if _is_greedy(part):
            rest = segments[position:]
            if not rest or not rest[0]:
                return None
            parameters[part[1:-2]] = unquote("/".join(rest))
            return parameters
        if position >= len(segments):
            return None
        segment = segments[position]
        if _is_variable(part):
            if not segment:
                return None
            parameters[part[1:-1]] = unquote(segment)
        elif part != segment:
            return None
    return parameters if len(pattern) == len(segments) else None


def _specificity(route: HttpRoute) -> tuple:
    """Sort key: smaller is more specific."""
    pattern = route.path.split("/")[1:]
    greedy = bool(pattern) and _is_greedy(pattern[-1])
    return (
        greedy,
        -len(pattern) if greedy else 0,
        tuple(_is_variable(part) for part in pattern),
        route.method == "ANY",
    )
