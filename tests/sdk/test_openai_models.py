"""`GET /v1/models` through the official `openai` SDK."""

import openai
import pytest


def test_models_lists_the_routes(echo_url):
    client = openai.OpenAI(base_url=f"{echo_url}/v1", api_key="unused")
    models = client.models.list()
    assert [m.id for m in models] == ["echo"]
    assert client.models.retrieve("echo").owned_by == "ai-service"


def test_an_unknown_model_is_the_sdks_not_found_error(echo_url):
    client = openai.OpenAI(base_url=f"{echo_url}/v1", api_key="unused")
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("no-such-model")
    assert raised.value.code == "MODEL_NOT_FOUND"
    assert raised.value.response.headers.get("x-request-id")


def test_a_missing_or_wrong_key_is_the_sdks_authentication_error(auth_url, auth_key):
    wrong = openai.OpenAI(base_url=f"{auth_url}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.models.list()
    assert raised.value.code == "UNAUTHENTICATED"
    right = openai.OpenAI(base_url=f"{auth_url}/v1", api_key=auth_key)
    assert sorted(m.id for m in right.models.list()) == ["echo", "other"]
