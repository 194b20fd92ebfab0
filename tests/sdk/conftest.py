"""The official `openai` and `anthropic` SDKs against running gateways (started by
scripts/with-servers.sh, as for the client suites): nothing here parses the gateway's HTTP
answers itself, so what passes is what a user of the SDKs gets.

Gateways, from the environment:
- AI_SERVICE_ADDR: no config, the built-in echo model;
- AI_SERVICE_FAULTS_ADDR: route "limited" (its upstream answers 429 with Retry-After: 7),
  route "cut" (its upstream stream breaks after two chunks), route "slow" (echo, 200 ms a
  chunk), route "overloaded" (its upstream answers 529);
- AI_SERVICE_AUTH_ADDR: client keys required, AI_SERVICE_AUTH_KEY may call every route.
"""

import os

import pytest


def _base(name: str) -> str:
    addr = os.environ.get(name)
    if not addr:
        pytest.skip(f"{name} is not set: run under scripts/with-servers.sh")
    return f"http://{addr}"


@pytest.fixture
def echo_url() -> str:
    """The echo gateway's base URL (no keys)."""
    return _base("AI_SERVICE_ADDR")


@pytest.fixture
def faults_url() -> str:
    """The gateway with the fault routes."""
    return _base("AI_SERVICE_FAULTS_ADDR")


@pytest.fixture
def auth_url() -> str:
    """The gateway that requires client keys."""
    return _base("AI_SERVICE_AUTH_ADDR")


@pytest.fixture
def auth_key() -> str:
    """A client key of the auth gateway that may call every route."""
    return os.environ["AI_SERVICE_AUTH_KEY"]
