"""Source branches as GStreamer descriptions: one builder for every kind, ending in a 4:2:0 appsink.

The appsink takes the decoder's own I420 or NV12 (videoconvert passes them through untouched): frames
are converted to RGB later, like FFmpeg does for a cv2 user, and only where needed (blazestream.yuv).

Files decode as fast as the pipeline consumes them and drop nothing (appsink blocks when its queue is
full). Live sources keep only the newest frames (the puller drops stale ones and counts them).
rtspsrc defaults are wrong for analytics (2 s latency, 20 s TCP timeout, UDP first), so they are set.
"""

from __future__ import annotations

from blazestream.config import SourceConfig
from blazestream.source_spec import SourceSpec

SINK_NAME = "sink"

_YUV = "videoconvert n-threads=1 ! video/x-raw,format={I420,NV12}"


def _appsink(spec: SourceSpec, cfg: SourceConfig) -> str:
    if spec.live:
        return f"appsink name={SINK_NAME} sync=false max-buffers=2 drop=true emit-signals=false"
    return f"appsink name={SINK_NAME} sync=false max-buffers={cfg.file_queue} drop=false emit-signals=false"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def source_description(spec: SourceSpec, cfg: SourceConfig) -> str:
    """The gst-launch description of one camera's pipeline, from source to appsink."""
    if spec.kind == "file":
        head = f"uridecodebin uri={_quote(spec.uri)} name=decode"
    elif spec.kind == "rtsp":
        protocols = {"tcp": "tcp", "udp": "udp", "tcp+udp": "tcp+udp"}[cfg.rtsp_protocols]
        head = (
            f"rtspsrc location={_quote(spec.location)} name=rtsp protocols={protocols} "
            f"latency={cfg.rtsp_latency_ms} drop-on-latency=true do-rtsp-keep-alive=true "
            f"tcp-timeout={int(cfg.rtsp_tcp_timeout_s * 1_000_000)} "
            f"timeout={int(cfg.rtsp_tcp_timeout_s * 1_000_000)} "
            "! application/x-rtp,media=video ! decodebin name=decode"
        )
    elif spec.kind == "v4l2":
        head = f"v4l2src device={_quote(spec.location)} ! decodebin name=decode"
    else:
        options = dict(spec.options)
        caps = "video/x-raw"
        if "width" in options and "height" in options:
            caps += f",width={int(options['width'])},height={int(options['height'])}"
        caps += f",framerate={int(options.get('fps', 30))}/1"
        pattern = options.get("pattern", "ball")
        head = f"videotestsrc is-live=true pattern={pattern} ! {caps}"
    return f"{head} ! queue max-size-buffers=2 ! {_YUV} ! {_appsink(spec, cfg)}"
