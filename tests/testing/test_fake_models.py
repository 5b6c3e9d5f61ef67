"""GET /v1/models and /v1/models/{id}: paging, lifecycle filter, aliases, catalogue changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_api_helpers import API_KEY, error_of

from caproute.testing import FakeAnthropic, make_model

IDS = [f"claude-m{n}-1" for n in range(7)]  # newest first


@pytest.fixture
def seven() -> Any:
    models = [make_model(i) for i in IDS]
    with (
        FakeAnthropic(models=models, api_key=API_KEY) as fake,
        httpx.Client(base_url=fake.url, headers=fake.headers()) as client,
    ):
        yield fake, client


def _ids(page: dict[str, Any]) -> list[str]:
    return [m["id"] for m in page["data"]]


def test_pages_forward_with_after_id(seven: Any) -> None:
    _, client = seven
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = client.get("/v1/models", params=params).json()
        pages.append(page)
        if not page["has_more"]:
            break
        params = {"limit": 3, "after_id": page["last_id"]}
    assert [_ids(p) for p in pages] == [IDS[0:3], IDS[3:6], IDS[6:7]]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert (pages[1]["first_id"], pages[1]["last_id"]) == (IDS[3], IDS[5])


def test_pages_backward_with_before_id(seven: Any) -> None:
    _, client = seven
    page = client.get("/v1/models", params={"limit": 2, "before_id": IDS[5]}).json()
    assert _ids(page) == IDS[3:5]
    assert page["has_more"] is True
    page = client.get("/v1/models", params={"limit": 3, "before_id": page["first_id"]}).json()
    assert _ids(page) == IDS[0:3]
    assert page["has_more"] is False


def test_default_limit_is_20_and_empty_page_has_null_ids() -> None:
    models = [make_model(f"claude-n{n}-1") for n in range(25)]
    with FakeAnthropic(models=models) as fake:
        first = httpx.get(f"{fake.url}/v1/models", headers=fake.headers()).json()
        last = httpx.get(
            f"{fake.url}/v1/models",
            params={"after_id": "claude-n24-1"},
            headers=fake.headers(),
        ).json()
    assert len(first["data"]) == 20
    assert first["has_more"] is True
    assert last == {"data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
        {"after_id": "claude-unknown"},
        {"after_id": IDS[0], "before_id": IDS[3]},
        {"lifecycle[]": "gone"},
    ],
)
def test_bad_list_parameters_are_400(seven: Any, params: dict[str, Any]) -> None:
    _, client = seven
    assert error_of(client.get("/v1/models", params=params))[:2] == (400, "invalid_request_error")


def test_lifecycle_filter_defaults_to_active_and_deprecated(http: httpx.Client) -> None:
    http_models = _ids(http.get("/v1/models").json())
    assert http_models == ["claude-full-2", "claude-bare-1", "claude-old-1-20250101"]


def test_retired_models_are_listed_only_when_asked(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.retire("claude-bare-1")
    assert "claude-bare-1" not in _ids(http.get("/v1/models").json())
    retired = http.get("/v1/models", params={"lifecycle[]": ["retired"]}).json()
    assert _ids(retired) == ["claude-bare-1"]
    assert retired["data"][0]["lifecycle"] == "retired"
    everything = http.get("/v1/models", params={"lifecycle": ["active", "retired"]}).json()
    assert _ids(everything) == ["claude-full-2", "claude-bare-1"]


def test_beta_query_flag_is_ignored(http: httpx.Client) -> None:
    assert _ids(http.get("/v1/models?beta=true&limit=1").json()) == ["claude-full-2"]


def test_retrieve_by_id_and_aliases() -> None:
    models = [make_model("claude-x-20250101"), make_model("claude-y-2")]
    with FakeAnthropic(models=models, aliases={"claude-why": "claude-y-2"}) as fake:

        def get(name: str) -> httpx.Response:
            return httpx.get(f"{fake.url}/v1/models/{name}", headers=fake.headers())

        assert get("claude-x-20250101").json()["id"] == "claude-x-20250101"
        assert get("claude-x").json()["id"] == "claude-x-20250101"  # dated id → undated alias
        assert get("claude-why").json()["id"] == "claude-y-2"
        assert get("claude-why").json()["capabilities"]["batch"] == {"supported": True}
        assert error_of(get("claude-z"))[:2] == (404, "not_found_error")


def test_sdk_iterates_every_page_sync(seven: Any) -> None:
    fake, _ = seven
    with fake.client() as client:
        listed = [m.id for m in client.models.list(limit=2)]
        assert fake.count("/v1/models") == 4  # 2 + 2 + 2 + 1
        retrieved = client.models.retrieve(IDS[3])
    assert listed == IDS
    assert retrieved.id == IDS[3]
    assert retrieved.capabilities is not None


@pytest.mark.anyio
async def test_sdk_iterates_every_page_async(seven: Any) -> None:
    fake, _ = seven
    async with fake.async_client() as client:
        listed = [m.id async for m in client.models.list(limit=3)]
    assert listed == IDS


def test_catalogue_changes_mid_run(fake: FakeAnthropic, http: httpx.Client) -> None:
    hello = {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    assert http.post("/v1/messages", json={**hello, "model": "claude-full-2"}).status_code == 200

    fake.update_model("claude-full-2", max_tokens=4)
    status, _, message = error_of(
        http.post("/v1/messages", json={**hello, "model": "claude-full-2"})
    )
    assert status == 400
    assert "max_tokens" in message
    assert http.get("/v1/models/claude-full-2").json()["max_tokens"] == 4

    fake.update_model("claude-full-2", capabilities={"batch": {"supported": False}})
    caps = http.get("/v1/models/claude-full-2").json()["capabilities"]
    assert caps["batch"] == {"supported": False}
    assert caps["image_input"] == {"supported": True}  # a patch, not a replacement

    fake.set_models([make_model("claude-new-3")])
    assert _ids(http.get("/v1/models").json()) == ["claude-new-3"]
    gone = http.post("/v1/messages", json={**hello, "model": "claude-full-2"})
    assert error_of(gone)[:2] == (404, "not_found_error")
    with pytest.raises(KeyError):
        fake.update_model("claude-full-2", max_tokens=1)
