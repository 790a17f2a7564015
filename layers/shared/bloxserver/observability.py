"""The one logger, metrics and tracer of every function (Powertools; service name from POWERTOOLS_SERVICE_NAME)."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics(namespace="BloxServer")
tracer = Tracer()

# Most requests publish only the cold-start metric; Powertools would warn about that on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")
