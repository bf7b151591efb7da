"""Building TensorRT engines (`blazestream build-engines`): plan, calibration, progress, engine cache."""
