"""No secret in a logged traceback: the production JSON renderer (service/logging.py) renders tracebacks without
the frames' local variables, which hold the request's headers and whatever the failing code handled (structlog's
default ``dict_tracebacks`` shows them, and a whole tenant key fits in its 80 characters per value)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
import structlog

from service import keys
from service.logging import configure_logging
from tests.support.admin import ADMIN_TOKEN, create_tenant, issue_key, key_auth
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway


@pytest.fixture
def production_log(gateway: Gateway) -> Iterator[io.StringIO]:
    """The production renderer (fast_settings has log_json=True), writing to a buffer instead of stderr."""
    saved, real_stderr, buffer = structlog.get_config(), sys.stderr, io.StringIO()
    sys.stderr = buffer
    try:
        configure_logging(gateway.settings)  # PrintLoggerFactory(file=sys.stderr) binds the buffer
    finally:
        sys.stderr = real_stderr
    try:
        yield buffer
    finally:
        structlog.configure(**saved)


async def test_an_unexpected_error_during_auth_logs_the_callers_full_key(
    gateway: Gateway, production_log: io.StringIO
) -> None:
    await create_tenant(gateway.client, "acme")
    key = await issue_key(gateway.client, "acme")
    # A tenant record that no longer validates (a hand edit, a record from another release): not a Redis error, so
    # the exception handler logs it with its traceback.
    await gateway.redis.set(keys.tenant("acme"), '{"id": "acme"}')
    response = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=key_auth(key))
    assert response.status_code == 500
    text = production_log.getvalue()
    assert "unhandled_exception" in text
    secret = key.split(":", 1)[1]
    assert secret not in text, "the tenant's full API key secret is in the log line"


async def test_any_unhandled_error_logs_the_request_scope_with_the_admin_token(
    gateway: Gateway, production_log: io.StringIO
) -> None:
    """Litestar's frames hold ``scope``, whose ``headers`` carry ``Authorization``: any 500 on any route logs the
    caller's credential, here the admin token (a tenant record that no longer validates breaks the listing)."""
    await create_tenant(gateway.client, "acme")
    await gateway.redis.set(keys.tenant("acme"), '{"id": "acme"}')
    response = await gateway.client.get("/admin/tenants", headers=gateway.admin)
    assert response.status_code == 500
    text = production_log.getvalue()
    assert "unhandled_exception" in text
    assert ADMIN_TOKEN not in text, "the admin token is in the log line"
