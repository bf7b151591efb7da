"""The streaming graph: sources, cross-camera batching, inference, tracking and outputs."""
