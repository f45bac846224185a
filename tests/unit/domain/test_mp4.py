"""Reading an MP4's width x height from its header: the simulator's real files, hand-built boxes, and hostile input."""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import pytest

import service.simulator
from service.domain.mp4 import video_size

MEDIA_DIR = Path(service.simulator.__file__).parent / "media"
MEDIA_FILES = sorted(MEDIA_DIR.glob("*.mp4"))
PREFIX = 64 * 1024


def expected_size(path: Path) -> tuple[int, int]:
    match = re.fullmatch(r"\d+p-(\d+)x(\d+)\.mp4", path.name)
    assert match, path.name
    return int(match[1]), int(match[2])


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def large_box(kind: bytes, payload: bytes) -> bytes:
    """A box with ``size == 1`` and its size in the 64-bit ``largesize`` field."""
    return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload


def tkhd(version: int, width: float, height: float) -> bytes:
    times = struct.pack(">QQIIQ", 1, 2, 1, 0, 3) if version == 1 else struct.pack(">IIIII", 1, 2, 1, 0, 3)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    rest = struct.pack(">8xhhh2x", 0, 0, 0) + matrix + struct.pack(">II", int(width * 65536), int(height * 65536))
    return box(b"tkhd", bytes([version, 0, 0, 7]) + times + rest)


def mp4(*traks: bytes, large_moov: bool = False) -> bytes:
    mvhd = box(b"mvhd", bytes(100))
    moov_payload = mvhd + b"".join(box(b"trak", t) for t in traks)
    moov = large_box(b"moov", moov_payload) if large_moov else box(b"moov", moov_payload)
    return box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2") + moov + box(b"mdat", bytes(64))


def test_all_simulator_files_are_found() -> None:
    assert len(MEDIA_FILES) == 18


@pytest.mark.parametrize("path", MEDIA_FILES, ids=lambda p: p.name)
def test_real_files_give_their_size(path: Path) -> None:
    data = path.read_bytes()

    assert video_size(data) == expected_size(path)
    assert video_size(data[:PREFIX]) == expected_size(path)


def moov_bounds(data: bytes) -> tuple[int, int]:
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"moov":
            return offset, offset + size
        offset += size
    raise AssertionError("no moov")


@pytest.mark.parametrize("path", MEDIA_FILES[:3], ids=lambda p: p.name)
def test_a_prefix_that_cuts_moov_gives_none(path: Path) -> None:
    data = path.read_bytes()
    start, end = moov_bounds(data)

    assert video_size(data[: (start + end) // 2]) is None
    assert video_size(data[: end - 1]) is None
    assert video_size(data[:end]) == expected_size(path)


def test_version_1_tkhd_after_an_audio_track() -> None:
    data = mp4(tkhd(0, 0, 0), tkhd(1, 1280, 720))

    assert video_size(data) == (1280, 720)


def test_version_0_tkhd_takes_the_integer_part_of_16_16() -> None:
    assert video_size(mp4(tkhd(0, 834.75, 1112.5))) == (834, 1112)


def test_a_track_with_only_one_zero_dimension_is_skipped() -> None:
    assert video_size(mp4(tkhd(0, 640, 0), tkhd(0, 0, 480), tkhd(0, 992, 432))) == (992, 432)


def test_only_audio_tracks_give_none() -> None:
    assert video_size(mp4(tkhd(0, 0, 0), tkhd(1, 0, 0))) is None


def test_unknown_tkhd_version_is_skipped() -> None:
    unknown = bytearray(tkhd(0, 1920, 1080))
    unknown[8] = 2

    assert video_size(mp4(bytes(unknown), tkhd(0, 1440, 1440))) == (1440, 1440)


def test_64_bit_largesize_boxes() -> None:
    assert video_size(mp4(tkhd(1, 2206, 946), large_moov=True)) == (2206, 946)


def test_size_zero_box_runs_to_the_end() -> None:
    moov = struct.pack(">I4s", 0, b"moov") + box(b"trak", tkhd(0, 720, 1280))

    assert video_size(box(b"ftyp", b"isom") + moov) == (720, 1280)


def test_a_short_tkhd_gives_none() -> None:
    short = tkhd(1, 1280, 720)[:-4]
    short = struct.pack(">I", len(short)) + short[4:]

    assert video_size(mp4(short)) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        bytes(8),  # size 0 at the top: one box to the end, no moov
        bytes(64),
        struct.pack(">I4s", 0, b"moov"),  # an empty moov that runs to the end
        struct.pack(">I4s", 0, b"moov") + struct.pack(">I4s", 0, b"trak") + struct.pack(">I4s", 0, b"tkhd"),
        struct.pack(">I4s", 4, b"moov") * 10,  # size smaller than its header
        struct.pack(">I4s", 0xFFFFFFFF, b"moov") + bytes(100),
        struct.pack(">I4sQ", 1, b"moov", 2**64 - 1) + bytes(100),
        struct.pack(">I4sQ", 1, b"moov", 0) + bytes(100),  # largesize zero
        struct.pack(">I4sQ", 1, b"moov", 8) + bytes(100),  # largesize smaller than its 16-byte header
        struct.pack(">I4s", 1, b"moov") + b"\x00\x00",  # largesize cut off
        box(b"moov", struct.pack(">I4s", 0xFFFF, b"trak")),  # a child that claims more than its parent
        b"GIF89a" + bytes(200),
        b"\x89PNG\r\n\x1a\n" + bytes(200),
    ],
)
def test_hostile_input_gives_none(data: bytes) -> None:
    assert video_size(data) is None


def test_every_truncation_of_a_real_file_is_safe() -> None:
    path = MEDIA_DIR / "720p-1280x720.mp4"
    data = path.read_bytes()
    _, moov_end = moov_bounds(data)

    results = [video_size(data[:cut]) for cut in range(len(data) + 1)]

    assert all(size is None for size in results[:moov_end])
    assert all(size == (1280, 720) for size in results[moov_end:])


def test_random_bytes_never_raise() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 2048))
        size = video_size(data)
        assert size is None or (size[0] > 0 and size[1] > 0)


def test_random_corruption_of_a_real_file_never_raises() -> None:
    data = (MEDIA_DIR / "480p-640x640.mp4").read_bytes()
    rng = random.Random(0)
    for _ in range(2000):
        corrupted = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            corrupted[rng.randrange(0, 1200)] = rng.randrange(256)
        video_size(bytes(corrupted))
