"""Annex-B (H.264 / H.265 byte stream) NAL unit splitting, used to drop SEI messages.

x264 and x265 write an SEI with their version and full option string (hundreds to thousands
of bytes) that no decoder needs; counting it would penalise them unfairly on small images."""


def split_nals(data: bytes):
    """Return the NAL units (without start codes) of an Annex-B byte stream."""
    starts = []
    i, n = 0, len(data)
    while i + 3 <= n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            starts.append(i + 3)
            i += 3
        else:
            i += 1
    nals = []
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        # a 4-byte start code leaves one extra zero before the next 00 00 01
        while e > s and data[e - 1] == 0:
            e -= 1
        nals.append(data[s:e])
    return nals


def nal_type(nal: bytes, codec: str) -> int:
    if codec == "h264":
        return nal[0] & 0x1F
    return (nal[0] >> 1) & 0x3F


SEI_TYPES = {"h264": {6}, "h265": {39, 40}}


def strip_sei(data: bytes, codec: str) -> bytes:
    """Drop SEI NAL units; rewrite with 4-byte start codes for the first NAL, 3-byte after."""
    out = bytearray()
    for k, nal in enumerate(split_nals(data)):
        if not nal or nal_type(nal, codec) in SEI_TYPES[codec]:
            continue
        out += (b"\x00\x00\x00\x01" if not out else b"\x00\x00\x01") + nal
    return bytes(out)
