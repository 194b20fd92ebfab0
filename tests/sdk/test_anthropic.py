"""`POST /v1/messages` through the official `anthropic` SDK: what its users get, unary and
streamed, with tools, and each failure as the SDK's own exception."""

import anthropic
import pytest

WEATHER = {
    "name": "get_weather",
    "description": "The weather at a place",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
}


def _client(url: str, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", "unused")
    return anthropic.Anthropic(base_url=url, **kwargs)


def _hello(text: str = "hello from the sdk", model: str = "echo") -> dict:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


def test_create_answers_with_a_message(echo_url):
    message = _client(echo_url).messages.create(
        **_hello(), system="be brief", metadata={"user_id": "sdk-user"}, stop_sequences=["STOP"]
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "echo"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "hello from the sdk"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 4
    assert message.usage.input_tokens > 0
    assert (message.usage.cache_creation_input_tokens, message.usage.cache_read_input_tokens) == (0, 0)
    assert message._request_id


def test_messages_stream_assembles_the_text_and_the_final_message(echo_url):
    with _client(echo_url).messages.stream(**_hello("one two three")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three"
    assert final.content[0].text == "one two three"
    assert final.model == "echo"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3
    assert final.usage.input_tokens == 3


def test_stream_true_yields_anthropics_events(echo_url):
    events = list(_client(echo_url).messages.create(**_hello("a b"), stream=True))
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].message.model == "echo"
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "a b"
    assert events[5].delta.stop_reason == "end_turn"


def test_tools_round_trip(echo_url):
    client = _client(echo_url)
    # Echo calls the tool it is told to with {"text": <the question>}.
    forced = {"type": "tool", "name": "get_weather"}
    message = client.messages.create(**_hello("Paris?"), tools=[WEATHER], tool_choice=forced)
    assert message.stop_reason == "tool_use"
    [call] = message.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"text": "Paris?"})

    with client.messages.stream(**_hello("Rome?"), tools=[WEATHER], tool_choice=forced) as stream:
        final = stream.get_final_message()
    [streamed] = final.content
    assert (streamed.type, streamed.input) == ("tool_use", {"text": "Rome?"})
    assert final.stop_reason == "tool_use"

    # The answer goes back as it came, followed by the tool's result.
    followed = client.messages.create(
        model="echo",
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Paris?"},
            {"role": "assistant", "content": message.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    )
    assert followed.content[0].text == "thanks"


def test_a_wrong_key_is_the_sdks_authentication_error(auth_url, auth_key):
    wrong = _client(auth_url, api_key="not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        wrong.messages.create(**_hello())
    assert raised.value.type == "authentication_error"
    assert raised.value.error_code == "UNAUTHENTICATED"
    assert _client(auth_url, api_key=auth_key).messages.create(**_hello()).content


def test_an_unknown_model_is_the_sdks_not_found_error(echo_url):
    with pytest.raises(anthropic.NotFoundError) as raised:
        _client(echo_url).messages.create(**_hello(model="no-such-model"))
    assert raised.value.error_code == "MODEL_NOT_FOUND"
    assert raised.value.request_id


def test_a_field_the_gateway_cannot_honour_is_the_sdks_bad_request_error(echo_url):
    client = _client(echo_url)
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(**_hello(), extra_body={"top_q": 0.5})
    assert "top_q: Extra inputs are not permitted" in raised.value.api_message
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(**_hello(), thinking={"type": "enabled", "budget_tokens": 100})
    assert "thinking.budget_tokens: must be at least 1024" in raised.value.api_message


def test_thinking_comes_back_signed_and_goes_back_unchanged(echo_url):
    client = _client(echo_url)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    first = client.messages.create(**_hello("think about this"), thinking=thinking)
    assert [block.type for block in first.content] == ["thinking", "text"]
    assert isinstance(first.content[0], anthropic.types.ThinkingBlock)
    assert (first.content[0].thinking, first.content[0].signature) == ("Reasoning about 3 words.", "echo-3")
    # The SDK's own blocks, sent back as the next turn's history.
    history = [
        {"role": "user", "content": "think about this"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": "and again"},
    ]
    second = client.messages.create(model="echo", max_tokens=64, messages=history, thinking=thinking)
    assert second.content[-1].text == "and again"
    with client.messages.stream(**_hello("think once more"), thinking=thinking) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].signature == "echo-3"


def test_cache_control_and_documents_are_taken(echo_url):
    import base64

    message = _client(echo_url).messages.create(
        model="echo",
        max_tokens=64,
        system=[{"type": "text", "text": "a long system prompt", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(b"%PDF-1.4").decode()},
                        "title": "a.pdf",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "summarise it"},
                ],
            }
        ],
    )
    assert message.content[0].text == "summarise it"


def test_an_upstream_rate_limit_is_the_sdks_rate_limit_error(faults_url):
    client = _client(faults_url, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(**_hello(model="limited"))
    assert raised.value.type == "rate_limit_error"
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 7


def test_an_overloaded_upstream_is_the_sdks_overloaded_error(faults_url):
    client = _client(faults_url, max_retries=0)
    with pytest.raises(anthropic.OverloadedError) as raised:
        client.messages.create(**_hello(model="overloaded"))
    assert raised.value.error_code == "UPSTREAM_OVERLOADED"


def test_a_stream_cut_midway_raises_while_iterating(faults_url):
    client = _client(faults_url, max_retries=0)
    received = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        with client.messages.stream(**_hello(model="cut")) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert "".join(received) == "Hello wor"
    assert raised.value.type == "api_error"
    assert raised.value.error_code == "UPSTREAM_STREAM_CUT"

    with pytest.raises(anthropic.APIStatusError):
        for _ in client.messages.create(**_hello(model="cut"), stream=True):
            pass
