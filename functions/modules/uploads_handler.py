"""S3 entry point of the modules resource group: the bucket's object-created notifications for module uploads
(template.yaml filters them to the uploads prefix); each validates the upload it names, as `complete` would."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from bloxserver.observability import logger, metrics

import modules_logic


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> None:
    for record in event.get("Records", []):
        # S3 URL-encodes the key in notifications (a space arrives as +).
        object_key = unquote_plus(record["s3"]["object"]["key"])
        modules_logic.upload_arrived(object_key)
