"""Landmark proposals from a pose model that runs offline.

MediaPipe 0.10.21's legacy Pose ships its full landmark model inside the wheel; model_complexity=1
is that model (0 and 2 would download theirs at first use, so they are never asked for). The
package is optional (requirements-pose.txt): without it, proposals are unavailable and the
therapist places the points by hand.
"""

from __future__ import annotations

import importlib.util
import threading

_BUNDLED_MODEL_COMPLEXITY = 1
_lock = threading.Lock()  # one graph at a time: MediaPipe's solution objects are not thread-safe


def available() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def detect(image: bytes) -> dict[int, tuple[float, float, float]] | None:
    """Pose landmark number -> (x, y, visibility), x and y as fractions of the image; None when
    no person is found."""
    import cv2
    import mediapipe
    import numpy

    frame = cv2.imdecode(numpy.frombuffer(image, numpy.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        return None
    with _lock, mediapipe.solutions.pose.Pose(static_image_mode=True,
                                              model_complexity=_BUNDLED_MODEL_COMPLEXITY) as pose:
        found = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).pose_landmarks
    if found is None:
        return None
    return {index: (mark.x, mark.y, mark.visibility) for index, mark in enumerate(found.landmark)}
