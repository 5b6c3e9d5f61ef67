"""The shipped pytest plugin, as a user's suite sees it (run by pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_SUITE = """
import pytest
from caproute.testing import make_model

pytest_plugins = ["caproute.testing.pytest_plugin"]
URLS, MODELS = [], []


@pytest.fixture(scope="module")
def fake_anthropic_options():
    return {"models": [make_model("claude-mine-1")], "api_key": "sk-mine"}


def test_first_changes_the_fake(fake_anthropic):
    URLS.append(fake_anthropic.url)
    MODELS.extend(fake_anthropic.models())
    assert [m["id"] for m in fake_anthropic.models()] == ["claude-mine-1"]
    assert fake_anthropic.api_key == "sk-mine"
    with fake_anthropic.client() as client:
        client.models.list()
    fake_anthropic.faults.add("/v1/messages", status=500)
    fake_anthropic.retire("claude-mine-1")


def test_second_gets_it_as_constructed(fake_anthropic, fake_anthropic_server):
    assert fake_anthropic is fake_anthropic_server
    assert fake_anthropic.url == URLS[0]  # one server per module
    assert fake_anthropic.requests == []
    assert fake_anthropic.faults.pending() == 0
    assert fake_anthropic.models() == MODELS  # not retired any more
"""


def test_options_apply_and_every_test_gets_a_reset_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_suite=USER_SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
