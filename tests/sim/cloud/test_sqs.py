"""Simulated SQS behind real aiobotocore clients, in virtual time: delivery as the intake meets
it, and requests botocore's model refuses failing as they fail against AWS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from scaler.aws.clients import AwsClients, AwsTarget
from scaler.metrics import Metrics
from scaler.sim.cloud.sqs import Sqs
from scaler.sim.cloud.transport import NotSimulated, SimulatedAws
from scaler.sim.cloud.vloop import run

TARGET = AwsTarget("us-east-1", "https://aws.simulated.invalid", credentials=("SIM", "SIM"))


def _in_world(body: Callable[[Any, Sqs], Awaitable[Any]], **sqs_options: Any) -> Any:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        sqs = Sqs(loop.time, **sqs_options)
        world = SimulatedAws({"sqs": sqs})
        async with AwsClients(TARGET, Metrics(), world.install) as aws:
            return await body(aws.sqs, sqs)

    return run(main())


async def _queue(client: Any, name: str = "events", **attributes: str) -> str:
    reply = await client.create_queue(QueueName=name, Attributes=attributes)
    return str(reply["QueueUrl"])


def test_a_long_poll_waits_in_virtual_time_for_a_message() -> None:
    async def body(client: Any, _: Sqs) -> tuple[float, list[str]]:
        url = await _queue(client)
        loop = asyncio.get_running_loop()
        loop.call_later(
            7.5, lambda: asyncio.ensure_future(client.send_message(QueueUrl=url, MessageBody="hi"))
        )
        reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        return loop.time(), [m["Body"] for m in reply["Messages"]]

    at, bodies = _in_world(body)
    assert bodies == ["hi"]
    assert at == pytest.approx(7.5)


def test_an_empty_long_poll_returns_after_its_wait() -> None:
    async def body(client: Any, _: Sqs) -> tuple[float, dict[str, Any]]:
        url = await _queue(client)
        reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        return asyncio.get_running_loop().time(), reply

    at, reply = _in_world(body)
    assert at == 20.0
    assert "Messages" not in reply


def test_an_undeleted_message_comes_back_after_its_visibility_timeout() -> None:
    async def body(client: Any, _: Sqs) -> list[tuple[float, str, str]]:
        url = await _queue(client, VisibilityTimeout="30")
        await client.send_message(QueueUrl=url, MessageBody="warning")
        seen = []
        for _round in range(2):
            reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=20)
            for m in reply.get("Messages", []):
                count = m["Attributes"]["ApproximateReceiveCount"]
                seen.append((asyncio.get_running_loop().time(), count, m["ReceiptHandle"]))
            if not reply.get("Messages"):
                reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=20)
                for m in reply.get("Messages", []):
                    count = m["Attributes"]["ApproximateReceiveCount"]
                    seen.append((asyncio.get_running_loop().time(), count, m["ReceiptHandle"]))
        return seen

    seen = _in_world(body)
    assert [(t, c) for t, c, _ in seen] == [(0.0, "1"), (30.0, "2")]
    assert seen[0][2] != seen[1][2], "each receive has its own receipt handle"


def test_a_message_received_too_often_moves_to_the_dead_letter_queue() -> None:
    async def body(client: Any, sqs: Sqs) -> tuple[int, int]:
        dlq = await _queue(client, "events-dlq")
        arn = (await client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
        url = await _queue(client, VisibilityTimeout="5", RedrivePolicy=policy)
        await client.send_message(QueueUrl=url, MessageBody="malformed")
        received = 0
        for _round in range(4):
            reply = await client.receive_message(QueueUrl=url, WaitTimeSeconds=10)
            received += len(reply.get("Messages", []))
        return received, len(sqs.queues[dlq].messages)

    assert _in_world(body) == (2, 1)


def test_an_old_receipt_handle_deletes_nothing() -> None:
    async def body(client: Any, sqs: Sqs) -> tuple[dict[str, Any], int]:
        url = await _queue(client, VisibilityTimeout="1")
        await client.send_message(QueueUrl=url, MessageBody="m")
        first = (await client.receive_message(QueueUrl=url))["Messages"][0]["ReceiptHandle"]
        await asyncio.sleep(2)
        await client.receive_message(QueueUrl=url)  # delivered again: a new handle
        entries = [{"Id": "a", "ReceiptHandle": first}, {"Id": "b", "ReceiptHandle": "junk"}]
        reply = await client.delete_message_batch(QueueUrl=url, Entries=entries)
        (message,) = sqs.queues[url].messages.values()
        assert message.superseded_by == [message.handle]  # noted for the campaign
        return reply, len(sqs.queues[url].messages)

    reply, left = _in_world(body)
    assert [e["Id"] for e in reply["Successful"]] == ["a"]
    assert [e["Code"] for e in reply["Failed"]] == ["ReceiptHandleIsInvalid"]
    assert left == 1


def test_a_batch_of_eleven_is_refused_as_aws_refuses_it() -> None:
    async def body(client: Any, _: Sqs) -> None:
        url = await _queue(client)
        entries = [{"Id": str(i), "ReceiptHandle": f"x#{i}"} for i in range(11)]
        await client.delete_message_batch(QueueUrl=url, Entries=entries)

    with pytest.raises(ClientError) as caught:
        _in_world(body)
    assert caught.value.response["Error"]["Code"].endswith("TooManyEntriesInBatchRequest")


def test_a_misspelt_parameter_fails_in_botocore_before_anything_is_sent() -> None:
    async def body(client: Any, sqs: Sqs) -> None:
        await client.receive_message(QueueUrl="q", MaxNumberOfMessage=10)

    with pytest.raises(ParamValidationError, match="MaxNumberOfMessage"):
        _in_world(body)


def test_a_missing_queue_raises_the_modelled_exception() -> None:
    async def body(client: Any, _: Sqs) -> None:
        try:
            await client.receive_message(QueueUrl="https://sqs.invalid/1/none")
        except client.exceptions.QueueDoesNotExist:
            return
        raise AssertionError("no QueueDoesNotExist")

    _in_world(body)


def test_an_operation_not_simulated_fails_loudly() -> None:
    async def body(client: Any, _: Sqs) -> None:
        await client.purge_queue(QueueUrl="q")

    with pytest.raises(NotSimulated, match="PurgeQueue"):
        _in_world(body)


def test_duplicates_are_drawn_from_the_seeded_stream_and_replay() -> None:
    async def body(client: Any, _: Sqs) -> int:
        url = await _queue(client)
        for i in range(20):
            await client.send_message(QueueUrl=url, MessageBody=str(i))
        got = 0
        for _round in range(10):
            got += len(
                (await client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)).get(
                    "Messages", []
                )
            )
        return got

    first = _in_world(body, duplicate_share=0.5)
    assert first > 20
    assert _in_world(body, duplicate_share=0.5) == first
