"""What a Seedance 1.5 Pro video costs, in integer micro-USD: the size table, the token formula, estimate and settle.

fal prices the model per video token: tokens = W x H x frames / 1024, at $2.4 per 1M tokens with audio and $1.2
without (docs/pricing.md). Prices and the frame rate are configuration (:class:`PriceTable`), so a price change
needs no code change; the pixel sizes are the model's, confirmed by two independent tables (§1), so they are code.

The rule, and why:

- **Estimate** (what a request reserves) is an upper bound. It counts 24·d+1 frames, because that is what ByteDance
  actually renders and reports as usage (§2: 108,900 tokens for 720p 1:1 5 s), and for ``aspect_ratio: "auto"`` it
  takes the largest size of the tier, because the model picks the ratio only after the request is accepted (§1). Token
  count and cost are rounded up. Whichever of fal's published formula or ByteDance's usage fal really bills from
  (unknown, §3), the reservation covers it.
- **Settle** (what the tenant is charged) uses fal's published formula, 24·d frames, on the size actually produced,
  because that is what fal's published prices and examples match (§3: 720p 16:9 5 s with audio = $0.2592, "≈$0.26").
  When the produced size is unknown the charge is the estimate, and it is never more than the estimate: the
  reservation is the most a tenant can be charged.
- **Rounding**: every cost is ``ceil(W·H·frames·price / (1024·1e6))`` micro-USD, computed exactly from the fractional
  token count with integer arithmetic. Rounding up never charges a tenant less than fal's exact price (at most
  1 micro-USD more per video), and because estimate and settlement round the same monotone way, an estimate that is
  exactly at least the settlement stays at least it after rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from service.domain.schemas import AspectRatio, Resolution, TextToVideoInput

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per 1M tokens
PIXELS_PER_TOKEN_FRAME = 1024  # fal: tokens = W x H x frames / 1024

Size = tuple[int, int]

# The reference table's order (§1). It is also the tie-break for ``auto`` (see _largest_cell), so it is load-bearing.
_TABLE_ORDER = (
    AspectRatio.R16_9,
    AspectRatio.R4_3,
    AspectRatio.R1_1,
    AspectRatio.R3_4,
    AspectRatio.R9_16,
    AspectRatio.R21_9,
)

_CELLS: dict[Resolution, tuple[Size, ...]] = {
    Resolution.P480: ((864, 496), (752, 560), (640, 640), (560, 752), (496, 864), (992, 432)),
    Resolution.P720: ((1280, 720), (1112, 834), (960, 960), (834, 1112), (720, 1280), (1470, 630)),
    Resolution.P1080: ((1920, 1080), (1664, 1248), (1440, 1440), (1248, 1664), (1080, 1920), (2206, 946)),
}

SIZES: Mapping[Resolution, Mapping[AspectRatio, Size]] = MappingProxyType(
    {res: MappingProxyType(dict(zip(_TABLE_ORDER, cells, strict=True))) for res, cells in _CELLS.items()}
)
"""(width, height) of the output for each tier and ratio, Seedance 1.5 Pro (docs/pricing.md §1). No ``auto``."""


def _largest_cell(resolution: Resolution) -> AspectRatio:
    # Ties are real: at 480p, 16:9, 9:16 and 21:9 all have 428,544 px; at 720p, 4:3 and 3:4 both have 927,408 px.
    # The first in table order wins, which is landscape and, at 480p, fal's default ratio 16:9. The cost is the same
    # whichever tied cell is chosen; only the width and height shown on the quote depend on it.
    cells = SIZES[resolution]
    return max(_TABLE_ORDER, key=lambda ratio: (cells[ratio][0] * cells[ratio][1], -_TABLE_ORDER.index(ratio)))


AUTO_RATIOS: Mapping[Resolution, AspectRatio] = MappingProxyType({res: _largest_cell(res) for res in Resolution})
"""The cell an ``auto`` request is estimated at: the largest of its tier (480p 16:9, 720p 4:3, 1080p 21:9)."""


def size_for(resolution: Resolution, aspect_ratio: AspectRatio) -> Size:
    """The (width, height) a request is estimated at: its cell, or for ``auto`` the largest cell of the tier."""
    ratio = AUTO_RATIOS[resolution] if aspect_ratio is AspectRatio.AUTO else aspect_ratio
    return SIZES[resolution][ratio]


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices in integer micro-USD per 1M video tokens, and the frame rate. Defaults are fal's published prices."""

    audio_micros_per_million_tokens: int = 2_400_000
    silent_micros_per_million_tokens: int = 1_200_000
    fps: int = 24

    def __post_init__(self) -> None:
        values: dict[str, object] = {
            "audio_micros_per_million_tokens": self.audio_micros_per_million_tokens,
            "silent_micros_per_million_tokens": self.silent_micros_per_million_tokens,
            "fps": self.fps,
        }
        for name, value in values.items():
            # A float (or bool) would silently make every cost inexact, so only a positive int is accepted.
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def micros_per_million_tokens(self, audio: bool) -> int:
        return self.audio_micros_per_million_tokens if audio else self.silent_micros_per_million_tokens


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced video. ``aspect_ratio`` is the one requested (may be ``auto``); width and height are what was priced."""

    tokens: int  # ceil of the exact, possibly fractional, token count
    cost_micros: int
    width: int
    height: int
    frames: int
    audio: bool
    resolution: Resolution
    aspect_ratio: AspectRatio

    @property
    def cost_usd(self) -> str:
        """The cost as an exact decimal string with 6 places, e.g. ``"0.259200"``."""
        return usd(self.cost_micros)


def usd(micros: int) -> str:
    """Format integer micro-USD as an exact dollar string with 6 decimal places: ``259200 -> "0.259200"``."""
    sign = "-" if micros < 0 else ""
    dollars, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{dollars}.{fraction:06d}"


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _quote(data: TextToVideoInput, prices: PriceTable, size: Size, frames: int) -> Quote:
    width, height = size
    token_numerator = width * height * frames  # exact tokens = token_numerator / 1024
    price = prices.micros_per_million_tokens(data.generate_audio)
    return Quote(
        tokens=_ceil_div(token_numerator, PIXELS_PER_TOKEN_FRAME),
        cost_micros=_ceil_div(token_numerator * price, PIXELS_PER_TOKEN_FRAME * TOKENS_PER_PRICE_UNIT),
        width=width,
        height=height,
        frames=frames,
        audio=data.generate_audio,
        resolution=data.resolution,
        aspect_ratio=data.aspect_ratio,
    )


def estimate(data: TextToVideoInput, prices: PriceTable) -> Quote:
    """The most ``data`` can cost, to reserve before submitting: fps·d+1 frames at the largest possible size.

    Tokens and cost are rounded up, so the estimate is never below any settlement of the same request, nor below
    ByteDance's own usage figure (which is floored).
    """
    frames = prices.fps * data.duration_seconds + 1
    return _quote(data, prices, size_for(data.resolution, data.aspect_ratio), frames)


def settle(data: TextToVideoInput, prices: PriceTable, *, produced_size: Size | None) -> Quote:
    """What ``data`` is charged once produced: fal's published formula, fps·d frames, at ``produced_size``.

    - ``produced_size`` is None (unknown, e.g. the MP4 header could not be read): the estimate, unchanged.
    - A size outside the table is still priced by the formula, because fal bills what it produced.
    - The result never exceeds the estimate: if the formula would charge more, the estimate is returned unchanged
      (clamped), because the reservation is the most a tenant can be charged. Returning the whole estimate rather
      than a capped cost keeps tokens, size and cost on a quote describing one computation.

    Raises:
        ValueError: ``produced_size`` has a non-positive width or height.
    """
    upper = estimate(data, prices)
    if produced_size is None:
        return upper
    width, height = produced_size
    if width <= 0 or height <= 0:
        raise ValueError(f"produced_size must be positive, got {produced_size!r}")
    frames = prices.fps * data.duration_seconds
    # Compare exact token counts (before rounding) so the clamp decision does not depend on rounding.
    if width * height * frames > upper.width * upper.height * upper.frames:
        return upper
    return _quote(data, prices, produced_size, frames)
