"""The fal endpoints the gateway serves, and fal's endpoint-id grammar (docs/protocol.md §1.3, §2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EndpointKind(StrEnum):
    IMAGE_TO_VIDEO = "image-to-video"
    TEXT_TO_VIDEO = "text-to-video"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One fal endpoint: its full id and the ``owner/alias`` that its queue status URLs use."""

    id: str
    kind: EndpointKind

    @property
    def owner(self) -> str:
        return self.id.split("/")[0]

    @property
    def alias(self) -> str:
        return self.id.split("/")[1]

    @property
    def app(self) -> str:
        """``owner/alias``: status, result and cancel URLs drop the rest of the id."""
        return f"{self.owner}/{self.alias}"


IMAGE_TO_VIDEO = Endpoint("fal-ai/bytedance/seedance/v1.5/pro/image-to-video", EndpointKind.IMAGE_TO_VIDEO)
TEXT_TO_VIDEO = Endpoint("fal-ai/bytedance/seedance/v1.5/pro/text-to-video", EndpointKind.TEXT_TO_VIDEO)

ENDPOINTS: dict[str, Endpoint] = {e.id: e for e in (IMAGE_TO_VIDEO, TEXT_TO_VIDEO)}


def find_endpoint(endpoint_id: str) -> Endpoint | None:
    """Look an endpoint up by its full id; a trailing slash is tolerated, as fal's clients strip it."""
    return ENDPOINTS.get(endpoint_id.strip("/"))


@dataclass(frozen=True, slots=True)
class RequestPath:
    """A parsed queue request path: ``{owner}/{alias}/requests/{request_id}[/status[/stream]|/cancel]``."""

    app: str
    request_id: str
    action: str  # "result", "status", "stream" or "cancel"


_ACTIONS = {(): "result", ("status",): "status", ("status", "stream"): "stream", ("cancel",): "cancel"}


def parse_request_path(path: str) -> RequestPath | None:
    """Parse the part of a queue URL after ``/queue/``; None when it is not a request URL (docs/protocol.md §1.3)."""
    parts = path.strip("/").split("/")
    if len(parts) < 4 or parts[2] != "requests" or not all(parts[:2]) or not parts[3]:
        return None
    action = _ACTIONS.get(tuple(parts[4:]))
    if action is None:
        return None
    return RequestPath(app=f"{parts[0]}/{parts[1]}", request_id=parts[3], action=action)


def app_of(endpoint_id: str) -> str:
    """``owner/alias`` of an endpoint id."""
    return "/".join(endpoint_id.split("/")[:2])
