"""The fake's standing refusals and payload limits, read through the real SDK 2.x.

Organization and payload refusals carry the API's shape, ``{"type": "error", "error":
{"type", "message", "details": {"error_code"}}, "request_id"}``: the SDK must raise the
class it maps the code to (anthropic 2.17's ``ERROR_CLASSES``), as with the real API.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest
from anthropic.types.image_dimensions_too_large_error import ImageDimensionsTooLargeError
from anthropic.types.shared.organization_url_fetch_disabled_error import (
    OrganizationURLFetchDisabledError,
)

from caproute.testing import PARAMETER_REFUSALS, URL_FETCH_DISABLED, FakeAnthropic, make_model

KEY_A, KEY_B = "sk-ant-org-a", "sk-ant-org-b"
MODEL, OTHER = "claude-x-2", "claude-y-2"
URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    models = [make_model(MODEL), make_model(OTHER)]
    return {"models": models, "api_key": KEY_A, "keys": {KEY_B: None}}


def create(fake: FakeAnthropic, key: str = KEY_A, model: str = MODEL, **fields: Any) -> Any:
    client = anthropic.Anthropic(
        base_url=fake.url,
        api_key=key,
        max_retries=0,
        default_headers={"anthropic-version": "2023-06-01"},
    )
    with client:
        fields.setdefault("messages", [{"role": "user", "content": "hi"}])
        return client.messages.create(model=model, max_tokens=100, **fields)


def with_blocks(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "look"}]}]


@pytest.mark.parametrize(
    "uses",
    [
        {"messages": with_blocks(URL_IMAGE)},
        {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]},
        {"extra_body": {"mcp_servers": [{"type": "url", "url": "https://m.test", "name": "m"}]}},
    ],
    ids=["url-image", "web-fetch", "mcp-servers"],
)
def test_url_fetch_off_for_one_organization(fake: FakeAnthropic, uses: dict[str, Any]) -> None:
    fake.refusals.disable_url_fetch(KEY_A)
    with pytest.raises(OrganizationURLFetchDisabledError) as refused:
        create(fake, **uses)
    error = refused.value
    assert error.status_code == 400 and error.error_code == "organization_url_fetch_disabled"
    assert error.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": URL_FETCH_DISABLED,
            "details": {"error_code": "organization_url_fetch_disabled"},
        },
        "request_id": error.request_id,
    }
    assert create(fake, KEY_B, **uses).model == MODEL  # another organization
    assert create(fake).model == MODEL  # no URL sources: fine
    fake.reset()
    assert create(fake, **uses).model == MODEL


def test_a_model_starts_refusing_a_parameter_mid_run(fake: FakeAnthropic) -> None:
    assert create(fake, extra_body={"temperature": 0.3}).model == MODEL
    fake.refusals.refuse_parameter(MODEL, "temperature", message=PARAMETER_REFUSALS[1])
    with pytest.raises(anthropic.BadRequestError) as refused:
        create(fake, extra_body={"temperature": 1})
    assert refused.value.body["error"]["message"] == "temperature is deprecated for this model."
    assert refused.value.error_code is None
    assert create(fake).model == MODEL  # without it: fine
    assert create(fake, model=OTHER, extra_body={"temperature": 0.3}).model == OTHER


def test_a_fault_carries_error_details(fake: FakeAnthropic) -> None:
    details = {"max_side_length_pixels": 8000, "paths": ["messages.0.content.0"]}
    fake.faults.add(
        "/v1/messages",
        status=400,
        message="image too large",
        error_code="image_dimensions_too_large",
        details=details,
    )
    with pytest.raises(ImageDimensionsTooLargeError) as refused:
        create(fake)
    assert refused.value.body["error"]["details"] == {
        "error_code": "image_dimensions_too_large",
        **details,
    }


def pdf(pages: int) -> dict[str, Any]:
    page = b"<< /Type /Page /Parent 2 0 R >>\n"
    head = b"%PDF-1.7\n<< /Type /Pages /Count " + str(pages).encode() + b" >>\n"
    raw = head + page * pages + b"%%EOF"
    data = base64.b64encode(raw).decode()
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": data},
    }


def image(size: int) -> dict[str, Any]:
    data = base64.b64encode(b"\x89PNG" + b"\0" * (size - 4)).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (
            [image(5 * 1024 * 1024 + 1)],
            "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: "
            "5242881 bytes > 5242880 bytes",
        ),
        (
            [pdf(60), pdf(41)],
            "messages.0.content.1.pdf.source.base64.data: A maximum of 100 PDF pages may be "
            "provided.",
        ),
        ([image(10)] * 100 + [pdf(1)], "too many images and documents: 100 + 1 > 100"),
    ],
    ids=["image-5mb", "pdf-101-pages", "101-media"],
)
def test_payload_limits(fake: FakeAnthropic, blocks: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        create(fake, messages=with_blocks(*blocks))
    assert refused.value.body["error"]["message"] == message


@pytest.mark.parametrize(
    "blocks", [[image(5 * 1024 * 1024)], [pdf(60), pdf(40)], [image(10)] * 99 + [pdf(1)]]
)
def test_just_within_the_payload_limits(fake: FakeAnthropic, blocks: list[dict[str, Any]]) -> None:
    assert create(fake, messages=with_blocks(*blocks)).model == MODEL
