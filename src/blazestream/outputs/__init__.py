"""Where results go: JSON Lines, annotated video (file and RTSP), MQTT, Prometheus metrics."""
