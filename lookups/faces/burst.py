"""The burst (liveness-lite) check the current worker runs (no Django imports).

Superseded for the prompted capture by :mod:`lookups.faces.liveness`; kept while the worker
still decides bursts. Also :func:`y4m_frames`, a reader for fake-webcam clips (tests, tools).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookups.faces.detection import FaceSample, _eye_metrics, _landmark_array, detect_single_face
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import MAX_BURST_FRAMES, load_probe_image
from lookups.faces.matching import DEFAULT_THRESHOLD, MODEL_VERSION, Verdict, _as_vector, compare

# ---------------------------------------------------------------------------------------------
# Burst (liveness-lite) check
# ---------------------------------------------------------------------------------------------

#: Mean absolute difference (grey levels, 0-255) of aligned 64x64 face crops below which two
#: frames count as the same picture (re-encoding a still gives ~0.2-0.6).
STILL_PIXEL_EPS = 1.0
#: Landmark movement (mean, in inter-ocular distances, IOD) below which landmarks count as
#: unchanged between two frames.
STILL_LANDMARK_EPS = 0.01
#: Measured on /work/shared/faces/camera (bench/face_calibration_notes.md): a still with
#: sensor-like noise or re-compression gives rigid <= 0.012, non-rigid <= 0.022, EAR range
#: <= 0.053 and yaw range <= 0.011; the zoom/pan clips give rigid 0.28-0.32.
#: Face translation + scale change over the burst, in IODs, that counts as motion.
MIN_MOTION_IOD = 0.04
#: Landmark residual after removing the best similarity transform, in IODs.
MIN_NONRIGID_IOD = 0.05
#: Eye-aspect-ratio range over the burst (an open eye is ~0.3, a blink ~0.1).
MIN_EAR_RANGE = 0.10
#: Range of the yaw proxy (nose offset from the eye midpoint along the eye axis, in IODs).
MIN_YAW_RANGE = 0.05


@dataclass(frozen=True)
class MotionStats:
    """Motion evidence measured over a burst (all distances in inter-ocular distances).

    ``rigid_motion``: largest displacement of the face (landmark centroid shift plus scale
    change) relative to the first frame -- what a hand-held camera, or a photo moved in
    front of it, produces. ``nonrigid_motion``: largest landmark residual after removing the
    best 2-D similarity transform to the first frame -- what expression, blinking or head
    rotation produce and a flat photo cannot. ``ear_range`` / ``yaw_range``: spread of the
    eye aspect ratio and of the yaw proxy. ``min_pixel_diff`` / ``max_pixel_diff``: smallest
    and largest mean absolute difference of aligned grey face crops between consecutive
    frames. ``distinct_frames``: frames not near-identical to their predecessor (+1).
    """

    rigid_motion: float
    nonrigid_motion: float
    ear_range: float
    yaw_range: float
    min_pixel_diff: float
    max_pixel_diff: float
    distinct_frames: int


def _aligned_gray_crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, right, bottom, left = box
    crop = Image.fromarray(image[top:bottom, left:right]).convert("L")
    return np.asarray(crop.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float64)


def _similarity_residual(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares 2-D similarity (Umeyama) mapping ``src`` onto ``dst``.

    Returns (residuals per point, scale, translation length)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = float((s0**2).sum() / len(src))
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / var_s) if var_s > 0 else 1.0
    mapped = scale * (s0 @ rot.T) + mu_d
    return np.linalg.norm(mapped - dst, axis=1), scale, float(np.linalg.norm(mu_d - mu_s))


def burst_motion(images: Sequence[np.ndarray], samples: Sequence[FaceSample]) -> MotionStats:
    """Measure motion evidence between the frames of a burst (see :class:`MotionStats`)."""
    if len(images) != len(samples) or len(samples) < 2:
        raise ValueError("need >= 2 frames with one sample each")
    first_pts = _landmark_array(samples[0])
    metrics = [_eye_metrics(s) for s in samples]
    iod0 = metrics[0][0]
    crops = [_aligned_gray_crop(img, s.box) for img, s in zip(images, samples, strict=True)]

    rigid, nonrigid = 0.0, 0.0
    for s in samples[1:]:
        pts = _landmark_array(s)
        if pts.shape != first_pts.shape:
            raise ProbeRejected("no_face")
        residuals, scale, shift = _similarity_residual(first_pts, pts)
        radius = float(np.linalg.norm(first_pts - first_pts.mean(axis=0), axis=1).mean())
        rigid = max(rigid, (shift + abs(scale - 1.0) * radius) / iod0)
        nonrigid = max(nonrigid, float(residuals.mean()) / iod0)

    diffs: list[float] = []
    distinct = 1
    for i in range(1, len(samples)):
        pixel = float(np.abs(crops[i] - crops[i - 1]).mean())
        moved = float(
            np.linalg.norm(_landmark_array(samples[i]) - _landmark_array(samples[i - 1]), axis=1).mean()
        ) / max(metrics[i - 1][0], 1.0)
        diffs.append(pixel)
        if not (pixel < STILL_PIXEL_EPS and moved < STILL_LANDMARK_EPS):
            distinct += 1
    ears = [m[1] for m in metrics]
    yaws = [m[2] for m in metrics]
    return MotionStats(
        rigid_motion=rigid,
        nonrigid_motion=nonrigid,
        ear_range=max(ears) - min(ears),
        yaw_range=max(yaws) - min(yaws),
        min_pixel_diff=min(diffs),
        max_pixel_diff=max(diffs),
        distinct_frames=distinct,
    )


def check_burst(
    frames: Sequence[bytes],
    template: np.ndarray,
    *,
    threshold: float | None = None,
    min_frames: int = 3,
    require_nonrigid: bool = False,
) -> Verdict:
    """Verify a short capture burst against a template, with a replay/motion check.

    Every frame goes through :func:`load_probe_image` and :func:`detect_single_face` (any
    refusal propagates). All frames must have the same size (``inconsistent_frames``).
    Then, before any match decision:

    * ``replayed_still``: fewer than ``min_frames`` distinct frames, where consecutive frames
      are "the same" when their aligned 64x64 grey face crops differ by < STILL_PIXEL_EPS
      grey levels on average AND their landmarks moved < STILL_LANDMARK_EPS IODs.
    * ``no_motion``: no rigid face motion >= MIN_MOTION_IOD, no non-rigid landmark change
      >= MIN_NONRIGID_IOD, no eye-aspect-ratio range >= MIN_EAR_RANGE and no yaw-proxy range
      >= MIN_YAW_RANGE -- the frames differ only by noise / recompression.
      With ``require_nonrigid=True`` rigid motion alone is not enough.

    What this accepts, honestly: any burst in which the face moves a little in the frame.
    That includes a printed photo or a screen moved in front of the camera and synthetic
    zoom/pan videos of a still (the two ``camera/*.y4m`` clips are exactly that and are
    accepted by default; with ``require_nonrigid=True`` they are refused). It stops naive
    replays (one picture submitted N times, or with added noise). It is not presentation-attack
    detection; the face check is a second factor beside the OTP device.

    Verdict: ``distance`` is the largest frame distance; ``matched`` only if every frame is
    within the threshold; timings are sums over frames.
    """
    if len(frames) < min_frames:
        raise ProbeRejected("too_few_frames")
    if len(frames) > MAX_BURST_FRAMES:
        raise ProbeRejected("too_many_frames")
    images = [load_probe_image(f) for f in frames]
    return check_burst_arrays(
        images,
        template,
        threshold=threshold,
        min_frames=min_frames,
        require_nonrigid=require_nonrigid,
    )


def check_burst_arrays(
    images: Sequence[np.ndarray],
    template: np.ndarray,
    *,
    threshold: float | None = None,
    min_frames: int = 3,
    require_nonrigid: bool = False,
) -> Verdict:
    """:func:`check_burst` for frames already decoded by :func:`load_probe_image` (the web
    process validates uploads, the worker gets the normalised pixels). Same rules."""
    if min_frames < 2:
        raise ValueError("min_frames must be >= 2")
    if len(images) < min_frames:
        raise ProbeRejected("too_few_frames")
    if len(images) > MAX_BURST_FRAMES:
        raise ProbeRejected("too_many_frames")
    tmpl = _as_vector(template, "template")
    t = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if len({img.shape for img in images}) != 1:
        raise ProbeRejected("inconsistent_frames")
    samples = [detect_single_face(img) for img in images]

    stats = burst_motion(images, samples)
    if stats.distinct_frames < min_frames:
        raise ProbeRejected("replayed_still")
    nonrigid_ok = (
        stats.nonrigid_motion >= MIN_NONRIGID_IOD
        or stats.ear_range >= MIN_EAR_RANGE
        or stats.yaw_range >= MIN_YAW_RANGE
    )
    if not nonrigid_ok and (require_nonrigid or stats.rigid_motion < MIN_MOTION_IOD):
        raise ProbeRejected("no_motion")

    verdicts = [compare(tmpl, s, threshold=t) for s in samples]
    worst = max(verdicts, key=lambda v: v.distance)
    return Verdict(
        matched=all(v.matched for v in verdicts),
        distance=worst.distance,
        threshold=t,
        model_version=MODEL_VERSION,
        detect_ms=sum(v.detect_ms for v in verdicts),
        encode_ms=sum(v.encode_ms for v in verdicts),
    )


def y4m_frames(path: str | os.PathLike[str], *, limit: int | None = None) -> list[np.ndarray]:
    """Read a YUV4MPEG2 file (4:2:0 or mono, 8-bit) into RGB ``uint8`` frames.

    BT.601 conversion; limited range unless the header says ``XCOLORRANGE=FULL``.
    Intended for tests and tooling (fake-webcam clips), not for user uploads."""
    with open(path, "rb") as fh:
        header = fh.readline()
        if not header.startswith(b"YUV4MPEG2 "):
            raise ValueError("not a YUV4MPEG2 file")
        params = {tok[:1]: tok[1:] for tok in header.decode("ascii").split()[1:]}
        width, height = int(params["W"]), int(params["H"])
        chroma = params.get("C", "420jpeg")
        full_range = any(tok == "XCOLORRANGE=FULL" for tok in header.decode("ascii").split()[1:])
        if chroma.startswith("420"):
            cw, ch = (width + 1) // 2, (height + 1) // 2
        elif chroma == "mono":
            cw = ch = 0
        else:
            raise ValueError(f"unsupported y4m chroma {chroma!r}")
        frames: list[np.ndarray] = []
        while limit is None or len(frames) < limit:
            line = fh.readline()
            if not line:
                break
            if not line.startswith(b"FRAME"):
                raise ValueError("corrupt y4m frame header")
            y: np.ndarray = np.frombuffer(fh.read(width * height), np.uint8)
            if y.size != width * height:
                raise ValueError("truncated y4m frame")
            y = y.reshape(height, width).astype(np.float64)
            if cw:
                u = np.frombuffer(fh.read(cw * ch), np.uint8).reshape(ch, cw).astype(np.float64)
                v = np.frombuffer(fh.read(cw * ch), np.uint8).reshape(ch, cw).astype(np.float64)
                u = u.repeat(2, 0).repeat(2, 1)[:height, :width] - 128.0
                v = v.repeat(2, 0).repeat(2, 1)[:height, :width] - 128.0
            else:
                u = v = np.zeros_like(y)
            if full_range:
                yy, cu, cv = y, u, v
            else:
                yy, cu, cv = (y - 16.0) * (255.0 / 219.0), u * (255.0 / 224.0), v * (255.0 / 224.0)
            r = yy + 1.402 * cv
            g = yy - 0.344136 * cu - 0.714136 * cv
            b = yy + 1.772 * cu
            rgb = np.clip(np.stack([r, g, b], axis=-1).round(), 0, 255).astype(np.uint8)
            frames.append(rgb)
    return frames
