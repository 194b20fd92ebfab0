"""The blocking client against a running gateway."""

import os

import grpc
import pytest
from grpc_health.v1 import health_pb2

from aiservice import ERROR_DOMAIN, Client, collect, error_details, text_of, user
from aiservice.v1 import chat_pb2

HELLO = [user("hello world")]


@pytest.fixture
def client(addr):
    with Client(addr, plaintext=True) as c:
        yield c


def test_chat(client):
    reply = client.chat.Chat(chat_pb2.ChatRequest(model="echo", messages=HELLO), timeout=10)
    assert text_of(reply.message) == "hello world"
    assert reply.message.role == chat_pb2.ROLE_ASSISTANT
    assert reply.finish_reason == chat_pb2.FINISH_REASON_STOP
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.total_tokens) == (2, 2, 4)


def test_chat_max_tokens_cuts_with_length(client):
    request = chat_pb2.ChatRequest(model="echo", messages=HELLO, generation=chat_pb2.GenerationConfig(max_tokens=1))
    reply = client.chat.Chat(request, timeout=10)
    assert text_of(reply.message) == "hello "
    assert reply.finish_reason == chat_pb2.FINISH_REASON_LENGTH


def test_stream_chat_events_in_order(client):
    stream = client.chat.StreamChat(chat_pb2.StreamChatRequest(model="echo", messages=HELLO), timeout=10)
    result = collect(stream)
    assert [e.WhichOneof("event") for e in result.events] == ["content_delta", "content_delta", "usage", "finish"]
    assert [e.content_delta.text for e in result.events[:2]] == ["hello ", "world"]
    assert result.text == "hello world"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2, 2)
    assert result.finish.reason == chat_pb2.FINISH_REASON_STOP
    assert result.finish.model == "echo"


def test_list_models(client):
    models = client.chat.ListModels(chat_pb2.ListModelsRequest(), timeout=10).models
    assert "echo" in [m.name for m in models]


@pytest.mark.parametrize("service", ["", "aiservice.v1.ChatService"])
def test_health_check(client, service):
    reply = client.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (chat_pb2.ChatRequest(model="echo"), "messages"),
        (
            chat_pb2.ChatRequest(model="echo", messages=HELLO, generation=chat_pb2.GenerationConfig(max_tokens=-1)),
            "generation.max_tokens",
        ),
    ],
    ids=["empty messages", "negative max_tokens"],
)
def test_invalid_argument_carries_field_violations(client, request_, field):
    with pytest.raises(grpc.RpcError) as raised:
        client.chat.Chat(request_, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(raised.value)
    assert details.info is not None
    assert (details.info.domain, details.info.reason) == (ERROR_DOMAIN, "INVALID_REQUEST")
    assert details.bad_request is not None
    violations = {v.field: v.description for v in details.bad_request.field_violations}
    assert field in violations, violations
    assert violations[field]


def test_unknown_model_is_not_found(client):
    with pytest.raises(grpc.RpcError) as raised:
        client.chat.Chat(chat_pb2.ChatRequest(model="no-such-model", messages=HELLO), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_details(raised.value).info
    assert info is not None
    assert (info.domain, info.reason) == (ERROR_DOMAIN, "MODEL_NOT_FOUND")
    assert info.metadata["model"] == "no-such-model"


def test_stream_deadline_expires(faults_addr):
    with Client(faults_addr, plaintext=True) as slow:
        request = chat_pb2.StreamChatRequest(model="slow", messages=[user("one two three four five")])
        events = []
        with pytest.raises(grpc.RpcError) as raised:
            for event in slow.chat.StreamChat(request, timeout=0.1):
                events.append(event.WhichOneof("event"))
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "finish" not in events


def test_api_key_does_not_break_plaintext_calls(addr):
    # The echo gateway requires no key; a key sent anyway must not break plaintext calls.
    with Client(addr, plaintext=True, api_key="test-key") as keyed:
        reply = keyed.chat.Chat(chat_pb2.ChatRequest(model="echo", messages=HELLO), timeout=10)
        assert text_of(reply.message) == "hello world"


def _request_id(metadata):
    return [value for key, value in metadata or () if key == "x-request-id"]


def test_request_id_comes_back(client):
    _, call = client.chat.Chat.with_call(
        chat_pb2.ChatRequest(model="echo", messages=HELLO), metadata=[("x-request-id", "py-unary-1")], timeout=10
    )
    assert _request_id(call.initial_metadata()) == ["py-unary-1"]

    _, call = client.chat.Chat.with_call(chat_pb2.ChatRequest(model="echo", messages=HELLO), timeout=10)
    generated = _request_id(call.initial_metadata())
    assert len(generated) == 1 and generated[0]

    stream = client.chat.StreamChat(
        chat_pb2.StreamChatRequest(model="echo", messages=HELLO), metadata=[("x-request-id", "py-stream-1")], timeout=10
    )
    assert _request_id(stream.initial_metadata()) == ["py-stream-1"]
    assert collect(stream).text == "hello world"


def test_request_id_comes_back_with_an_error(client):
    # A failed call is answered trailers-only: the id comes back with the status.
    with pytest.raises(grpc.RpcError) as raised:
        client.chat.Chat(chat_pb2.ChatRequest(model="echo"), metadata=[("x-request-id", "py-error-1")], timeout=10)
    error = raised.value
    assert "py-error-1" in _request_id(error.initial_metadata()) + _request_id(error.trailing_metadata())


def test_upstream_rate_limit_is_resource_exhausted_with_retry_info(faults_addr):
    with Client(faults_addr, plaintext=True) as faults:
        with pytest.raises(grpc.RpcError) as raised:
            faults.chat.Chat(chat_pb2.ChatRequest(model="limited", messages=HELLO), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(raised.value)
    assert details.info is not None
    assert (details.info.domain, details.info.reason) == (ERROR_DOMAIN, "UPSTREAM_RATE_LIMITED")
    assert details.retry_info is not None
    # The upstream asked for 7s; later calls see what is left of it.
    assert 0 < details.retry_info.retry_delay.ToTimedelta().total_seconds() <= 7


@pytest.mark.parametrize(
    ("key", "code", "reason"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        ("not-a-key", grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        ("AI_SERVICE_AUTH_OTHER_KEY", grpc.StatusCode.PERMISSION_DENIED, "ROUTE_NOT_ALLOWED"),
        ("AI_SERVICE_AUTH_KEY", grpc.StatusCode.OK, None),
    ],
    ids=["without a key", "with a wrong key", "with a key for another route", "with a valid key"],
)
def test_client_keys(auth_addr, key, code, reason):
    key = os.environ.get(key, key) if key else None
    with Client(auth_addr, plaintext=True, api_key=key) as keyed:
        request = chat_pb2.ChatRequest(model="echo", messages=HELLO)
        if code == grpc.StatusCode.OK:
            assert text_of(keyed.chat.Chat(request, timeout=10).message) == "hello world"
            return
        with pytest.raises(grpc.RpcError) as raised:
            keyed.chat.Chat(request, timeout=10)
    assert raised.value.code() == code
    info = error_details(raised.value).info
    assert info is not None and info.reason == reason


def test_health_needs_no_key(auth_addr):
    with Client(auth_addr, plaintext=True) as anonymous:
        assert anonymous.health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def test_reasoning_comes_back_signed_and_goes_back(client):
    generation = chat_pb2.GenerationConfig(reasoning=chat_pb2.ReasoningConfig(effort=chat_pb2.REASONING_EFFORT_LOW))
    request = chat_pb2.StreamChatRequest(model="echo", messages=HELLO, generation=generation)
    result = collect(client.chat.StreamChat(request, timeout=10))
    assert [(r.text, r.signature) for r in result.reasoning] == [("Reasoning about 2 words.", "echo-2")]
    assert result.text == "hello world"
    assistant = chat_pb2.Message(
        role=chat_pb2.ROLE_ASSISTANT,
        content=[chat_pb2.ContentPart(reasoning=r) for r in result.reasoning] + [chat_pb2.ContentPart(text=result.text)],
    )
    reply = client.chat.Chat(
        chat_pb2.ChatRequest(model="echo", messages=[*HELLO, assistant, user("again please")], generation=generation),
        timeout=10,
    )
    assert text_of(reply.message) == "again please"
    assert reply.message.content[0].reasoning.signature == "echo-2"
