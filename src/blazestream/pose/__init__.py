"""The pose core: BlazePose pre- and post-processing as array code (NumPy, CuPy, any array-API library).

No GStreamer, pyds or TensorRT here. Stage names follow MediaPipe's graphs: anchors, detection, roi,
crop, landmarks, smoothing, tracking.
"""

from blazestream.pose.skeleton import POSE_CONNECTIONS, PoseLandmark
from blazestream.pose.types import Landmark, Pose, Roi, WorldLandmark

__all__ = ["POSE_CONNECTIONS", "Landmark", "Pose", "PoseLandmark", "Roi", "WorldLandmark"]
