"""Reading an SQS queue back with boto3, as a user of the gateway would: for the tests on the real ElasticMQ."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

# ElasticMQ takes any region and keys; they are still required by boto3's request signing.
REGION = "eu-west-1"
ACCESS_KEY = "AKIDKRETRYTEST"
SECRET_KEY = "kretry-test-secret-key"


def sqs_client(endpoint: str) -> SQSClient:
    return boto3.session.Session().client(
        "sqs",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        endpoint_url=endpoint,
    )


def receive_all(client: SQSClient, queue_url: str, expected: int, timeout: float = 30) -> list[MessageTypeDef]:
    """Receive (and delete) `expected` messages; fail if they do not come within `timeout`."""
    got: list[MessageTypeDef] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        reply = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in reply.get("Messages", []):
            got.append(message)
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert len(got) >= expected, f"{len(got)} messages within {timeout}s, expected {expected}"
    return got
