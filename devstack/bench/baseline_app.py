"""The cold-start floor: a minimal FastAPI + Mangum + boto3 app serving one route with one DynamoDB GetItem."""

import os

import boto3
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()
dynamodb = boto3.client("dynamodb")


@app.get("/api/v1/flows/{flow_id}")
async def get_flow(flow_id: str) -> dict:
    item = dynamodb.get_item(
        TableName=os.environ["TABLE_NAME"], Key={"PK": {"S": "USER#x"}, "SK": {"S": f"FLOW#{flow_id}"}}
    ).get("Item")
    return {"found": item is not None}


handler = Mangum(app, lifespan="off")
