"""The endpoint ids and sample inputs the suites submit, and the input defaults the gateway fills in."""

from __future__ import annotations

from typing import Any

I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
I2V_INPUT: dict[str, Any] = {"prompt": "a cat waves", "image_url": "https://example.com/cat.png"}
T2V_INPUT: dict[str, Any] = {"prompt": "a red fox in snow"}
# Every optional field of both endpoints with its default: what an input is forwarded (and priced, cached) as.
DEFAULTS: dict[str, Any] = {
    "aspect_ratio": "16:9",
    "resolution": "720p",
    "duration": "5",
    "camera_fixed": False,
    "enable_safety_checker": True,
    "generate_audio": True,
}
