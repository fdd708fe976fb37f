"""A constant-velocity Kalman filter on boxes, vectorised over all tracks at once.

State per track: ``cx cy a h vcx vcy va vh`` (centre in pixels, aspect ratio w/h, height in
pixels, and their velocities per frame), the parametrisation ByteTrack and DeepSORT use. Noise
scales with the box height, so a large near box and a small far one are equally trusted.
"""

from typing import Tuple

import numpy as np

STATE_DIM = 8
_POSITION_STD = 1.0 / 20  # process and measurement noise of positions, relative to box height
_VELOCITY_STD = 1.0 / 160  # process noise of velocities, relative to box height
_MIN_HEIGHT_PX = 1e-3

_TRANSITION = np.eye(STATE_DIM)
_TRANSITION[:4, 4:] = np.eye(4)  # x' = x + v (one frame)


def xyxy_to_xyah(boxes_xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) x1 y1 x2 y2 -> (N, 4) centre x, centre y, aspect w/h, height h."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    wh = np.maximum(boxes[:, 2:] - boxes[:, :2], _MIN_HEIGHT_PX)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.column_stack([centre, wh[:, 0] / wh[:, 1], wh[:, 1]])


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, 4+) centre x, centre y, aspect, height (extra columns ignored) -> (N, 4) x1 y1 x2 y2."""
    xyah = np.asarray(xyah, np.float64)
    xyah = xyah.reshape(len(xyah), -1) if xyah.size else np.zeros((0, 4))
    height = xyah[:, 3]
    width = xyah[:, 2] * height
    half = np.column_stack([width, height]) / 2
    return np.hstack([xyah[:, :2] - half, xyah[:, :2] + half])


def _diag(std: np.ndarray) -> np.ndarray:
    """(N, D) standard deviations -> (N, D, D) diagonal covariances."""
    out = np.zeros(std.shape + (std.shape[1],))
    index = np.arange(std.shape[1])
    out[:, index, index] = std**2
    return out


def _height_scaled(height: np.ndarray, factors: Tuple[float, ...], fixed: Tuple[float, ...]) -> np.ndarray:
    """Standard deviations per track: ``factor * height`` where fixed is 0, else the fixed value."""
    factors_a, fixed_a = np.asarray(factors), np.asarray(fixed)
    return np.where(fixed_a > 0, fixed_a, factors_a * height[:, None])


def initiate(measurements_xyah: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) xyah measurements: (mean (N, 8), covariance (N, 8, 8)), velocity 0."""
    z = np.asarray(measurements_xyah, np.float64).reshape(-1, 4)
    mean = np.hstack([z, np.zeros_like(z)])
    p, v = 2 * _POSITION_STD, 10 * _VELOCITY_STD
    std = _height_scaled(z[:, 3], (p, p, 0, p, v, v, 0, v), (0, 0, 1e-2, 0, 0, 0, 1e-5, 0))
    return mean, _diag(std)


def predict(mean: np.ndarray, covariance: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One frame ahead for (N, 8) means and (N, 8, 8) covariances; returns new arrays."""
    if len(mean) == 0:
        return mean.copy(), covariance.copy()
    p, v = _POSITION_STD, _VELOCITY_STD
    std = _height_scaled(mean[:, 3], (p, p, 0, p, v, v, 0, v), (0, 0, 1e-2, 0, 0, 0, 1e-5, 0))
    mean = mean @ _TRANSITION.T
    covariance = _TRANSITION @ covariance @ _TRANSITION.T + _diag(std)
    return mean, covariance


def update(mean: np.ndarray, covariance: np.ndarray, measurements_xyah: np.ndarray
           ) -> Tuple[np.ndarray, np.ndarray]:
    """Correct (N, 8) means and (N, 8, 8) covariances with (N, 4) xyah measurements, row by row."""
    if len(mean) == 0:
        return mean.copy(), covariance.copy()
    p = _POSITION_STD
    measurement_std = _height_scaled(mean[:, 3], (p, p, 0, p), (0, 0, 1e-1, 0))
    innovation_cov = covariance[:, :4, :4] + _diag(measurement_std)  # H P H^T + R, H = [I 0]
    cross = covariance[:, :, :4]  # P H^T, (N, 8, 4)
    # K = P H^T S^-1; S is symmetric, so K^T = solve(S, H P).
    gain = np.linalg.solve(innovation_cov, np.transpose(cross, (0, 2, 1))).transpose(0, 2, 1)
    innovation = np.asarray(measurements_xyah, np.float64).reshape(-1, 4) - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    covariance = covariance - gain @ innovation_cov @ np.transpose(gain, (0, 2, 1))
    return mean, covariance
