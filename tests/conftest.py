"""Shared fixtures: one embedded moto server per test session, reset before each test.

Under CI (``CI`` set, as CI runs ``.ci/run``) hypothesis draws the same examples every run: a
green run on a developer's machine with ``CI=true`` is then the run CI makes, and a rare
counterexample found while exploring locally is fixed and pinned with ``@example`` instead of
failing a later, unrelated submission at random.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from scaler import testbed

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


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
