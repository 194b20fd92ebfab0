"""These tests call running gateways: AI_SERVICE_ADDR (the echo provider, no keys) and
AI_SERVICE_FAULTS_ADDR (route "slow": echo with 200ms between deltas; route "limited": an
upstream that always answers 429 with Retry-After: 7) and AI_SERVICE_AUTH_ADDR (client keys
required: AI_SERVICE_AUTH_KEY for every route, AI_SERVICE_AUTH_OTHER_KEY for route "other"
only). `make test` starts them and sets the variables; without AI_SERVICE_ADDR the tests
are skipped."""

import os

import pytest


def _addr(name: str) -> str:
    addr = os.environ.get(name)
    if addr:
        return addr
    if os.environ.get("AI_SERVICE_ADDR"):
        pytest.fail(f"{name} is not set but AI_SERVICE_ADDR is: start the second server too")
    pytest.skip(f"{name} is not set; `make test` sets it to a running gateway")


@pytest.fixture
def addr() -> str:
    return _addr("AI_SERVICE_ADDR")


@pytest.fixture
def faults_addr() -> str:
    return _addr("AI_SERVICE_FAULTS_ADDR")


@pytest.fixture
def auth_addr() -> str:
    return _addr("AI_SERVICE_AUTH_ADDR")
