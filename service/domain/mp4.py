"""The pixel size of an MP4 video, read from its header bytes (``moov/trak/tkhd``, ISO/IEC 14496-12).

ISO/IEC 14496-12 (ISO base media file format), §4.2: a file is a sequence of boxes, each starting with a 32-bit
big-endian ``size`` (header included) and a 4-character ``type``. ``size == 1`` means a 64-bit ``largesize`` follows
the type; ``size == 0`` means the box runs to the end of the file. Container boxes (``moov``, ``trak``) hold only
boxes. §8.3.2: ``tkhd`` is a FullBox (1-byte version, 3-byte flags) whose times and duration are 32-bit in version 0
and 64-bit in version 1; it ends with ``width`` and ``height`` as 16.16 fixed-point numbers, zero for audio tracks.

The input is usually a prefix of a file fetched from an untrusted server, so the parser never raises and never
trusts a declared size: a box that does not fit in the bytes it has is treated as missing, and every step moves
forward by at least one box header, so the walk ends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_HEADER = struct.Struct(">I4s")
_LARGESIZE = struct.Struct(">Q")
_SIZE = struct.Struct(">II")

# Offset of ``width`` inside the tkhd payload: version/flags (4), then creation/modification times, track_ID,
# reserved and duration (20 bytes in version 0, 32 in version 1), then reserved[2], layer, alternate_group, volume,
# reserved and the 3x3 matrix (8 + 2 + 2 + 2 + 2 + 36 = 52).
_TKHD_WIDTH_OFFSET = {0: 4 + 20 + 52, 1: 4 + 32 + 52}


def video_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of the first track with a picture, or None when ``data`` does not hold a complete ``moov``.

    Takes the integer part of the 16.16 values. Tracks whose width or height is zero (audio) are skipped.
    """
    for moov_start, moov_end in _children(data, 0, len(data), b"moov"):
        for trak_start, trak_end in _children(data, moov_start, moov_end, b"trak"):
            for tkhd_start, tkhd_end in _children(data, trak_start, trak_end, b"tkhd"):
                size = _tkhd_size(data, tkhd_start, tkhd_end)
                if size is not None:
                    return size
        # Only the first ``moov`` describes the file; a second one is not something to guess about.
        return None
    return None


def _children(data: bytes, start: int, end: int, wanted: bytes) -> Iterator[tuple[int, int]]:
    """Payload bounds of the boxes of type ``wanted`` among the boxes laid out in ``data[start:end]``."""
    for kind, payload_start, payload_end in _boxes(data, start, end):
        if kind == wanted:
            yield payload_start, payload_end


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Type and payload bounds of each complete box in ``data[start:end]``; stops at the first one that is not."""
    offset = start
    while end - offset >= _HEADER.size:
        size, kind = _HEADER.unpack_from(data, offset)
        header = _HEADER.size
        if size == 1:
            if end - offset < _HEADER.size + _LARGESIZE.size:
                return
            (size,) = _LARGESIZE.unpack_from(data, offset + _HEADER.size)
            header += _LARGESIZE.size
        elif size == 0:
            # "To the end of the file": in a prefix the end is unknown, so this is only right for the last box of a
            # whole file. Either way it is the last box here, so the walk ends.
            size = end - offset
        # A size smaller than its own header would not move the walk forward; one past ``end`` is truncated (or a
        # lie). Both end the walk rather than guess: a truncated ``moov`` gives None, not a half-read header.
        if size < header or size > end - offset:
            return
        yield kind, offset + header, offset + size
        offset += size


def _tkhd_size(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Width and height from a ``tkhd`` payload, or None for an unknown version, a short box or zero (audio)."""
    if start >= end:
        return None
    width_offset = _TKHD_WIDTH_OFFSET.get(data[start])
    if width_offset is None or end - start < width_offset + _SIZE.size:
        return None
    width, height = _SIZE.unpack_from(data, start + width_offset)
    width, height = width >> 16, height >> 16
    if width == 0 or height == 0:
        return None
    return width, height
