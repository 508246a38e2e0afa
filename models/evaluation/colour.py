"""RGB <-> Y'CbCr (BT.601, full range, as JFIF and BPG use) in float with exact rounding.

Why not `videoconvert`: in GStreamer 1.22 its 8-bit RGB<->YUV paths are biased. Measured on
`coffee`, an RGB -> I420 -> RGB round trip through videoconvert gives 35.7 dB PSNR with mean
shifts of up to -3.9 levels per channel (even Y444 full range only reaches 46.7 dB with -1.4 in
green), which would cap every classical codec far below its real quality. So the pixel-format
conversion is done here (exact) and the codecs themselves run in GStreamer on raw planes."""

import numpy as np

KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB


def pad_to(img: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-replicate the bottom/right so both dimensions are multiples of `multiple`."""
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")


def rgb_to_planes(rgb: np.ndarray, chroma: str) -> bytes:
    """uint8 HxWx3 (H, W even for 420) -> planar Y, Cb, Cr bytes (I420 or Y444 layout)."""
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = KR * r + KG * g + KB * b
    cb = (b - y) / (2 * (1 - KB)) + 128.0
    cr = (r - y) / (2 * (1 - KR)) + 128.0
    if chroma == "420":
        h, w = y.shape
        cb = cb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))   # box filter, centre-sited
        cr = cr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    elif chroma != "444":
        raise ValueError(chroma)
    q = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8).tobytes()
    return q(y) + q(cb) + q(cr)


def _upsample2(c: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling for centre-sited chroma (the inverse geometry of the box filter)."""
    def up1(a, axis):
        n = a.shape[axis]
        lo = np.take(a, np.clip(np.arange(n) - 1, 0, n - 1), axis=axis)
        hi = np.take(a, np.clip(np.arange(n) + 1, 0, n - 1), axis=axis)
        even = 0.25 * lo + 0.75 * a
        odd = 0.75 * a + 0.25 * hi
        out = np.stack([even, odd], axis=axis + 1)
        shape = list(a.shape)
        shape[axis] = 2 * n
        return out.reshape(shape)
    return up1(up1(c, 0), 1)


def planes_to_rgb(buf: bytes, width: int, height: int, chroma: str) -> np.ndarray:
    """Planar Y'CbCr bytes (tightly packed) -> uint8 HxWx3."""
    a = np.frombuffer(buf, dtype=np.uint8)
    n = width * height
    if chroma == "420":
        cw, ch = width // 2, height // 2
    else:
        cw, ch = width, height
    need = n + 2 * cw * ch
    if a.size != need:
        raise ValueError(f"raw frame has {a.size} bytes, expected {need} "
                         f"({width}x{height} {chroma})")
    y = a[:n].reshape(height, width).astype(np.float64)
    cb = a[n:n + cw * ch].reshape(ch, cw).astype(np.float64) - 128.0
    cr = a[n + cw * ch:].reshape(ch, cw).astype(np.float64) - 128.0
    if chroma == "420":
        cb, cr = _upsample2(cb), _upsample2(cr)
    r = y + 2 * (1 - KR) * cr
    b = y + 2 * (1 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
