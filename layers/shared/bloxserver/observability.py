"""The one logger, metrics and tracer of every function (Powertools; service name from POWERTOOLS_SERVICE_NAME)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics(namespace="BloxServer")
tracer = Tracer()
