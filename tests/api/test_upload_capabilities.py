"""What the gateway hands out for uploads (an upload URL, a CDN token) serves only while the key it was issued to
is active and its tenant enabled, in the world it was issued in; and an upload URL whose use failed for a reason
the client can retry past (fal failing, the body cut off, the tenant disabled for now) works again."""

from __future__ import annotations

from typing import Any

import pytest

from service.simulator.faults import FaultRule
from service.simulator.storage import storage_of
from tests.support.admin import ADMIN
from tests.support.gateway import Gateway, local

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
INITIATE = "/rest/storage/upload/initiate"
TOKEN = "/rest/storage/auth/token"
CDN = "/cdn/files/upload"


async def _upload_url(gateway: Gateway, tenant: str = "acme") -> str:
    response = await gateway.client.post(
        INITIATE, json={"content_type": "image/png", "file_name": "frame.png"}, headers=await gateway.auth(tenant)
    )
    assert response.status_code == 200, response.text
    return local(response.json()["upload_url"])


async def _token_headers(gateway: Gateway, tenant: str = "acme") -> dict[str, str]:
    token = await gateway.client.post(TOKEN, json={}, headers=await gateway.auth(tenant))
    assert token.status_code == 200, token.text
    return {"authorization": f"Bearer {token.json()['token']}", "content-type": "image/png"}


def _stored(gateway: Gateway) -> list[bytes | None]:
    return [stored.data for stored in storage_of(gateway.sim).files.values() if stored.data is not None]


async def _revoke(gateway: Gateway, tenant: str = "acme") -> None:
    key_id = gateway.keys[tenant].split(":")[0]
    revoked = await gateway.client.delete(f"/admin/tenants/{tenant}/keys/{key_id}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text


async def _disable(gateway: Gateway, disabled: bool, tenant: str = "acme") -> None:
    patched = await gateway.client.patch(f"/admin/tenants/{tenant}", json={"disabled": disabled}, headers=ADMIN)
    assert patched.status_code == 200, patched.text


async def test_a_keyless_put_is_refused_once_the_initiating_key_is_revoked(gateway: Gateway) -> None:
    url = await _upload_url(gateway)
    await _revoke(gateway)
    refused = await gateway.client.put(url, content=PNG)
    assert refused.status_code == 401, refused.text
    assert refused.json()["detail"] == "The API key this was issued to is revoked"
    assert _stored(gateway) == []
    # The URL is still the tenant's: another active key of the tenant may use it.
    await gateway.key_for("acme")
    served = await gateway.client.put(url, content=PNG, headers=await gateway.auth())
    assert served.status_code == 200, served.text
    assert _stored(gateway) == [PNG]


async def test_a_keyless_put_waits_out_a_disabled_tenant(gateway: Gateway) -> None:
    url = await _upload_url(gateway)
    await _disable(gateway, True)
    refused = await gateway.client.put(url, content=PNG)
    assert refused.status_code == 403
    assert refused.json()["error_type"] == "tenant_disabled"
    assert _stored(gateway) == []
    await _disable(gateway, False)
    assert (await gateway.client.put(url, content=PNG)).status_code == 200
    assert _stored(gateway) == [PNG]


async def test_a_cdn_token_serves_only_while_its_key_and_tenant_do(gateway: Gateway) -> None:
    headers = await _token_headers(gateway)
    assert (await gateway.client.post(CDN, content=PNG, headers=headers)).status_code == 200
    await _disable(gateway, True)
    disabled = await gateway.client.post(CDN, content=PNG, headers=headers)
    assert disabled.status_code == 403
    assert disabled.json()["error_type"] == "tenant_disabled"
    await _disable(gateway, False)
    assert (await gateway.client.post(CDN, content=PNG, headers=headers)).status_code == 200
    await _revoke(gateway)
    revoked = await gateway.client.post(CDN, content=PNG, headers=headers)
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == "The API key this was issued to is revoked"
    assert _stored(gateway) == [PNG, PNG]


async def test_a_deleted_tenants_token_and_url_serve_nothing(gateway: Gateway) -> None:
    url, headers = await _upload_url(gateway), await _token_headers(gateway)
    assert (await gateway.client.delete("/admin/tenants/acme", headers=ADMIN)).status_code in {200, 204}
    answers = [await gateway.client.put(url, content=PNG), await gateway.client.post(CDN, content=PNG, headers=headers)]
    assert [answer.status_code for answer in answers] == [401, 401]
    assert _stored(gateway) == []


async def test_a_keyless_put_follows_its_tenant_out_of_the_sandbox(gateway: Gateway) -> None:
    created = await gateway.client.post(
        "/admin/tenants", json={"id": "sb", "name": "Sb", "sandbox": True}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    url = await _upload_url(gateway, "sb")
    assert (await gateway.client.patch("/admin/tenants/sb", json={"sandbox": False}, headers=ADMIN)).is_success
    refused = await gateway.client.put(url, content=PNG)
    assert refused.status_code == 403, refused.text
    assert "other world" in refused.json()["detail"]
    assert _stored(gateway) == []
    assert not await gateway.redis.keys("gw:v1:sandboxfile:*")


@pytest.mark.parametrize("status", [500, 503])
async def test_an_upload_url_works_again_after_fal_failed_the_put(gateway: Gateway, status: int) -> None:
    url = await _upload_url(gateway)
    gateway.sim.add_fault(FaultRule(op="upload", kind="http_error", status=status))
    failed = await gateway.client.put(url, content=PNG)
    assert failed.status_code == status
    assert _stored(gateway) == []
    retried = await gateway.client.put(url, content=PNG)
    assert retried.status_code == 200, retried.text
    assert _stored(gateway) == [PNG]
    assert (await gateway.client.put(url, content=PNG)).status_code == 404, "and then it is used"


async def test_an_upload_url_refused_by_fal_stays_used(gateway: Gateway) -> None:
    url = await _upload_url(gateway)
    gateway.sim.add_fault(FaultRule(op="upload", kind="http_error", status=403, body={"detail": "expired"}))
    refused = await gateway.client.put(url, content=PNG)
    assert (refused.status_code, refused.json()) == (403, {"detail": "expired"})
    assert (await gateway.client.put(url, content=PNG)).status_code == 404


async def _put_then_disconnect(gateway: Gateway, path: str, sent: bytes, announced: int) -> list[dict[str, Any]]:
    """Call the app as a server would for a client that sends part of a PUT body and goes away."""
    assert gateway.app is not None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"gateway.test"), (b"content-length", str(announced).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("gateway.test", 80),
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": sent, "more_body": True},
        {"type": "http.disconnect"},
    ]
    answered: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if len(incoming) > 1 else incoming[0]

    async def send(message: dict[str, Any]) -> None:
        answered.append(message)

    await gateway.app(scope, receive, send)  # type: ignore[arg-type]
    return answered


async def test_a_client_gone_mid_upload_is_a_400_and_the_url_works_again(gateway: Gateway) -> None:
    url = await _upload_url(gateway)
    answered = await _put_then_disconnect(gateway, url, PNG[:100], len(PNG))
    assert answered[0]["type"] == "http.response.start"
    assert answered[0]["status"] == 400
    served = [
        sample
        for family in gateway.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "gateway_http_requests_total" and sample.labels.get("method") == "PUT"
    ]
    assert {sample.labels["status_class"] for sample in served} == {"4xx"}
    assert _stored(gateway) == []
    assert (await gateway.client.put(url, content=PNG)).status_code == 200
    assert _stored(gateway) == [PNG]
