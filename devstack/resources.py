"""Create the template's stateful resources in an AWS endpoint (moto, embedded or in server mode).

Tables are built from their `AWS::DynamoDB::Table` definitions in template.yaml, so tests and the local stack
cannot drift from what `sam deploy` creates.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

from devstack.template import parameter_defaults, resolve, resources_of_type

# The physical names the local stack and tests give the template's resources (env vars point functions at them).
PHYSICAL_NAMES = {
    "AppTable": "bloxserver-app",
    "IdempotencyTable": "bloxserver-idempotency",
    "ScheduleGroup": "bloxserver-schedules",
    "SchedulerRole": "bloxserver-scheduler",
    "ExecutionQueue": "bloxserver-executions",
    "ExecutionDeadLetterQueue": "bloxserver-executions-dlq",
    "SecretsKeyAlias": "alias/bloxserver-secrets",
}
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account


# What a bucket's name (a !Sub of these) resolves to locally: the local stack runs as Environment `dev`.
LOCAL_NAME_REFS = {"Environment": "dev", "AWS::AccountId": LOCAL_ACCOUNT_ID, "AWS::Region": LOCAL_REGION}
# The local value of the template's CorsAllowedOrigins parameter, as `--parameter-overrides` sets a stage's:
# besides the template's default, every http:// origin (API Gateway's `http://*`; one S3 wildcard too), so a
# frontend dev server on any local port can call the stack. CORS_ALLOWED_ORIGINS (comma-separated) replaces it.
CORS_ORIGINS_VARIABLE = "CORS_ALLOWED_ORIGINS"
LOCAL_EXTRA_ORIGINS = ["http://*"]


def local_cors_origins() -> list[str]:
    configured = os.environ.get(CORS_ORIGINS_VARIABLE)
    if configured:
        return [origin.strip() for origin in configured.split(",") if origin.strip()]
    return [*parameter_defaults()["CorsAllowedOrigins"], *LOCAL_EXTRA_ORIGINS]


def bucket_names() -> dict[str, str]:
    """Each AWS::S3::Bucket's name as the template spells it (its Ref), resolved locally."""
    return {
        logical_id: resolve(resource["Properties"]["BucketName"], LOCAL_NAME_REFS)
        for logical_id, resource in resources_of_type("AWS::S3::Bucket").items()
    }


def create_buckets(s3: Any | None = None) -> dict[str, str]:
    """Create every bucket of the template with its CORS rules (with the local CorsAllowedOrigins); returns logical
    id → name. Encryption, public access blocks and lifecycle rules change nothing the local stack can observe."""
    s3 = s3 or boto3.client("s3")
    created = bucket_names()
    for logical_id, name in created.items():
        s3.create_bucket(Bucket=name)
        props = resources_of_type("AWS::S3::Bucket")[logical_id]["Properties"]
        rules = resolve(
            props.get("CorsConfiguration", {}).get("CorsRules", []),
            {**parameter_defaults(), "CorsAllowedOrigins": local_cors_origins()},
        )
        if rules:
            # CloudFormation's MaxAge is the S3 API's MaxAgeSeconds.
            local_rules = [
                {("MaxAgeSeconds" if name == "MaxAge" else name): value for name, value in rule.items()}
                for rule in rules
            ]
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": local_rules})
    return created


def function_arn(logical_id: str) -> str:
    """The ARN a template function has locally (what `!GetAtt <Function>.Arn` gives): its name is its logical id."""
    return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{logical_id}"


def role_arn(logical_id: str) -> str:
    return f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{PHYSICAL_NAMES[logical_id]}"


def create_schedule_groups(scheduler: Any | None = None) -> dict[str, str]:
    """Create every AWS::Scheduler::ScheduleGroup of the template; returns logical id → name (its Ref)."""
    scheduler = scheduler or boto3.client("scheduler")
    created = {}
    for logical_id in resources_of_type("AWS::Scheduler::ScheduleGroup"):
        scheduler.create_schedule_group(Name=PHYSICAL_NAMES[logical_id])
        created[logical_id] = PHYSICAL_NAMES[logical_id]
    return created


def queue_url(logical_id: str) -> str:
    """The URL moto gives a queue created without an endpoint override (in tests, under mock_aws)."""
    return f"https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{PHYSICAL_NAMES[logical_id]}"


def create_queues(sqs: Any | None = None) -> dict[str, str]:
    """Create every AWS::SQS::Queue of the template, dead-letter targets first; returns logical id → URL (its
    Ref) and "LogicalId.Arn" → ARN. A RedrivePolicy's `!GetAtt X.Arn` is resolved to the created queue."""
    sqs = sqs or boto3.client("sqs")
    definitions = resources_of_type("AWS::SQS::Queue")
    ordered = sorted(definitions, key=lambda logical_id: "RedrivePolicy" in definitions[logical_id]["Properties"])
    created: dict[str, str] = {}
    for logical_id in ordered:
        props = definitions[logical_id]["Properties"]
        attributes = {
            name: str(props[name]) for name in ("VisibilityTimeout", "MessageRetentionPeriod") if name in props
        }
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            target = policy["deadLetterTargetArn"]["Fn::GetAtt"]
            target_id = target[0] if isinstance(target, list) else target.split(".")[0]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": created[f"{target_id}.Arn"], "maxReceiveCount": policy["maxReceiveCount"]}
            )
        url = sqs.create_queue(QueueName=PHYSICAL_NAMES[logical_id], Attributes=attributes)["QueueUrl"]
        created[logical_id] = url
        created[f"{logical_id}.Arn"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    return created


def create_kms_keys(kms: Any | None = None) -> dict[str, str]:
    """Create every AWS::KMS::Key of the template and the aliases naming them; returns logical id → what Ref gives
    (a key's id, an alias's name) and "LogicalId.Arn" → a key's ARN."""
    kms = kms or boto3.client("kms")
    created: dict[str, str] = {}
    for logical_id, resource in resources_of_type("AWS::KMS::Key").items():
        metadata = kms.create_key(Description=resource["Properties"].get("Description", logical_id))["KeyMetadata"]
        created[logical_id] = metadata["KeyId"]
        created[f"{logical_id}.Arn"] = metadata["Arn"]
    for logical_id, resource in resources_of_type("AWS::KMS::Alias").items():
        target = resource["Properties"]["TargetKeyId"]["Ref"]
        kms.create_alias(AliasName=PHYSICAL_NAMES[logical_id], TargetKeyId=created[target])
        created[logical_id] = PHYSICAL_NAMES[logical_id]
    return created


def attribute_refs() -> dict[str, str]:
    """`!GetAtt` values the template reads: every function's and IAM role's Arn (moto needs no such resources:
    schedules only store their target and role ARNs)."""
    refs = {f"{logical_id}.Arn": function_arn(logical_id) for logical_id in resources_of_type("AWS::Serverless::Function")}
    refs.update({f"{logical_id}.Arn": role_arn(logical_id) for logical_id in resources_of_type("AWS::IAM::Role")})
    return refs


def table_definitions() -> dict[str, dict[str, Any]]:
    return resources_of_type("AWS::DynamoDB::Table")


def create_tables(dynamodb: Any | None = None) -> dict[str, str]:
    """Create every table of the template; returns logical id → physical name."""
    dynamodb = dynamodb or boto3.client("dynamodb")
    created = {}
    for logical_id, resource in table_definitions().items():
        props = resource["Properties"]
        name = PHYSICAL_NAMES[logical_id]
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props["BillingMode"],
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        dynamodb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created[logical_id] = name
    return created


def create_all(endpoint_url: str | None = None) -> dict[str, str]:
    """Create every stateful resource of the template the local stack emulates.

    Returns logical id → what `Ref` gives for it in CloudFormation (a table's or schedule group's name), plus
    "LogicalId.Arn" → what `!GetAtt` gives, which is how the local stack resolves the template's environment
    variables. Add new resource types here.
    """
    return {
        **create_tables(boto3.client("dynamodb", endpoint_url=endpoint_url)),
        **create_schedule_groups(boto3.client("scheduler", endpoint_url=endpoint_url)),
        **create_queues(boto3.client("sqs", endpoint_url=endpoint_url)),
        **create_buckets(boto3.client("s3", endpoint_url=endpoint_url)),
        **attribute_refs(),
        **create_kms_keys(boto3.client("kms", endpoint_url=endpoint_url)),
    }


def environment() -> dict[str, str]:
    """Environment variables that point the functions at the locally created resources."""
    return {
        "TABLE_NAME": PHYSICAL_NAMES["AppTable"],
        "IDEMPOTENCY_TABLE_NAME": PHYSICAL_NAMES["IdempotencyTable"],
        "SCHEDULE_GROUP_NAME": PHYSICAL_NAMES["ScheduleGroup"],
        "SCHEDULER_ROLE_ARN": role_arn("SchedulerRole"),
        "SCHEDULE_FUNCTION_ARN": function_arn("ScheduleFunction"),
        "EXECUTION_QUEUE_URL": queue_url("ExecutionQueue"),
        "MODULE_BUCKET_NAME": bucket_names()["ModuleBucket"],
        "SECRETS_KEY_ID": PHYSICAL_NAMES["SecretsKeyAlias"],
    }
