"""Shared fixtures: one embedded moto server per test session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scaler import testbed


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[testbed.LocalAws]:
    testbed.use_fake_credentials()
    aws = testbed.LocalAws().start()
    yield aws
    aws.stop()


@pytest.fixture
def local_aws(_moto_server: testbed.LocalAws, monkeypatch: pytest.MonkeyPatch) -> testbed.LocalAws:
    """The session's moto server, empty, with fake credentials in the environment."""
    for name, value in testbed._FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", testbed.REGION)
    _moto_server.reset()
    return _moto_server
