"""Batched planar geometry on landmarks (homographies, residuals) for the liveness checks.
numpy only; no Django imports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homographies (normalised DLT), one per frame: ``src`` and ``dst`` are
    (n, N, 2) (or (N, 2), broadcast); returns (n, 3, 3) mapping src[k] onto dst[k]."""
    src, dst = np.broadcast_arrays(src if src.ndim == 3 else src[None], dst if dst.ndim == 3 else dst[None])

    def norm(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = p.mean(axis=1)
        spread = np.mean(np.linalg.norm(p - mu[:, None], axis=2), axis=1)
        sc = np.sqrt(2.0) / np.where(spread > 0, spread, 1.0)
        t = np.zeros((len(p), 3, 3))
        t[:, 0, 0] = t[:, 1, 1] = sc
        t[:, 0, 2], t[:, 1, 2], t[:, 2, 2] = -sc * mu[:, 0], -sc * mu[:, 1], 1.0
        return (p - mu[:, None]) * sc[:, None, None], t

    ps, ts = norm(src)
    pd, td = norm(dst)
    x, y, u, v = ps[..., 0], ps[..., 1], pd[..., 0], pd[..., 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    n, m = x.shape
    a = np.empty((n, 2 * m, 9))
    a[:, 0::2] = np.stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u], axis=2)
    a[:, 1::2] = np.stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v], axis=2)
    # the null vector of A: the eigenvector of the 9 x 9 A^T A with the smallest eigenvalue
    _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", a, a))
    h = vecs[:, :, 0].reshape(n, 3, 3)
    return np.linalg.inv(td) @ h @ ts


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography (normalised DLT) mapping ``src`` (N x 2) onto ``dst``."""
    return _homographies(src, dst)[0]


def _apply_all(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply (n, 3, 3) homographies to (n, k, 2) points."""
    p = np.einsum("nij,nkj->nki", h, np.concatenate([pts, np.ones(pts.shape[:2] + (1,))], axis=2))
    w = p[..., 2:]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return p[..., :2] / w


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return _apply_all(h[None], pts[None])[0]


def _planar_errors(src: np.ndarray, dst: np.ndarray, iod: float) -> np.ndarray:
    """Per-point error (in inter-ocular distances) of the best homography mapping src onto dst."""
    return _planar_errors_all(src[None], dst[None], np.array([iod]))[0]


def _planar_errors_all(src: np.ndarray, dst: np.ndarray, iod: np.ndarray) -> np.ndarray:
    """(n, N) per-point errors (in IOD) of the best homography src[k] -> dst[k]."""
    src, dst = np.broadcast_arrays(src, dst)
    mapped = _apply_all(_homographies(src, dst), src)
    return np.linalg.norm(mapped - dst, axis=2) / np.maximum(iod, 1.0)[:, None]


def planar_residual(src: np.ndarray, dst: np.ndarray, iod: float) -> float:
    """RMS error (in inter-ocular distances) of the best homography mapping src onto dst."""
    return float(np.sqrt(np.mean(_planar_errors(src, dst, iod) ** 2)))


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Grey level (channel mean) of ``img`` (H x W or H x W x C, any dtype) at float points."""
    h, w = img.shape[:2]
    x, y = np.clip(x, 0, w - 1.001), np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0

    def at(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        v = img[yi, xi].astype(np.float64)
        return v.mean(axis=1) if v.ndim == 2 else v

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


#: Samples per face-box side in :func:`photometric_steps` (about 48 x 48 points per frame pair).
PHOTOMETRIC_GRID = 48


def photometric_steps(
    gray: Sequence[np.ndarray], boxes: Sequence[tuple[int, int, int, int]], lms: np.ndarray
) -> np.ndarray:
    """Per consecutive frame pair: 1 - normalised correlation of the face box of frame i-1 with
    frame i sampled where the homography of all landmarks (i-1 -> i) puts it (a 48 x 48 grid).
    A moving face (or a moved photo) changes little between frames at 10 fps; a cut to another
    photo changes the pixels completely while its landmarks still follow a homography."""
    out = np.zeros(max(len(gray) - 1, 0))
    for i in range(1, len(gray)):
        h = _homography(lms[i - 1], lms[i])
        t, r, b, left = boxes[i - 1]
        g0 = gray[i - 1]
        step = max(1, (r - left) // PHOTOMETRIC_GRID)
        yy, xx = np.mgrid[max(t, 0) : min(b, g0.shape[0]) : step, max(left, 0) : min(r, g0.shape[1]) : step]
        if xx.size < 16:
            continue
        p = np.c_[xx.ravel(), yy.ravel(), np.ones(xx.size)] @ h.T
        z = np.where(np.abs(p[:, 2]) > 1e-9, p[:, 2], 1e-9)
        a = _bilinear(g0, xx.ravel().astype(np.float64), yy.ravel().astype(np.float64))
        c = _bilinear(gray[i], p[:, 0] / z, p[:, 1] / z)
        a, c = (a - a.mean()) / (a.std() + 1e-6), (c - c.mean()) / (c.std() + 1e-6)
        out[i - 1] = 1.0 - float(np.mean(a * c))
    return out
