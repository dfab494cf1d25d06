"""What a face detector returns: one face with its eye centres, the backend that found it and, for the
landmark backend, its landmarks. Both backends (detect.py's Haar, landmarks.py's face mesh) build it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detection:
    """One face in frame pixels. face: (x, y, w, h) box edges; left_eye/right_eye: (x, y) centres,
    left = smaller x in the image. eyes_found: how many of the two eye centres the eye cascade found in
    this frame (the others were estimated from the face). tracked: found by the search near the last
    face rather than a full-frame search. backend: "haar" or "landmarks" (which detector produced
    it); landmarks: the landmark backend's landmarks.FaceLandmarks (mesh, iris, lids, head pose), None
    for Haar. With landmarks, left_eye/right_eye are the midpoints of each eye's two corners (they do
    not move with gaze, so the strip keeps the iris's motion); the iris centres are in landmarks.iris."""

    face: tuple[int, int, int, int]
    left_eye: tuple[float, float]
    right_eye: tuple[float, float]
    eyes_found: int = 2
    tracked: bool = False
    backend: str = "haar"
    landmarks: object | None = field(default=None, compare=False, repr=False)

    @property
    def eye_distance(self) -> float:
        return math.hypot(self.right_eye[0] - self.left_eye[0], self.right_eye[1] - self.left_eye[1])
