"""`POST /v1/chat/completions` through the official `openai` SDK: answers, streams (by hand
and through the SDK's own stream helper), tool calls, structured output, and each error as
the SDK's own exception."""

import json

import openai
import pydantic
import pytest


def _client(base_url: str, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=options.pop("api_key", "unused"), **options)


MESSAGES = [
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": "hello big world"},
]

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks a text up.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
}


def test_a_unary_completion(echo_url):
    client = _client(echo_url)
    raw = client.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES, temperature=0)
    assert raw.headers["x-request-id"]
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "echo"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello big world"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage.completion_tokens == 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_a_stream_with_usage(echo_url):
    client = _client(echo_url)
    stream = client.chat.completions.create(
        model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert stream.response.headers["content-type"] == "text/event-stream"
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello big world"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])


def test_the_sdks_stream_helper_assembles_the_answer(echo_url):
    client = _client(echo_url)
    with client.chat.completions.stream(model="echo", messages=MESSAGES) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "hello big world"
    assert final.choices[0].message.content == "hello big world"


def test_a_tool_call_and_its_result_sent_back(echo_url):
    client = _client(echo_url)
    messages = [{"role": "user", "content": "weather in Paris"}]
    completion = client.chat.completions.create(
        model="echo", messages=messages, tools=[LOOKUP], tool_choice="required", parallel_tool_calls=False
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": "weather in Paris"}

    # The SDK's message object goes back as the SDK serialises it, then the tool's result.
    messages += [
        choice.message,
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    again = client.chat.completions.create(model="echo", messages=messages, tools=[LOOKUP])
    assert again.choices[0].message.content == "thanks"


def test_a_streamed_tool_call(echo_url):
    client = _client(echo_url)
    named = {"type": "function", "function": {"name": "lookup"}}
    messages = [{"role": "user", "content": "weather in Rome"}]
    chunks = list(client.chat.completions.create(model="echo", messages=messages, tools=[LOOKUP], tool_choice=named, stream=True))
    pieces = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert pieces[0].id and pieces[0].function.name == "lookup"
    assert len(pieces) > 1, "the arguments come in pieces"
    arguments = "".join(p.function.arguments or "" for p in pieces)
    assert json.loads(arguments) == {"text": "weather in Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # The SDK's helper assembles the same call from the same deltas.
    with client.chat.completions.stream(model="echo", messages=messages, tools=[LOOKUP], tool_choice=named) as stream:
        final = stream.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == {"text": "weather in Rome"}


class City(pydantic.BaseModel):
    city: str


def test_structured_output_through_the_sdks_parse(echo_url):
    # parse() sends a strict json_schema response format; echo answers with the JSON it was sent.
    client = _client(echo_url)
    completion = client.chat.completions.parse(
        model="echo", messages=[{"role": "user", "content": '{"city": "Paris"}'}], response_format=City
    )
    assert completion.choices[0].message.parsed == City(city="Paris")


def test_a_wrong_key_is_the_sdks_authentication_error(auth_url, auth_key):
    wrong = _client(auth_url, api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.chat.completions.create(model="echo", messages=MESSAGES)
    assert raised.value.code == "UNAUTHENTICATED"
    right = _client(auth_url, api_key=auth_key)
    assert right.chat.completions.create(model="echo", messages=MESSAGES).choices[0].message.content


def test_an_unknown_model_is_the_sdks_not_found_error(echo_url):
    with pytest.raises(openai.NotFoundError) as raised:
        _client(echo_url).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert raised.value.code == "MODEL_NOT_FOUND"
    assert raised.value.response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 5}, "temperature"),
        ({"logprobs": True}, "logprobs"),
        ({"extra_body": {"not_an_argument": 1}}, "not_an_argument"),
    ],
)
def test_a_bad_field_is_the_sdks_bad_request_error(echo_url, options, param):
    with pytest.raises(openai.BadRequestError) as raised:
        _client(echo_url).chat.completions.create(model="echo", messages=MESSAGES, **options)
    assert raised.value.param == param
    assert raised.value.type == "invalid_request_error"


def test_an_upstream_rate_limit_is_the_sdks_rate_limit_error_with_retry_after(faults_url):
    client = _client(faults_url, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="limited", messages=MESSAGES)
    # The upstream's Retry-After: 7, or, when an earlier test's 429 left the endpoint cooling
    # down (the suites share the gateway), the rest of that wait, rounded up.
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 7
    assert raised.value.code == "UPSTREAM_RATE_LIMITED"


def test_a_stream_cut_upstream_raises_while_iterating(faults_url):
    client = _client(faults_url, max_retries=0)
    stream = client.chat.completions.create(model="cut", messages=MESSAGES, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert text == "Hello wor"
    assert raised.value.code == "UPSTREAM_STREAM_CUT"
    assert "stream" in raised.value.message


def test_reasoning_effort_and_reasoning_content(echo_url):
    client = _client(echo_url)
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "think it over"}], reasoning_effort="low"
    )
    message = completion.choices[0].message
    assert message.content == "think it over"
    # The field DeepSeek and vLLM use; the SDK keeps fields it does not know.
    assert message.model_extra["reasoning_content"] == "Reasoning about 3 words."
    details = message.model_extra["reasoning_details"]
    assert details == [{"type": "reasoning.text", "text": "Reasoning about 3 words.", "signature": "echo-3"}]
    assert completion.usage.completion_tokens_details.reasoning_tokens == 4
    # Sent back with the next turn.
    history = [
        {"role": "user", "content": "think it over"},
        {"role": "assistant", "content": message.content, "reasoning_details": details},
        {"role": "user", "content": "once more"},
    ]
    again = client.chat.completions.create(model="echo", messages=history, reasoning_effort="low")
    assert again.choices[0].message.content == "once more"
    chunks = list(
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "a b"}], reasoning_effort="high", stream=True
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    assert reasoning == "Reasoning about 2 words."
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="echo", messages=MESSAGES, reasoning_effort="extreme")
    assert "reasoning_effort" in raised.value.message


def test_a_pdf_file_part_is_a_document(echo_url):
    import base64

    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    completion = _client(echo_url).chat.completions.create(
        model="echo",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
                    {"type": "text", "text": "what is in it"},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "what is in it"
