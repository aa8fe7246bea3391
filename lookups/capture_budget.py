"""A decode budget for one camera capture (issue 10.5), checked before any pixel is decoded.

The camera page (``lookups/static/lookups/camera.js``) asks for a 640 x 480 video stream
(``ideal``; a browser may deliver its nearest mode) and, for the prompted-liveness capture
(issue 11), sends ``forms.BURST_FRAMES`` (35: ~3.5 s at 10 fps) JPEG frames downscaled in the
browser to at most 640 px on the long side. Twenty PNG frames of ~49 megapixels each are only 3 MB on the
wire yet pin a web worker for ~15 s, so a burst is refused by its *headers*: Pillow's
``Image.open`` is lazy and ``.size`` reads the header only. Invariants:

* at most ``MAX_CAPTURE_FRAMES`` frames;
* each frame at most ``MAX_FRAME_SIDE`` px on its long side and ``MAX_FRAME_PIXELS`` pixels
  (1920 x 1080, with margin, is three times what the page asks for in each direction);
* all frames together at most ``MAX_CAPTURE_PIXELS``;
* a frame whose header cannot be read is refused here too (never handed on to a decoder).

A refusal is a ``CaptureOverBudget`` with one of the pipeline's refusal codes, so the page
shows the existing retake message; nothing is decoded, locked or written.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO

from PIL import Image, UnidentifiedImageError

from .faces.images import ALLOWED_FORMATS

MAX_FRAME_SIDE = 2048
MAX_FRAME_PIXELS = 2_200_000
#: Frames per capture: ~4 s at 10 fps (the page sends forms.BURST_FRAMES = 35), with margin.
#: MAX_BURST_FRAMES (the worker-side limit) must be at least this.
MAX_CAPTURE_FRAMES = 40
#: All frames together: MAX_CAPTURE_FRAMES frames of at most 640 x 640 (the page downscales
#: every frame to <= 640 px on its long side, so 640 x 480 and 480 x 640 fit with room):
#: 16.4 MP, about 1.4 s of decoding on one core. Full-size frames (1920 x 1080) fit only ~7.
MAX_CAPTURE_PIXELS = MAX_CAPTURE_FRAMES * 640 * 640


class CaptureOverBudget(Exception):
    """The capture would cost more to decode than a real camera burst; ``code`` names why."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def _header_size(stream: IO[bytes]) -> tuple[int, int]:
    """Width and height from the image header only (no pixel data is decoded)."""
    try:
        with Image.open(stream, formats=ALLOWED_FORMATS) as image:
            return image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CaptureOverBudget("too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CaptureOverBudget("not_an_image") from exc


def check_capture(frames: Iterable[IO[bytes] | bytes]) -> int:
    """Refuse a burst over budget (``CaptureOverBudget``); return its total pixel count.

    ``frames`` are uploaded files (rewound afterwards) or bytes.
    """
    total = 0
    for count, frame in enumerate(frames, start=1):
        if count > MAX_CAPTURE_FRAMES:
            raise CaptureOverBudget("too_many_frames")
        stream = io.BytesIO(frame) if isinstance(frame, bytes | bytearray) else frame
        start = stream.tell() if hasattr(stream, "tell") else 0
        try:
            width, height = _header_size(stream)
        finally:
            stream.seek(start)
        if width <= 0 or height <= 0:
            raise CaptureOverBudget("unreadable")
        if max(width, height) > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
            raise CaptureOverBudget("too_many_pixels")
        total += width * height
        if total > MAX_CAPTURE_PIXELS:
            raise CaptureOverBudget("too_many_pixels")
    return total
