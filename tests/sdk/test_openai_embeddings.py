"""`POST /v1/embeddings` through the official `openai` SDK: its default asks for base64 and
decodes it as little-endian float32, so a vector that comes back whole and equal to the
`float` answer proves the encoding."""

import openai
import pytest


def test_embeddings_in_base64_by_default_and_as_floats(echo_url):
    client = openai.OpenAI(base_url=f"{echo_url}/v1", api_key="unused")
    default = client.embeddings.create(model="echo", input=["a cat", "a dog"])
    assert default.object == "list"
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in default.data)
    assert default.usage.prompt_tokens == 4
    assert default.usage.total_tokens == 4

    floats = client.embeddings.create(model="echo", input="a dog", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(default.data[1].embedding, abs=0, rel=1e-6)

    short = client.embeddings.create(model="echo", input="a cat", dimensions=3)
    assert len(short.data[0].embedding) == 3


def test_token_arrays_are_the_sdks_bad_request_error(echo_url):
    client = openai.OpenAI(base_url=f"{echo_url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="echo", input=[[1, 2, 3]])
    assert raised.value.param == "input"
    assert "token arrays" in raised.value.message
