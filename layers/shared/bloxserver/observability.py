"""The one logger and metrics of every function (Powertools; service name from POWERTOOLS_SERVICE_NAME).

Tracing is Lambda's active tracing (template: `Tracing: Active`), which records every invocation without an SDK
in the function. Powertools' Tracer would add the X-Ray SDK, whose import alone costs more than the whole
cold-start budget of an API function (docs/performance.md).
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="BloxServer")

# Most requests publish only the cold-start metric; Powertools would warn about that on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")
