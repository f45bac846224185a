"""``serve`` refuses a webhook configuration it could not honour, before it starts anything."""

from __future__ import annotations

import pytest

from service.cli import main

BASE = {"GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0", "GATEWAY_FAL_KEY": "k"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_FAL_WEBHOOKS": "true"}, "GATEWAY_FAL_WEBHOOKS needs GATEWAY_PUBLIC_URL"),
        ({"GATEWAY_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.1/8"}, "invalid webhook configuration"),
        ({"GATEWAY_WEBHOOK_ALLOWED_NETWORKS": "not-a-network"}, "invalid webhook configuration"),
        ({"GATEWAY_WEBHOOK_SIGNING_KEYS": "kid:not-a-seed"}, "invalid webhook configuration"),
        (
            {"GATEWAY_WEBHOOK_LEASE_SECONDS": "10", "GATEWAY_WEBHOOK_TIMEOUT_SECONDS": "15"},
            "GATEWAY_WEBHOOK_LEASE_SECONDS must be longer than GATEWAY_WEBHOOK_TIMEOUT_SECONDS",
        ),
    ],
)
def test_a_webhook_configuration_that_cannot_work_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], message: str
) -> None:
    for name, value in (BASE | env).items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "not-a-seed" not in err, "a signing key is never echoed"
