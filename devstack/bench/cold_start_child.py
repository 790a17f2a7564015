"""One cold start, in a fresh process: import a function's handler module and serve its first request.

Prints, as JSON, the CPU milliseconds this process spent from its first line of work to the response (CPU time
is robust to other load on the machine; the gap to wall time is mostly waiting on the embedded AWS).
argv: code_dir module attribute method path route_key
"""

import time

started = time.process_time()
started_wall = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

code_dir, module_name, attribute, method, path, route_key = sys.argv[1:7]
sys.path.insert(0, code_dir)
handler = getattr(importlib.import_module(module_name), attribute)
imported = time.process_time()

from devstack.events import LambdaContext, http_api_event  # noqa: E402

event = http_api_event(
    method, path, route_key=route_key, claims={"sub": "user_bench", "email": "bench@example.com"}
)
response = handler(event, LambdaContext(module_name))
finished = time.process_time()
finished_wall = time.perf_counter()
print(
    json.dumps(
        {
            "status": response["statusCode"],
            "import_ms": (imported - started) * 1000,
            "total_ms": (finished - started) * 1000,
            "wall_ms": (finished_wall - started_wall) * 1000,
        }
    )
)
