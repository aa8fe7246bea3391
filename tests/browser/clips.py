"""Fake-camera clips (y4m) built from the live captures, for Chromium's fake video device.

``live_clip_y4m("clip_06", ping_pong(62, 82))`` turns frames of ``<faces>/live/clip_06/``
into a YUV4MPEG2 file with ffmpeg at 10 fps and returns its absolute path (Chromium needs an
absolute path in ``--use-file-for-fake-video-capture``, and loops the file). The file goes to
a cache directory outside the repository (``KINGUARD_CLIP_CACHE``, default
``<tmp>/kinguard-clips``): the footage is third-party and must never be copied into the repo.
A clip is built once per (clip, frame order, size) and reused; it is written to a temporary name
and renamed, so a parallel or interrupted build never leaves a half file.

The fixtures the browser tests use (measured with ``manage.py liveness_eval`` on every phase of
the loop, see the README's "Browser tests"):

* ``GENUINE_LOOP``: ``clip_13`` (a phone selfie video) frames 10-40 ping-ponged, a 6 s loop
  without a cut. The person blinks at frames 15-16, 27-28 and 35-36 (eye aspect ratio 0.12-0.14
  against 0.27-0.31 open) and barely turns (turn parallax within 0.02 of the start, the check
  needs 0.08). Chromium starts the loop at whatever phase it is in when the page records, so
  every 3.5 s window was checked: 35-frame windows at 15 phases (every 4th frame) are all
  accepted for ``blink`` and all refused ``challenge_not_done`` for ``turn_left``.
* ``GENUINE_ENROLL``: frames of the same video outside the loop (60, 80, 100, 115): the guardian
  enrolled from them matches the loop (enroll from one part of a clip, probe with another).
* ``OTHER_PERSON_ENROLL``: frames of ``clip_11`` (another person): the same loop is then a
  live capture of the wrong person, refused ``no_match`` at every phase.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.browser.conftest import missing
from tests.helpers import require_faces

FPS = 10


def cache_dir() -> Path:
    root = Path(os.environ.get("KINGUARD_CLIP_CACHE") or Path(tempfile.gettempdir()) / "kinguard-clips")
    repo = Path(__file__).resolve().parents[2]
    if root.resolve().is_relative_to(repo):
        raise ValueError(f"KINGUARD_CLIP_CACHE={root} is inside the repository; live footage must stay out of it")
    root.mkdir(parents=True, exist_ok=True)
    return root


def live_frames(clip: str) -> list[Path]:
    folder = require_faces() / "live" / clip
    frames = sorted(folder.glob("[0-9][0-9][0-9].jpg"))
    if not frames:
        missing(f"live clip {folder} not found (see {require_faces() / 'live' / 'README.md'})")
    return frames


def ping_pong(first: int, last: int) -> list[int]:
    """Frames first…last…first+1: loops without a cut (Chromium loops the file), so every
    window of the capture is continuous motion; a reversed blink is still a blink."""
    forward = list(range(first, last + 1))
    return forward + forward[-2:0:-1]


GENUINE_LOOP = ("clip_13", ping_pong(10, 40))
GENUINE_ENROLL = ("clip_13", (60, 80, 100, 115))
OTHER_PERSON_ENROLL = ("clip_11", (10, 30, 80))
#: What the genuine loop performs, and an action it never performs.
GENUINE_DOES = "blink"
GENUINE_DOES_NOT = "turn_left"


#: clip_13 is a 480x854 portrait video. The page asks for 640x480 and Chromium crop-and-scales
#: a portrait file to that, cutting a band through the face; so the clip is framed 4:3 here:
#: a 480 px square around the face (box rows 260-528 of 854), pillarboxed to 640x480, unscaled.
GENUINE_FRAMING = "crop=480:480:0:160,pad=640:480:80:0"


def genuine_camera() -> str:
    """Absolute path of the genuine fake-camera clip (built on first use), for ``new_page``."""
    return str(live_clip_y4m(*GENUINE_LOOP, framing=GENUINE_FRAMING))


def enrollment_images(clip: str, numbers: Sequence[int]) -> list[bytes]:
    """The JPEG bytes of frames ``numbers`` (1-based) of a live clip, read in place."""
    frames = live_frames(clip)
    return [frames[n - 1].read_bytes() for n in numbers]


def live_clip_y4m(clip: str, sequence: Sequence[int] | None = None, *, width: int = 640, framing: str = "") -> Path:
    """Absolute path of a y4m of ``clip``'s frames in ``sequence`` order (1-based; all by default).

    ``framing`` (ffmpeg filters, e.g. ``crop=...,pad=...``) is applied first; then scaled to
    ``width`` px wide (even height), yuv420p, 10 fps: what ``camera.js`` would get from a 640 px
    webcam.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        missing("ffmpeg is not installed (apt-get install -y ffmpeg)")
    available = live_frames(clip)
    order = list(sequence) if sequence is not None else list(range(1, len(available) + 1))
    if not order or min(order) < 1 or max(order) > len(available):
        raise ValueError(f"{clip} has {len(available)} frames; asked for {order[:3]}…")
    spec = f"{available[0].parent.resolve()}|{','.join(map(str, order))}|{width}|{FPS}|{framing}"
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    target = cache_dir() / f"{clip}-{len(order)}f-{width}-{key}.y4m"
    if target.is_file() and target.stat().st_size > 0:
        return target.resolve()
    partial = target.with_suffix(f".{os.getpid()}.part.y4m")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as staging:
        for index, number in enumerate(order, start=1):  # links, not copies, in time order
            os.symlink(available[number - 1].resolve(), Path(staging) / f"{index:04d}.jpg")
        command = [
            ffmpeg,
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-framerate",
            str(FPS),
            "-i",
            str(Path(staging) / "%04d.jpg"),
            "-vf",
            ",".join([*filter(None, [framing]), f"scale={width}:-2"]),
            "-pix_fmt",
            "yuv420p",
            "-f",
            "yuv4mpegpipe",
            str(partial),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603 - fixed argv
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target.resolve()


def y4m_header(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.readline().decode("ascii").strip()
