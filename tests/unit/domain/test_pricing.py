"""Seedance 1.5 Pro pricing: the size table, fal's formula, estimate vs settle, rounding (docs/pricing.md)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction

import pytest

from service.domain.pricing import (
    AUTO_RATIOS,
    SIZES,
    PriceTable,
    Quote,
    Size,
    estimate,
    settle,
    size_for,
    usd,
)
from service.domain.schemas import AspectRatio, Duration, ImageToVideoInput, Resolution, TextToVideoInput

PRICES = PriceTable()
CELL_RATIOS = [r for r in AspectRatio if r is not AspectRatio.AUTO]
CELLS = [(res, ratio) for res in Resolution for ratio in CELL_RATIOS]

# docs/pricing.md §1, copied verbatim: (res, ratio) -> (W x H, tokens/s @24fps, $/s audio, $/s silent,
# 5s+audio (fal formula) to 4 places, ByteDance's usage for 5 s = floor(W*H*121/1024)).
REFERENCE: dict[tuple[str, str], tuple[Size, str, str, str, str, int]] = {
    ("480p", "16:9"): ((864, 496), "10044", "0.024106", "0.012053", "0.1205", 50_638),
    ("480p", "4:3"): ((752, 560), "9870", "0.023688", "0.011844", "0.1184", 49_761),
    ("480p", "1:1"): ((640, 640), "9600", "0.023040", "0.011520", "0.1152", 48_400),
    ("480p", "3:4"): ((560, 752), "9870", "0.023688", "0.011844", "0.1184", 49_761),
    ("480p", "9:16"): ((496, 864), "10044", "0.024106", "0.012053", "0.1205", 50_638),
    ("480p", "21:9"): ((992, 432), "10044", "0.024106", "0.012053", "0.1205", 50_638),
    ("720p", "16:9"): ((1280, 720), "21600", "0.051840", "0.025920", "0.2592", 108_900),
    ("720p", "4:3"): ((1112, 834), "21736.125", "0.052167", "0.026083", "0.2608", 109_586),
    ("720p", "1:1"): ((960, 960), "21600", "0.051840", "0.025920", "0.2592", 108_900),
    ("720p", "3:4"): ((834, 1112), "21736.125", "0.052167", "0.026083", "0.2608", 109_586),
    ("720p", "9:16"): ((720, 1280), "21600", "0.051840", "0.025920", "0.2592", 108_900),
    ("720p", "21:9"): ((1470, 630), "21705.469", "0.052093", "0.026047", "0.2605", 109_431),
    ("1080p", "16:9"): ((1920, 1080), "48600", "0.116640", "0.058320", "0.5832", 245_025),
    ("1080p", "4:3"): ((1664, 1248), "48672", "0.116813", "0.058406", "0.5841", 245_388),
    ("1080p", "1:1"): ((1440, 1440), "48600", "0.116640", "0.058320", "0.5832", 245_025),
    ("1080p", "3:4"): ((1248, 1664), "48672", "0.116813", "0.058406", "0.5841", 245_388),
    ("1080p", "9:16"): ((1080, 1920), "48600", "0.116640", "0.058320", "0.5832", 245_025),
    ("1080p", "21:9"): ((2206, 946), "48911.156", "0.117387", "0.058693", "0.5869", 246_593),
}


def request(
    resolution: Resolution = Resolution.P720,
    aspect_ratio: AspectRatio = AspectRatio.R16_9,
    seconds: int = 5,
    audio: bool = True,
) -> TextToVideoInput:
    return TextToVideoInput(
        prompt="a cat",
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        duration=Duration(str(seconds)),
        generate_audio=audio,
    )


def exact_tokens(size: Size, frames: int) -> Fraction:
    return Fraction(size[0] * size[1] * frames, 1024)


def exact_micros(size: Size, frames: int, audio: bool) -> Fraction:
    return exact_tokens(size, frames) * (Fraction(24, 10) if audio else Fraction(12, 10))


def round_to(value: Fraction, places: int) -> str:
    """Round half up to ``places`` decimals, the way the reference table was written."""
    whole, fraction = divmod(math.floor(value * 10**places + Fraction(1, 2)), 10**places)
    return f"{whole}.{fraction:0{places}d}"


# --- fal's published example ------------------------------------------------------------------------------------


def test_fals_published_example_settles_at_exactly_0_2592() -> None:
    quote = settle(request(), PRICES, produced_size=(1280, 720))

    assert quote == Quote(
        tokens=108_000,
        cost_micros=259_200,
        width=1280,
        height=720,
        frames=120,
        audio=True,
        resolution=Resolution.P720,
        aspect_ratio=AspectRatio.R16_9,
    )
    assert quote.cost_usd == "0.259200"


# --- the size table ---------------------------------------------------------------------------------------------


def test_the_table_has_the_18_cells_and_no_auto() -> None:
    assert {(res.value, ratio.value) for res, cells in SIZES.items() for ratio in cells} == set(REFERENCE)
    assert all(AspectRatio.AUTO not in cells for cells in SIZES.values())


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        SIZES[Resolution.P480][AspectRatio.R1_1] = (1, 1)  # type: ignore[index]


@pytest.mark.parametrize(("resolution", "ratio"), CELLS, ids=str)
def test_each_cell_matches_the_reference_row(resolution: Resolution, ratio: AspectRatio) -> None:
    size, tokens_per_s, usd_per_s_audio, usd_per_s_silent, five_s_audio, _ = REFERENCE[resolution, ratio]
    per_second = exact_tokens(size, 24)

    assert SIZES[resolution][ratio] == size
    assert round_to(per_second, 3).rstrip("0").rstrip(".") == tokens_per_s
    assert round_to(per_second * Fraction(24, 10) / 1_000_000, 6) == usd_per_s_audio
    assert round_to(per_second * Fraction(12, 10) / 1_000_000, 6) == usd_per_s_silent
    assert round_to(Fraction(settle_5s_audio(resolution, ratio).cost_micros, 1_000_000), 4) == five_s_audio


def settle_5s_audio(resolution: Resolution, ratio: AspectRatio) -> Quote:
    return settle(request(resolution, ratio), PRICES, produced_size=SIZES[resolution][ratio])


@pytest.mark.parametrize(("resolution", "ratio"), CELLS, ids=str)
@pytest.mark.parametrize("seconds", range(4, 13))
@pytest.mark.parametrize("audio", [True, False], ids=["audio", "silent"])
def test_settlement_is_fals_formula_rounded_up(
    resolution: Resolution, ratio: AspectRatio, seconds: int, audio: bool
) -> None:
    size = SIZES[resolution][ratio]
    quote = settle(request(resolution, ratio, seconds, audio), PRICES, produced_size=size)

    assert quote.frames == 24 * seconds
    assert quote.tokens == math.ceil(exact_tokens(size, 24 * seconds))
    assert quote.cost_micros == math.ceil(exact_micros(size, 24 * seconds, audio))
    assert (quote.width, quote.height) == size


@pytest.mark.parametrize(
    ("resolution", "ratio", "tokens", "micros"),
    [
        (Resolution.P480, AspectRatio.R16_9, 50_220, 120_528),
        (Resolution.P720, AspectRatio.R4_3, 108_681, 260_834),  # 108,680.625 tokens: both rounded up
        (Resolution.P720, AspectRatio.R21_9, 108_528, 260_466),  # 108,527.34375 tokens
        (Resolution.P1080, AspectRatio.R21_9, 244_556, 586_934),  # 244,555.78125 tokens -> $0.5869
    ],
)
def test_literal_five_second_settlements(resolution: Resolution, ratio: AspectRatio, tokens: int, micros: int) -> None:
    quote = settle_5s_audio(resolution, ratio)

    assert (quote.tokens, quote.cost_micros) == (tokens, micros)


# --- audio ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resolution", "ratio"), CELLS, ids=str)
def test_audio_off_halves_the_cost(resolution: Resolution, ratio: AspectRatio) -> None:
    size = SIZES[resolution][ratio]
    frames = 24 * 5
    with_audio = settle(request(resolution, ratio, audio=True), PRICES, produced_size=size)
    silent = settle(request(resolution, ratio, audio=False), PRICES, produced_size=size)

    assert (with_audio.audio, silent.audio) == (True, False)
    assert silent.tokens == with_audio.tokens
    # Each side is rounded up on its own and halving is exact before rounding, so the silent cost is the rounded-up
    # half of the cost with audio: ceil(x) == ceil(ceil(2x) / 2) for every x.
    assert exact_micros(size, frames, audio=False) * 2 == exact_micros(size, frames, audio=True)
    assert silent.cost_micros == math.ceil(Fraction(with_audio.cost_micros, 2))


def test_audio_off_halves_fals_example_exactly() -> None:
    assert settle(request(audio=False), PRICES, produced_size=(1280, 720)).cost_micros == 129_600


# --- estimate ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resolution", "ratio"), CELLS, ids=str)
def test_estimate_counts_24d_plus_1_frames_and_covers_bytedances_usage(
    resolution: Resolution, ratio: AspectRatio
) -> None:
    size, *_, usage_5s = REFERENCE[resolution, ratio]
    quote = estimate(request(resolution, ratio), PRICES)

    assert quote.frames == 121
    assert quote.tokens == math.ceil(exact_tokens(size, 121))
    assert usage_5s <= quote.tokens <= usage_5s + 1  # ByteDance floors, the estimate rounds up
    assert quote.cost_micros == math.ceil(exact_micros(size, 121, audio=True))


def test_estimate_matches_a_real_bytedance_response() -> None:
    # Task cgt-20251229154107-b4f7k: 720p, 1:1, 5 s, with audio -> usage.completion_tokens 108900.
    quote = estimate(request(Resolution.P720, AspectRatio.R1_1), PRICES)

    assert (quote.tokens, quote.cost_micros, quote.cost_usd) == (108_900, 261_360, "0.261360")


def test_estimate_rounds_fractional_tokens_up() -> None:
    quote = estimate(request(Resolution.P480, AspectRatio.R16_9), PRICES)  # 50,638.5 tokens

    assert (quote.tokens, quote.cost_micros) == (50_639, 121_533)  # 121,532.4 micros


@pytest.mark.parametrize(
    ("resolution", "ratio", "size"),
    [
        (Resolution.P480, AspectRatio.R16_9, (864, 496)),  # tied with 9:16 and 21:9: the first in table order
        (Resolution.P720, AspectRatio.R4_3, (1112, 834)),  # tied with 3:4
        (Resolution.P1080, AspectRatio.R21_9, (2206, 946)),
    ],
)
def test_auto_is_estimated_at_the_largest_cell_of_the_tier(
    resolution: Resolution, ratio: AspectRatio, size: Size
) -> None:
    largest = max(w * h for w, h in SIZES[resolution].values())
    quote = estimate(request(resolution, AspectRatio.AUTO), PRICES)

    assert AUTO_RATIOS[resolution] is ratio
    assert size_for(resolution, AspectRatio.AUTO) == size
    assert size[0] * size[1] == largest
    assert (quote.width, quote.height, quote.aspect_ratio) == (*size, AspectRatio.AUTO)
    assert dataclasses.replace(quote, aspect_ratio=ratio) == estimate(request(resolution, ratio), PRICES)


@pytest.mark.parametrize("resolution", list(Resolution))
@pytest.mark.parametrize("seconds", range(4, 13))
@pytest.mark.parametrize("audio", [True, False], ids=["audio", "silent"])
def test_auto_estimate_covers_every_settlement_in_the_tier(resolution: Resolution, seconds: int, audio: bool) -> None:
    data = request(resolution, AspectRatio.AUTO, seconds, audio)
    upper = estimate(data, PRICES)

    for size in SIZES[resolution].values():
        settled = settle(data, PRICES, produced_size=size)
        assert (settled.width, settled.height) == size  # priced at the produced cell, not clamped
        assert settled.cost_micros <= upper.cost_micros
        assert settled.tokens <= upper.tokens


@pytest.mark.parametrize(("resolution", "ratio"), CELLS, ids=str)
@pytest.mark.parametrize("seconds", range(4, 13))
@pytest.mark.parametrize("audio", [True, False], ids=["audio", "silent"])
def test_estimate_is_never_below_settlement(
    resolution: Resolution, ratio: AspectRatio, seconds: int, audio: bool
) -> None:
    data = request(resolution, ratio, seconds, audio)
    upper = estimate(data, PRICES)
    settled = settle(data, PRICES, produced_size=SIZES[resolution][ratio])

    assert settled.cost_micros <= upper.cost_micros
    assert settled.tokens <= upper.tokens
    assert upper.frames == settled.frames + 1


# --- settle edge cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", list(AspectRatio))
def test_settling_an_unknown_size_charges_the_estimate(ratio: AspectRatio) -> None:
    data = request(Resolution.P1080, ratio, 7, audio=False)

    assert settle(data, PRICES, produced_size=None) == estimate(data, PRICES)


def test_a_size_outside_the_table_is_priced_by_the_formula() -> None:
    # Seedance 1.0's 720p 16:9 size: fal bills what it produced, even if it is not a 1.5 cell.
    quote = settle(request(), PRICES, produced_size=(1248, 704))

    assert (quote.width, quote.height, quote.tokens, quote.cost_micros) == (1248, 704, 102_960, 247_104)


@pytest.mark.parametrize("produced", [(1920, 1080), (1292, 720), (2206, 946)])
def test_a_size_above_the_estimate_is_clamped_to_the_estimate(produced: Size) -> None:
    data = request()  # 720p 16:9 5 s: the estimate is 1280x720 x 121 frames
    upper = estimate(data, PRICES)
    settled = settle(data, PRICES, produced_size=produced)

    assert settled == upper


def test_the_clamp_compares_exact_tokens_not_size() -> None:
    # 1290x720 x 120 frames = 108,843.75 tokens, just under the estimate's 1280x720 x 121 = 108,900: not clamped.
    settled = settle(request(), PRICES, produced_size=(1290, 720))

    assert (settled.width, settled.tokens, settled.frames) == (1290, 108_844, 120)
    assert settled.cost_micros < estimate(request(), PRICES).cost_micros


@pytest.mark.parametrize("produced", [(0, 720), (1280, 0), (-1280, -720)])
def test_a_non_positive_produced_size_is_rejected(produced: Size) -> None:
    with pytest.raises(ValueError, match="produced_size"):
        settle(request(), PRICES, produced_size=produced)


def test_image_to_video_is_priced_like_text_to_video() -> None:
    data = ImageToVideoInput(prompt="a cat", image_url="https://example.com/a.png", aspect_ratio=AspectRatio.AUTO)

    assert estimate(data, PRICES) == estimate(request(aspect_ratio=AspectRatio.AUTO), PRICES)


# --- configuration ----------------------------------------------------------------------------------------------


def test_a_price_change_needs_no_code_change() -> None:
    cheaper = PriceTable(audio_micros_per_million_tokens=2_000_000, silent_micros_per_million_tokens=1_000_000)

    assert settle(request(), cheaper, produced_size=(1280, 720)).cost_micros == 216_000
    assert settle(request(audio=False), cheaper, produced_size=(1280, 720)).cost_micros == 108_000
    assert estimate(request(), cheaper).cost_micros == 217_800


def test_the_frame_rate_is_configuration() -> None:
    quote = settle(request(), PriceTable(fps=30), produced_size=(1280, 720))

    assert (quote.frames, quote.tokens, quote.cost_micros) == (150, 135_000, 324_000)
    assert estimate(request(), PriceTable(fps=30)).frames == 151


def test_the_defaults_are_fals_published_prices() -> None:
    assert PriceTable(2_400_000, 1_200_000, 24) == PRICES
    assert PRICES.micros_per_million_tokens(audio=True) == 2_400_000
    assert PRICES.micros_per_million_tokens(audio=False) == 1_200_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"audio_micros_per_million_tokens": 0},
        {"silent_micros_per_million_tokens": -1},
        {"fps": 0},
        {"audio_micros_per_million_tokens": 2.4e6},
        {"fps": 24.0},
        {"fps": True},
    ],
    ids=str,
)
def test_a_price_table_accepts_only_positive_integers(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        PriceTable(**kwargs)  # type: ignore[arg-type]


def test_a_price_table_and_a_quote_are_frozen() -> None:
    quote = estimate(request(), PRICES)

    with pytest.raises(dataclasses.FrozenInstanceError):
        PRICES.fps = 30  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        quote.cost_micros = 0  # type: ignore[misc]


# --- formatting -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0.000000"),
        (1, "0.000001"),
        (259_200, "0.259200"),
        (999_999, "0.999999"),
        (1_000_000, "1.000000"),
        (12_345_678_901, "12345.678901"),
        (-1, "-0.000001"),
        (-259_200, "-0.259200"),
        (-1_500_000, "-1.500000"),
    ],
)
def test_usd_is_exact(micros: int, text: str) -> None:
    assert usd(micros) == text


# --- every combination ------------------------------------------------------------------------------------------


ALL_REQUESTS = [
    request(res, ratio, seconds, audio)
    for res, ratio, seconds, audio in itertools.product(Resolution, AspectRatio, range(4, 13), (True, False))
]


@pytest.mark.parametrize(
    "data", ALL_REQUESTS, ids=lambda d: f"{d.resolution}-{d.aspect_ratio}-{d.duration}-{d.generate_audio}"
)
def test_every_quote_is_a_non_negative_integer_and_formats_itself(data: TextToVideoInput) -> None:
    upper = estimate(data, PRICES)
    quotes = [upper, *(settle(data, PRICES, produced_size=size) for size in SIZES[data.resolution].values())]

    for quote in quotes:
        assert type(quote.cost_micros) is int
        assert type(quote.tokens) is int
        assert quote.cost_micros > 0
        assert quote.cost_usd == usd(quote.cost_micros)
        assert Fraction(quote.cost_usd) == Fraction(quote.cost_micros, 1_000_000)
        assert (quote.resolution, quote.aspect_ratio, quote.audio) == (
            data.resolution,
            data.aspect_ratio,
            data.generate_audio,
        )
        assert quote.cost_micros <= upper.cost_micros
