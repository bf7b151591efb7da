"""blazestream: multi-camera BlazePose on GStreamer, ONNX Runtime on the CPU and TensorRT on NVIDIA GPUs."""

from blazestream.pose.skeleton import POSE_CONNECTIONS, PoseLandmark
from blazestream.pose.types import Landmark, Pose, Roi, WorldLandmark

__version__ = "0.1.0"
MEDIAPIPE_VERSION = "0.10.21"
"""The MediaPipe release whose models we run and whose Pose is the numerical reference."""

__all__ = ["POSE_CONNECTIONS", "Landmark", "Pose", "PoseLandmark", "Roi", "WorldLandmark", "__version__"]
