"""GStreamer elements written in Python, for people who build their own pipelines around the pose core."""
