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
    # (a batched matmul: BLAS, ~15x faster here than the same product through einsum)
    _, vecs = np.linalg.eigh(a.transpose(0, 2, 1) @ a)
    h = vecs[:, :, 0].reshape(n, 3, 3)
    return np.linalg.inv(td) @ h @ ts


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography (normalised DLT) mapping ``src`` (N x 2) onto ``dst``."""
    return _homographies(src, dst)[0]


def _apply_all(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply (n, 3, 3) homographies to (n, k, 2) points."""
    p = np.concatenate([pts, np.ones(pts.shape[:2] + (1,))], axis=2) @ h.transpose(0, 2, 1)
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


def _gather(img: np.ndarray, xi: np.ndarray, yi: np.ndarray) -> np.ndarray:
    """Grey level of ``img`` (H x W, or H x W x C: its green channel, the bulk of luma) at whole
    pixels (indices already clipped to the image)."""
    return img[yi, xi] if img.ndim == 2 else img[yi, xi, 1 if img.shape[2] >= 3 else 0]


#: Samples per face-box side in :func:`photometric_steps` (24 x 24 = 576 points per frame pair,
#: nearest pixel of the green channel, all pairs at once): about 1.5 ms per 35-frame capture
#: here. It replaced a bilinear channel-mean 48 x 48 grid (about 90 ms per capture) with the
#: same cut decisions on the tuning live windows (clips 00/03/06/10) and standard attacks of
#: bench/liveness_attacks.py; of 94 ``--extra`` slideshows 3 more are cut (2-photo ones).
PHOTOMETRIC_GRID = 24


def photometric_steps(
    frames: Sequence[np.ndarray],
    boxes: Sequence[tuple[int, int, int, int]],
    lms: np.ndarray,
    pair_h: np.ndarray | None = None,
) -> np.ndarray:
    """Per consecutive frame pair: 1 - normalised correlation of the face box of frame i-1 with
    frame i sampled where the homography of all landmarks (i-1 -> i; ``pair_h`` when the caller
    has them) puts it, on a PHOTOMETRIC_GRID square grid of whole pixels: no image is converted
    or resampled. A moving face (or a moved photo) changes little between frames at 10 fps; a
    cut to another photo changes the pixels completely while its landmarks still follow a
    homography. Pairs whose box is under 4 px a side score 0."""
    n = len(frames)
    if n < 2:
        return np.zeros(0)
    hs = _homographies(lms[:-1], lms[1:]) if pair_h is None else pair_h
    h_img, w_img = frames[0].shape[:2]
    b = np.asarray(boxes[:-1], dtype=np.float64)
    x0, x1 = np.maximum(b[:, 3], 0), np.minimum(b[:, 1], w_img) - 1
    y0, y1 = np.maximum(b[:, 0], 0), np.minimum(b[:, 2], h_img) - 1
    ok = (x1 - x0 >= 4) & (y1 - y0 >= 4)
    t = np.linspace(0.0, 1.0, PHOTOMETRIC_GRID)
    gx = np.rint(x0[:, None] + (x1 - x0)[:, None] * t)  # (n-1, G)
    gy = np.rint(y0[:, None] + (y1 - y0)[:, None] * t)
    xs = np.broadcast_to(gx[:, None, :], (n - 1, PHOTOMETRIC_GRID, PHOTOMETRIC_GRID)).reshape(n - 1, -1)
    ys = np.broadcast_to(gy[:, :, None], (n - 1, PHOTOMETRIC_GRID, PHOTOMETRIC_GRID)).reshape(n - 1, -1)
    px = hs[:, 0, 0, None] * xs + hs[:, 0, 1, None] * ys + hs[:, 0, 2, None]
    py = hs[:, 1, 0, None] * xs + hs[:, 1, 1, None] * ys + hs[:, 1, 2, None]
    pz = hs[:, 2, 0, None] * xs + hs[:, 2, 1, None] * ys + hs[:, 2, 2, None]
    pz = np.where(np.abs(pz) > 1e-9, pz, 1e-9)
    xi0, yi0 = np.clip(xs, 0, w_img - 1).astype(np.intp), np.clip(ys, 0, h_img - 1).astype(np.intp)
    xi1 = np.clip(np.rint(px / pz), 0, w_img - 1).astype(np.intp)
    yi1 = np.clip(np.rint(py / pz), 0, h_img - 1).astype(np.intp)
    a = np.empty(xs.shape)
    c = np.empty(xs.shape)
    for i in range(n - 1):
        a[i] = _gather(frames[i], xi0[i], yi0[i])
        c[i] = _gather(frames[i + 1], xi1[i], yi1[i])
    a -= a.mean(axis=1, keepdims=True)
    c -= c.mean(axis=1, keepdims=True)
    ncc = np.einsum("ij,ij->i", a, c) / (np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", c, c)) + 1e-9)
    return np.where(ok, 1.0 - ncc, 0.0)


#: Cells per face-box side of the grey template in :class:`PixelPlane` (block means of the
#: green channel: 32 x 32 = 1024 samples, smooth enough for Gauss-Newton to converge from the
#: landmark homography, which is off by 1-3 px on a photo).
PLANE_CELLS = 32
#: Gauss-Newton steps refining the landmark homography on the pixels (tuning captures: the
#: residual settles after 3-4; each step is ~0.3 ms).
PLANE_ITERS = 5


def _block_grey(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, k: int) -> tuple[np.ndarray, float, float]:
    """Block means (k x k pixels) of the green channel of ``img[y0:y1, x0:x1]`` (clipped to the
    image) as float32, and the full-resolution position of cell (0, 0)'s centre. Only this
    region is converted, never the whole frame."""
    h, w = img.shape[:2]
    xa, ya = min(max(0, int(x0)), w - 1), min(max(0, int(y0)), h - 1)
    xb, yb = min(w, max(int(x1), xa + k)), min(h, max(int(y1), ya + k))
    nx, ny = max((xb - xa) // k, 1), max((yb - ya) // k, 1)
    crop = img[ya : ya + ny * k, xa : xa + nx * k]
    crop = crop if crop.ndim == 2 else crop[..., 1 if crop.shape[2] >= 3 else 0]
    ny, nx = crop.shape[0] // k, crop.shape[1] // k
    crop = crop[: ny * k, : nx * k]
    g = crop.reshape(ny, k, nx, k).sum(axis=(1, 3), dtype=np.float32) / float(k * k)
    return g, xa + (k - 1) / 2.0, ya + (k - 1) / 2.0


def _bilinear_grid(g: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of a small 2-D array at float (column u, row v) positions (clamped)."""
    h, w = g.shape
    u = np.clip(u, 0.0, max(w - 1.001, 0.0))
    v = np.clip(v, 0.0, max(h - 1.001, 0.0))
    u0, v0 = u.astype(np.intp), v.astype(np.intp)
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    fu, fv = u - u0, v - v0
    top = g[v0, u0] * (1 - fu) + g[v0, u1] * fu
    return top * (1 - fv) + (g[v1, u0] * (1 - fu) + g[v1, u1] * fu) * fv


class PixelPlane:
    """The face box of one frame as a grey template (PLANE_CELLS block means a side), to test
    whether the pixels of another frame are that same plane seen through one homography.

    :meth:`residual` refines a starting homography (the landmarks') on the pixels by
    inverse-compositional Gauss-Newton over its 8 parameters (the template's Jacobian and
    Hessian are computed once), with the gain and offset of the frame's grey levels fitted at
    each step (light and exposure change), then returns 1 - normalised correlation of the
    template with the warped frame. A flat photo moved, rotated or swung in front of the camera
    is one plane: its pixels align up to noise, at any pose. A real head turning, blinking or
    talking is not: the nose moves against the cheeks, a face side disappears, the eyes or lips
    change, and no homography aligns that."""

    def __init__(self, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
        t, r, b, left = box
        self.box = box
        self.width = float(max(r - left, 8))
        self.k = max(1, int(round(self.width / PLANE_CELLS)))
        g, ox, oy = _block_grey(img, left, t, r, b, self.k)
        ys, xs = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
        self.cx, self.cy = (left + r) / 2.0, (t + b) / 2.0
        x = (ox + self.k * xs.ravel() - self.cx) / self.width  # template points, normalised
        y = (oy + self.k * ys.ravel() - self.cy) / self.width
        self.x, self.y = x, y
        self.t = g.ravel().astype(np.float64)
        self.tc = self.t - self.t.mean()
        if g.shape[0] >= 2 and g.shape[1] >= 2:
            gy, gx = np.gradient(g.astype(np.float64))
        else:
            gy = gx = np.zeros_like(g, dtype=np.float64)
        tx, ty = gx.ravel() * (self.width / self.k), gy.ravel() * (self.width / self.k)
        # d(template at W(x; p)) / dp at p = 0, W the homography [[1+p0, p1, p2], [p3, 1+p4, p5], [p6, p7, 1]]
        self.jac = np.stack([tx * x, tx * y, tx, ty * x, ty * y, ty, -(tx * x + ty * y) * x, -(tx * x + ty * y) * y], 1)
        self.hess_inv = np.linalg.pinv(self.jac.T @ self.jac)

    def region(self, box: tuple[float, float, float, float]) -> np.ndarray:
        """Mask of the template cells inside ``box`` (x0, y0, x1, y1 in full-resolution pixels)."""
        x = self.x * self.width + self.cx
        y = self.y * self.width + self.cy
        return (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])

    def residual(self, img: np.ndarray, h: np.ndarray, iters: int = PLANE_ITERS) -> float:
        """1 - normalised correlation of the template with ``img`` after the best homography
        found from ``h`` (template frame -> ``img``, full-resolution pixels)."""
        return self.residuals(img, h, iters)[0]

    def residuals(
        self, img: np.ndarray, h: np.ndarray, iters: int = PLANE_ITERS, mask: np.ndarray | None = None
    ) -> tuple[float, float]:
        """(:meth:`residual`, the same 1 - correlation over the template cells of ``mask`` only,
        at the homography that aligns the whole face box best)."""
        s, cx, cy, k = self.width, self.cx, self.cy, self.k
        n = np.array([[1 / s, 0, -cx / s], [0, 1 / s, -cy / s], [0, 0, 1.0]])
        n_inv = np.array([[s, 0, cx], [0, s, cy], [0, 0, 1.0]])
        hn = n @ h @ n_inv
        if abs(hn[2, 2]) < 1e-12:
            return 1.0, 1.0
        hn = hn / hn[2, 2]
        t, r, b, left = self.box
        box_n = (np.array([[left, r, r, left], [t, t, b, b]], float) - [[cx], [cy]]) / s
        corners = hn @ np.vstack([box_n, np.ones(4)])
        cu, cv = corners[0] / corners[2] * s + cx, corners[1] / corners[2] * s + cy
        m = 0.15 * s
        g, ox, oy = _block_grey(img, cu.min() - m, cv.min() - m, cu.max() + m, cv.max() + m, k)
        if g.shape[0] < 3 or g.shape[1] < 3:
            return 1.0, 1.0
        x, y, tc = self.x, self.y, self.tc
        pts = np.stack([x, y, np.ones_like(x)])
        tn = float(np.sqrt(tc @ tc)) + 1e-9
        best, best_w = 2.0, tc
        for step in range(iters + 1):
            p = hn @ pts
            d = np.where(np.abs(p[2]) > 1e-9, p[2], 1e-9)
            warped = _bilinear_grid(g, (p[0] / d * s + cx - ox) / k, (p[1] / d * s + cy - oy) / k)
            wc = warped - warped.mean()
            # the best homography seen (a large non-planar change can push the steps uphill)
            score = 1.0 - float(wc @ tc) / (tn * (float(np.sqrt(wc @ wc)) + 1e-9))
            if score < best:
                best, best_w = score, warped
            if step == iters:
                break
            # the frame's grey levels brought to the template's (least-squares gain and offset)
            err = wc * (float(wc @ tc) / (float(wc @ wc) + 1e-9)) - tc
            dp = self.hess_inv @ (self.jac.T @ err)
            dh = np.eye(3) + np.r_[dp, 0.0].reshape(3, 3)
            try:
                hn = hn @ np.linalg.inv(dh)
            except np.linalg.LinAlgError:
                break
            hn = hn / hn[2, 2]
        if mask is None or int(mask.sum()) < 4:
            return best, best
        a, c = self.t[mask] - self.t[mask].mean(), best_w[mask] - best_w[mask].mean()
        return best, 1.0 - float(a @ c / (np.sqrt((a @ a) * (c @ c)) + 1e-9))
