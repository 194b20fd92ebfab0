"""The grpc.aio client against a running gateway."""

import os

import grpc
import pytest
from grpc_health.v1 import health_pb2

from aiservice import ERROR_DOMAIN, AsyncClient, collect_async, error_details, text_of, user
from aiservice.v1 import chat_pb2

HELLO = [user("hello world")]


@pytest.fixture
async def client(addr):
    async with AsyncClient(addr, plaintext=True) as c:
        yield c


async def test_chat(client):
    reply = await client.chat.Chat(chat_pb2.ChatRequest(model="echo", messages=HELLO), timeout=10)
    assert text_of(reply.message) == "hello world"
    assert reply.finish_reason == chat_pb2.FINISH_REASON_STOP
    assert reply.usage.total_tokens == 4


async def test_stream_chat_events_in_order(client):
    result = await collect_async(
        client.chat.StreamChat(chat_pb2.StreamChatRequest(model="echo", messages=HELLO), timeout=10)
    )
    assert [e.WhichOneof("event") for e in result.events] == ["content_delta", "content_delta", "usage", "finish"]
    assert result.text == "hello world"
    assert result.usage.output_tokens == 2
    assert result.finish.reason == chat_pb2.FINISH_REASON_STOP


async def test_list_models(client):
    reply = await client.chat.ListModels(chat_pb2.ListModelsRequest(), timeout=10)
    assert "echo" in [m.name for m in reply.models]


async def test_health_check(client):
    reply = await client.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_invalid_argument_carries_field_violations(client):
    request = chat_pb2.ChatRequest(model="echo", messages=HELLO, generation=chat_pb2.GenerationConfig(max_tokens=-1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.chat.Chat(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(raised.value)
    assert details.info is not None and details.info.reason == "INVALID_REQUEST"
    assert details.info.domain == ERROR_DOMAIN
    assert details.bad_request is not None
    assert "generation.max_tokens" in [v.field for v in details.bad_request.field_violations]


async def test_unknown_model_is_not_found(client):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.chat.Chat(chat_pb2.ChatRequest(model="no-such-model", messages=HELLO), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_details(raised.value).info
    assert info is not None and info.reason == "MODEL_NOT_FOUND"


async def test_stream_deadline_expires(faults_addr):
    async with AsyncClient(faults_addr, plaintext=True) as slow:
        request = chat_pb2.StreamChatRequest(model="slow", messages=[user("one two three four five")])
        events = []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for event in slow.chat.StreamChat(request, timeout=0.1):
                events.append(event.WhichOneof("event"))
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "finish" not in events


async def test_api_key_does_not_break_plaintext_calls(addr):
    # The echo gateway requires no key; a key sent anyway must not break plaintext calls.
    async with AsyncClient(addr, plaintext=True, api_key="test-key") as keyed:
        reply = await keyed.chat.Chat(chat_pb2.ChatRequest(model="echo", messages=HELLO), timeout=10)
        assert text_of(reply.message) == "hello world"


async def test_request_id_comes_back(client):
    call = client.chat.Chat(
        chat_pb2.ChatRequest(model="echo", messages=HELLO), metadata=(("x-request-id", "py-aio-1"),), timeout=10
    )
    assert text_of((await call).message) == "hello world"
    assert [v for k, v in await call.initial_metadata() if k == "x-request-id"] == ["py-aio-1"]

    stream = client.chat.StreamChat(
        chat_pb2.StreamChatRequest(model="echo", messages=HELLO), metadata=(("x-request-id", "py-aio-2"),), timeout=10
    )
    assert [v for k, v in await stream.initial_metadata() if k == "x-request-id"] == ["py-aio-2"]
    assert (await collect_async(stream)).text == "hello world"


async def test_upstream_rate_limit_is_resource_exhausted_with_retry_info(faults_addr):
    async with AsyncClient(faults_addr, plaintext=True) as faults:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await faults.chat.Chat(chat_pb2.ChatRequest(model="limited", messages=HELLO), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(raised.value)
    assert details.info is not None and details.info.reason == "UPSTREAM_RATE_LIMITED"
    assert details.retry_info is not None
    assert 0 < details.retry_info.retry_delay.ToTimedelta().total_seconds() <= 7


async def test_client_keys(auth_addr):
    request = chat_pb2.ChatRequest(model="echo", messages=HELLO)
    async with AsyncClient(auth_addr, plaintext=True) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await anonymous.chat.Chat(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with AsyncClient(auth_addr, plaintext=True, api_key=os.environ["AI_SERVICE_AUTH_KEY"]) as keyed:
        assert text_of((await keyed.chat.Chat(request, timeout=10)).message) == "hello world"
