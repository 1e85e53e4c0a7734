"""The ``official`` recipe's augmentation, as torchvision applies it, on whole batches in numpy.

locuslab/convmixer-cifar10's ``train.py`` augments each PIL training image with::

    RandomResizedCrop(32, scale=(s, 1), ratio=(1, 1)) -> RandomHorizontalFlip()
    -> RandAugment(num_ops=n, magnitude=m) -> ColorJitter(j, j, j)
    -> ToTensor() -> Normalize(mean, std) -> RandomErasing(p)

torchvision draws every random choice per image and, on PIL images, computes
each step with Pillow (``ImageEnhance``, ``ImageOps``, ``Image.transform``),
rounding to uint8 after each one. This module does the same arithmetic for a
whole batch at once: per-image parameters are arrays, and each step is a few
vectorised numpy passes (tests compare every step with Pillow itself). Images
are uint8 until the last step; the result is float32 pixels in [0, 255],
because the model normalises its own inputs.

Erasing: torchvision erases *after* normalisation with 0. The model computes
``(x / 255 - mean) / std``, so filling with ``255 * mean`` per channel before
it gives exactly that 0.
"""

from __future__ import annotations

import numpy as np

from ..cifar10 import CIFAR10_MEAN

# torchvision.transforms.RandAugment's op list, in its order, and its number of magnitude bins.
RANDAUGMENT_OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)
RANDAUGMENT_BINS = 31
ERASE_FILL = np.array([255.0 * m for m in CIFAR10_MEAN], dtype="float32")


def randaugment_magnitude(op: str, magnitude: int, image_size: int = 32) -> tuple[float, bool]:
    """torchvision's (magnitude, signed) of ``op`` at bin ``magnitude`` (``_augmentation_space``)."""
    if not 0 <= magnitude < RANDAUGMENT_BINS:
        raise ValueError(f"randaugment_m must be an integer in [0, {RANDAUGMENT_BINS - 1}], got {magnitude!r}")
    frac = magnitude / (RANDAUGMENT_BINS - 1)
    if op in ("ShearX", "ShearY"):
        return 0.3 * frac, True
    if op in ("TranslateX", "TranslateY"):
        return 150.0 / 331.0 * image_size * frac, True
    if op == "Rotate":
        return 30.0 * frac, True
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return 0.9 * frac, True
    if op == "Posterize":
        return float(8 - int(round(magnitude / ((RANDAUGMENT_BINS - 1) / 4)))), False
    if op == "Solarize":
        return 255.0 * (1.0 - frac), False
    return 0.0, False


# ---------------------------------------------------------------- Pillow's pixel arithmetic, batched


def _blend(degenerate, image, factor):
    """``Image.blend(degenerate, image, factor)``: float32 arithmetic, clipped, truncated to uint8."""
    f = np.asarray(factor, dtype="float32").reshape(-1, 1, 1, 1)
    out = degenerate.astype("float32") + f * (image.astype("float32") - degenerate.astype("float32"))
    return np.clip(out, 0, 255).astype("uint8")


def _grayscale(x):
    """Pillow's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point), shape (B, H, W)."""
    x = x.astype("uint32")
    return ((x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16).astype("uint8")


def brightness(x, factor):
    """``ImageEnhance.Brightness``: blend with black."""
    return _blend(np.zeros_like(x), x, factor)


def saturation(x, factor):
    """``ImageEnhance.Color``: blend with the image's grayscale."""
    return _blend(np.repeat(_grayscale(x)[..., None], 3, axis=-1), x, factor)


def contrast(x, factor):
    """``ImageEnhance.Contrast``: blend with a flat image at the rounded mean grayscale."""
    mean = np.floor(_grayscale(x).mean(axis=(1, 2), dtype="float64") + 0.5).astype("uint8")
    return _blend(np.broadcast_to(mean[:, None, None, None], x.shape), x, factor)


def sharpness(x, factor):
    """``ImageEnhance.Sharpness``: blend with ``ImageFilter.SMOOTH`` (3x3, centre 5, total 13, border kept)."""
    xf = x.astype("float32")
    pad = np.pad(xf, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    total = sum(pad[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) + 4 * xf
    smooth = np.floor(total / 13 + 0.5).clip(0, 255).astype("uint8")
    smooth[:, 0], smooth[:, -1], smooth[:, :, 0], smooth[:, :, -1] = x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]
    return _blend(smooth, x, factor)


def posterize(x, bits):
    """``ImageOps.posterize``: keep the top ``bits`` bits of each channel."""
    shift = (8 - np.asarray(bits, dtype="int32")).reshape(-1, 1, 1, 1)
    return ((x.astype("int32") >> shift) << shift).astype("uint8")


def solarize(x, threshold):
    """``ImageOps.solarize``: invert every value at or above ``threshold``."""
    t = np.asarray(threshold, dtype="float32").reshape(-1, 1, 1, 1)
    return np.where(x >= t, 255 - x, x).astype("uint8")


def _channel_luts(x, make_lut):
    """Apply a per-image, per-channel 256-entry lookup table built from each channel's histogram."""
    b, h, w, c = x.shape
    offsets = (np.arange(b * c) * 256).reshape(b, 1, 1, c)
    index = (x.astype("int64") + offsets).ravel()
    hist = np.bincount(index, minlength=b * c * 256).reshape(b * c, 256)
    lut = make_lut(hist).astype("uint8").ravel()
    return lut[index].reshape(x.shape)


def _autocontrast_lut(hist):
    levels = np.arange(256)
    nonzero = hist > 0
    lo = np.argmax(nonzero, axis=1)
    hi = 255 - np.argmax(nonzero[:, ::-1], axis=1)
    flat = hi <= lo
    scale = 255.0 / np.where(flat, 1, hi - lo)
    lut = np.trunc(levels[None] * scale[:, None] - lo[:, None] * scale[:, None]).clip(0, 255)
    return np.where(flat[:, None], levels[None], lut)


def autocontrast(x):
    """``ImageOps.autocontrast``: stretch each channel's range to 0..255."""
    return _channel_luts(x, _autocontrast_lut)


def _equalize_lut(hist):
    levels = np.arange(256)
    last = 255 - np.argmax(hist[:, ::-1] > 0, axis=1)
    step = (hist.sum(axis=1) - hist[np.arange(len(hist)), last]) // 255
    safe = np.maximum(step, 1)[:, None]
    before = np.cumsum(hist, axis=1) - hist  # pixels strictly below each level
    lut = ((safe // 2 + before) // safe).clip(0, 255)
    return np.where((step == 0)[:, None], levels[None], lut)


def equalize(x):
    """``ImageOps.equalize``: per-channel histogram equalisation (identity for flat channels)."""
    return _channel_luts(x, _equalize_lut)


def affine_nearest(x, matrix, fill=0):
    """``Image.transform(AFFINE, matrix, NEAREST)`` per image: output pixel (X, Y) reads input pixel
    ``floor(a X' + b Y' + c), floor(d X' + e Y' + f)`` at pixel centres X' = X + 0.5; outside is ``fill``.

    ``matrix`` has shape (B, 6): the inverse map, as Pillow and torchvision write it.
    """
    b, h, w, _ = x.shape
    m = np.asarray(matrix, dtype="float64").reshape(b, 6, 1, 1)
    gy, gx = np.mgrid[0:h, 0:w] + 0.5
    sx = np.floor(m[:, 0] * gx + m[:, 1] * gy + m[:, 2]).astype("int64")
    sy = np.floor(m[:, 3] * gx + m[:, 4] * gy + m[:, 5]).astype("int64")
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    flat = (np.arange(b)[:, None, None] * h + sy.clip(0, h - 1)) * w + sx.clip(0, w - 1)
    out = x.reshape(b * h * w, -1)[flat]
    out[~inside] = fill
    return out


def _affine_matrices(op, magnitude, size):
    """The inverse matrix torchvision hands Pillow for each geometric op (``_apply_op``)."""
    n = len(magnitude)
    m = np.zeros((n, 6))
    m[:, 0] = m[:, 4] = 1.0
    if op == "ShearX":  # F.affine(shear=(degrees(atan(v)), 0), center=[0, 0]): x' = x + v y
        m[:, 1] = magnitude
    elif op == "ShearY":
        m[:, 3] = magnitude
    elif op == "TranslateX":  # F.affine(translate=[int(v), 0]): x' = x - int(v)
        m[:, 2] = -np.trunc(magnitude)
    elif op == "TranslateY":
        m[:, 5] = -np.trunc(magnitude)
    elif op == "Rotate":  # Image.rotate(v): counter-clockwise about the centre (w/2, h/2)
        angle = -np.radians(np.mod(magnitude, 360.0))
        cos, sin = np.round(np.cos(angle), 15), np.round(np.sin(angle), 15)
        cx, cy = size / 2, size / 2
        m[:, 0], m[:, 1], m[:, 3], m[:, 4] = cos, sin, -sin, cos
        m[:, 2] = cos * -cx + sin * -cy + cx
        m[:, 5] = -sin * -cx + cos * -cy + cy
    return m


def apply_op(x, op: str, magnitude):
    """One RandAugment op on every image of ``x`` with per-image signed ``magnitude`` (torchvision's ``_apply_op``)."""
    magnitude = np.broadcast_to(np.asarray(magnitude, dtype="float64"), (len(x),))
    if op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        return affine_nearest(x, _affine_matrices(op, magnitude, x.shape[1]))
    if op == "Brightness":
        return brightness(x, 1.0 + magnitude)
    if op == "Color":
        return saturation(x, 1.0 + magnitude)
    if op == "Contrast":
        return contrast(x, 1.0 + magnitude)
    if op == "Sharpness":
        return sharpness(x, 1.0 + magnitude)
    if op == "Posterize":
        return posterize(x, magnitude.astype("int32"))
    if op == "Solarize":
        return solarize(x, magnitude)
    if op == "AutoContrast":
        return autocontrast(x)
    if op == "Equalize":
        return equalize(x)
    if op == "Identity":
        return x
    raise ValueError(f"unknown RandAugment op {op!r}; allowed: {list(RANDAUGMENT_OPS)}")


# ---------------------------------------------------------------- the random steps


def random_resized_crop(x, rng, scale_min: float):
    """``RandomResizedCrop(size, scale=(scale_min, 1), ratio=(1, 1))`` with bilinear resizing.

    With a square ratio and scale <= 1 torchvision's first attempt always fits:
    side = round(sqrt(area * U(scale_min, 1))) at a uniform position. The crop is
    resized like Pillow's BILINEAR (pixel centres, edge clamped), one axis at a
    time with rounding in between.
    """
    b, size = len(x), x.shape[1]
    side = np.round(np.sqrt(size * size * rng.uniform(scale_min, 1.0, b))).astype("int64")
    top = np.floor(rng.random(b) * (size - side + 1)).astype("int64")
    left = np.floor(rng.random(b) * (size - side + 1)).astype("int64")

    def taps(start, length):
        src = start[:, None] + (np.arange(size)[None] + 0.5) * (length[:, None] / size) - 0.5
        src = np.clip(src, start[:, None], (start + length - 1)[:, None])
        i0 = np.floor(src).astype("int64")
        i1 = np.minimum(i0 + 1, (start + length - 1)[:, None])
        return i0, i1, (src - i0).astype("float32")

    x0, x1, wx = taps(left, side)
    rows = np.arange(b)[:, None, None]
    ys = np.arange(size)[None, :, None]
    a, c = x[rows, ys, x0[:, None, :]].astype("float32"), x[rows, ys, x1[:, None, :]].astype("float32")
    horizontal = np.floor(a + wx[:, None, :, None] * (c - a) + 0.5)
    y0, y1, wy = taps(top, side)
    a, c = horizontal[rows, y0[:, :, None], np.arange(size)], horizontal[rows, y1[:, :, None], np.arange(size)]
    return np.floor(a + wy[:, :, None, None] * (c - a) + 0.5).clip(0, 255).astype("uint8")


def random_flip(x, rng):
    """``RandomHorizontalFlip(p=0.5)``."""
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = x[flip][:, :, ::-1]
    return out


def rand_augment(x, rng, num_ops: int, magnitude: int):
    """``RandAugment(num_ops, magnitude)``: per image and per round, a uniform op and a random sign."""
    out = x.copy()
    for _ in range(num_ops):
        ops = rng.integers(0, len(RANDAUGMENT_OPS), len(x))
        negative = rng.random(len(x)) < 0.5
        for k, op in enumerate(RANDAUGMENT_OPS):
            chosen = ops == k
            if op == "Identity" or not chosen.any():
                continue
            value, signed = randaugment_magnitude(op, magnitude, x.shape[1])
            values = np.where(negative[chosen] & signed, -value, value)
            out[chosen] = apply_op(out[chosen], op, values)
    return out


def color_jitter(x, rng, strength: float):
    """``ColorJitter(strength, strength, strength)``: brightness, contrast and saturation factors
    uniform in [1 - strength, 1 + strength], applied in a random order per image."""
    if strength <= 0:
        return x
    b = len(x)
    factors = rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength, (3, b))
    order = np.argsort(rng.random((b, 3)), axis=1)  # a random permutation of the three per image
    ops = (brightness, contrast, saturation)
    out = x.copy()
    for position in range(3):
        for k, op in enumerate(ops):
            chosen = order[:, position] == k
            if chosen.any():
                out[chosen] = op(out[chosen], factors[k, chosen])
    return out


def random_erasing(x, rng, p: float, scale=(0.02, 0.33), ratio=(0.3, 3.3), attempts: int = 10):
    """``RandomErasing(p, scale, ratio, value=0)`` after normalisation, on float pixels (see module doc).

    Each image is erased with probability ``p``; the rectangle is the first of
    ``attempts`` draws (area fraction uniform in ``scale``, log aspect uniform in
    log ``ratio``) that fits strictly inside the image, as torchvision samples it.
    """
    b, h, w, _ = x.shape
    out = x.astype("float32")
    erase = rng.random(b) < p
    area = h * w * rng.uniform(scale[0], scale[1], (b, attempts))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (b, attempts)))
    eh = np.round(np.sqrt(area * aspect)).astype("int64")
    ew = np.round(np.sqrt(area / aspect)).astype("int64")
    fits = (eh < h) & (ew < w)
    first = np.argmax(fits, axis=1)
    erase &= fits.any(axis=1)
    eh, ew = eh[np.arange(b), first], ew[np.arange(b), first]
    top = np.floor(rng.random(b) * (h - eh + 1)).astype("int64")
    left = np.floor(rng.random(b) * (w - ew + 1)).astype("int64")
    ys, xs = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    box = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None])
           & (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]) & erase[:, None, None])
    out[box] = ERASE_FILL
    return out


def official_augment(x, rng, recipe):
    """The whole official pipeline on a uint8 batch (B, 32, 32, 3); float32 pixels out."""
    x = random_resized_crop(np.asarray(x, dtype="uint8"), rng, recipe.crop_scale)
    x = random_flip(x, rng)
    x = rand_augment(x, rng, recipe.randaugment_n, recipe.randaugment_m)
    x = color_jitter(x, rng, recipe.jitter)
    return random_erasing(x, rng, recipe.erasing_p)
