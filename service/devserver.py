"""The quick start (``seedance-gateway dev``): embedded Redis, the simulator as upstream, a dev TLS CA, and a demo
tenant whose key is printed with copy-paste examples. Never for production: the simulator is always on here."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from service.app import create_app
from service.config import Settings
from service.domain.tenants import TenantCreate
from service.embedded import EmbeddedRedis
from service.events import EventBus
from service.logging import configure_logging
from service.redis_client import connect
from service.server import run_server
from service.tenants.store import TenantStore

DEMO_TENANT = "demo"
I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"


def run_dev(*, state_dir: str, tls: bool) -> int:
    overrides: dict[str, object] = {"simulator": True}
    base = Settings()
    if not base.redis_url:
        overrides["redis_url"] = EmbeddedRedis().start()
    if base.admin_token is None:
        overrides["admin_token"] = secrets.token_urlsafe(24)
    ca_file: Path | None = None
    if tls and base.tls_cert_file is None:
        ca_file, cert, key = _dev_certificates(Path(state_dir))
        overrides |= {"tls_cert_file": cert, "tls_key_file": key}
    settings = Settings(**{**base.model_dump(), **overrides})
    configure_logging(settings)
    tenant_key = asyncio.run(_demo_tenant(settings))
    print(_banner(settings, tenant_key, ca_file), flush=True)  # noqa: T201 - the quick start prints its key
    run_server(create_app(settings), settings)
    return 0


async def _demo_tenant(settings: Settings) -> str:
    redis = connect(settings)
    try:
        tenants = TenantStore(redis, EventBus(redis))
        if await tenants.get_tenant(DEMO_TENANT) is None:
            await tenants.create_tenant(TenantCreate(id=DEMO_TENANT, name="Demo tenant"))
        issued, _record = await tenants.create_key(DEMO_TENANT, name="dev")
        return issued.token
    finally:
        await redis.aclose()


def _dev_certificates(state_dir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a 127.0.0.1/localhost certificate, because fal_client only speaks https."""
    import trustme  # noqa: PLC0415 - dev dependency

    state_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca_file, cert_file, key_file = state_dir / "ca.pem", state_dir / "server.pem", state_dir / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    return ca_file.resolve(), cert_file.resolve(), key_file.resolve()


def _banner(settings: Settings, key: str, ca_file: Path | None) -> str:
    scheme = "https" if settings.tls_enabled else "http"
    hostport = f"127.0.0.1:{settings.port}"
    cacert = f" --cacert {ca_file}" if ca_file else ""
    admin = settings.admin_token.get_secret_value() if settings.admin_token else ""
    lines = [
        "",
        "seedance-gateway dev: embedded Redis, built-in fal simulator, demo tenant 'demo'",
        f"  gateway:      {scheme}://{hostport}",
        f"  tenant key:   {key}",
        f"  admin token:  {admin}",
        "",
        "Run a video (waits for the result):",
        f"  curl{cacert} -H 'Authorization: Key {key}' -H 'Content-Type: application/json' \\",
        f'    -d \'{{"prompt": "a red fox running through snow", "seed": 7}}\' {scheme}://{hostport}/run/{T2V}',
        "",
        "Or with fal's own Python client (env vars only):",
        f"  export FAL_KEY='{key}' FAL_RUN_HOST={hostport}/run FAL_QUEUE_RUN_HOST={hostport}/queue",
    ]
    if ca_file:
        lines.append(f"  export SSL_CERT_FILE={ca_file}")
    lines += [
        "  python -c 'import fal_client; print(fal_client.subscribe(\"" + I2V + '", arguments={'
        '"prompt": "a cat waves", "image_url": "https://example.com/cat.png"}))\'',
        "",
    ]
    return "\n".join(lines)
