"""Probe loading and the pixel-level quality measures (no Django imports).

:func:`load_probe_image` validates an upload by its content and returns upright, downscaled
RGB pixels; every refusal is a :class:`~lookups.faces.errors.ProbeRejected`. The face-box
brightness and sharpness helpers are the quality gate's measures (used by detection).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from lookups.faces.errors import ProbeRejected

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Refuse images above this many pixels *before* decoding them (a 48 MP phone photo still
#: passes; Pillow's own bomb limit is ~89 MP and would only warn there).
MAX_IMAGE_PIXELS = 50_000_000
#: A still that is not JPEG is decoded in full (no DCT-domain downscale): a 48 MP PNG or WebP
#: costs 1-2 s of CPU per upload, so such stills are refused above this by their header.
#: JPEG (every phone camera) keeps MAX_IMAGE_PIXELS: it is draft-decoded at 1/8 in ~50 ms.
MAX_FULL_DECODE_PIXELS = 4_200_000
#: Decoded probes are downscaled so that the long side is at most this many pixels. 800 is
#: the largest size in the calibration set (so calibration is unaffected) and keeps a 4000 px
#: phone photo within ~1.25x the cost of an 800 px one (JPEG draft decodes it at 1/4 scale,
#: HOG then runs on the same pixel count); see bench/face_throughput.py.
MAX_LONG_SIDE = 800
#: Still formats we parse at all (Pillow is told to try only these decoders). The JPEG opener
#: also yields "MPO" images: what some phones write for photos with an embedded preview or
#: depth frame; those are treated as stills (first frame).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

#: Quality gate, calibrated on /work/shared/faces (bench/face_calibration_notes.md).
#: Face box height after the downscale. dlib HOG boxes come in discrete sizes
#: (... 43, 52, 62, 72, 86, 104, 124 ... px): special/small_face.jpg is at 43 and refused,
#: the smallest LFW thumbnails in the set are at 52 and pass.
MIN_FACE_HEIGHT_PX = 50
#: Mean Rec.601 luma (0-255) of the face box; darkest image of the set: 58.8.
MIN_BRIGHTNESS = 40.0
#: Variance of the Laplacian of the 64x64 grey face crop; least sharp image of the set: 34.2.
#: A Gaussian blur of sigma = 4 % of the face height (which moves the embedding by ~0.5,
#: i.e. by a whole threshold) brings every tested face under 12.
MIN_SHARPNESS = 30.0
#: Side of the (face-size independent) sharpness crop.
_SHARPNESS_CROP_PX = 64

MAX_BURST_FRAMES = 40  # >= capture_budget.MAX_CAPTURE_FRAMES (a 3.5 s capture at 10 fps)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Alpha is composited on white; 16/32-bit integer and float
    greyscale is rescaled (not clipped) to 8 bits."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 0.0
        if mode.startswith("I;16") or top > 255.0:
            scale = 255.0 / 65535.0 if top <= 65535.0 else 255.0 / top
        elif mode == "F" and top <= 1.0:
            scale = 255.0
        else:
            scale = 1.0
        arr8 = np.clip(np.nan_to_num(arr * scale), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    # CMYK (Pillow undoes Adobe inversion in the JPEG decoder), L, 1, P, YCbCr, LAB, HSV, ...
    return im.convert("RGB")


def load_probe_image(data: bytes) -> np.ndarray:
    """Validate and decode an uploaded photo by its *content* (never its name or MIME type).

    Returns an ``H x W x 3`` ``uint8`` RGB array, upright (EXIF orientation applied), with
    ``max(H, W) <= MAX_LONG_SIDE``. Refusals (``ProbeRejected.code``): ``empty``,
    ``too_large`` (> MAX_UPLOAD_BYTES, checked before parsing), ``not_an_image`` (no allowed
    decoder recognises it), ``too_many_pixels`` (header size checked before any decoding,
    plus Pillow's DecompressionBomb guard), ``animated`` (more than one frame; MPO is a still),
    ``unreadable`` (truncated or corrupt pixel data).
    """
    if not data:
        raise ProbeRejected("empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ProbeRejected("too_large")
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # see _fr(): never decode a cut-off upload
    try:
        im: Image.Image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProbeRejected("too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ProbeRejected("not_an_image") from exc

    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ProbeRejected("unreadable")
        if width * height > MAX_IMAGE_PIXELS:
            raise ProbeRejected("too_many_pixels")
        if im.format not in ("JPEG", "MPO") and width * height > MAX_FULL_DECODE_PIXELS:
            raise ProbeRejected("too_many_pixels")
        if im.format != "MPO" and (getattr(im, "is_animated", False) or getattr(im, "n_frames", 1) > 1):
            raise ProbeRejected("animated")
        if im.format in ("JPEG", "MPO") and max(width, height) > MAX_LONG_SIDE:
            # DCT-domain downscale by 1/2, 1/4 or 1/8 while decoding; never below target.
            factor = MAX_LONG_SIDE / max(width, height)
            im.draft(None, (math.ceil(width * factor), math.ceil(height * factor)))
        im.load()
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
        if max(im.size) > MAX_LONG_SIDE:
            factor = MAX_LONG_SIDE / max(im.size)
            new_size = (
                max(1, round(im.size[0] * factor)),
                max(1, round(im.size[1] * factor)),
            )
            im = im.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        arr = np.asarray(im, dtype=np.uint8)
    except ProbeRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProbeRejected("too_many_pixels") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # "image file is truncated", broken chunks / CRCs, bad EXIF, ...
        raise ProbeRejected("unreadable") from exc
    finally:
        im.close()
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - defensive
        raise ProbeRejected("unreadable")
    return np.ascontiguousarray(arr)


def _luma(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _clip_box(box: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int, int]:
    top, right, bottom, left = (int(v) for v in box)
    return max(0, top), min(width, right), min(height, bottom), max(0, left)


def _face_brightness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    top, right, bottom, left = box
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        return 0.0
    return float(_luma(crop).mean())


def _laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior of ``gray``."""
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    return float(lap.var())


def _face_sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Focus measure of the face box, independent of face size.

    The grey face crop is resampled to 64x64 (so blur is measured relative to the face, which
    is what degrades the embedding; 64 px barely upsamples the smallest accepted faces) and
    the variance of its Laplacian is returned. Blur removes high frequencies, so the value
    drops. It also drops with very low contrast, which is refused too (retake).
    """
    top, right, bottom, left = box
    crop = image[top:bottom, left:right]
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return 0.0
    gray = Image.fromarray(crop).convert("L")
    size = (_SHARPNESS_CROP_PX, _SHARPNESS_CROP_PX)
    gray = gray.resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(gray, dtype=np.float64)
    return _laplacian_variance(arr)
