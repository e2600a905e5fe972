#!/usr/bin/env python3
"""Convert a video file into a rosbag2 bag of sensor_msgs/Image and CameraInfo (no ROS runtime needed).

Frames are stamped (header and bag time) at the video's frame rate, or --fps, from --start-time.
The CameraInfo is an approximation, not a calibration: an ideal pinhole camera with the given
horizontal field of view, square pixels, the principal point at the image centre and zero
(plumb_bob) distortion. Good enough for replaying a scene through perception; calibrate the real
camera for anything metric.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from tqdm import tqdm

from humanoid_common.bags import BagError, add_topic, open_writer, typestore
from humanoid_common.images import pinhole_matrix

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
# What a typical camera driver offers; reliable matches both reliable and best-effort subscribers.
OFFERED_QOS = Qos(
    history=QosHistory.KEEP_LAST,
    depth=10,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.VOLATILE,
    deadline=QosTime(0, 0),
    lifespan=QosTime(0, 0),
    liveliness=QosLiveliness.AUTOMATIC,
    liveliness_lease_duration=QosTime(0, 0),
    avoid_ros_namespace_conventions=False,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path, help="video file readable by OpenCV")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="bag folder to create (must not exist)"
    )
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="storage format")
    parser.add_argument("--fps", type=float, help="frame rate of the stamps (default: the video's)")
    parser.add_argument("--max-frames", type=int, help="convert at most this many frames")
    parser.add_argument("--width", type=int, help="resize to this width, keeping the aspect ratio")
    parser.add_argument("--encoding", choices=("bgr8", "rgb8"), default="bgr8", help="Image encoding")
    parser.add_argument("--frame-id", default="camera", help="header frame_id (default camera)")
    parser.add_argument("--topic", default="/camera/image_raw", help="image topic")
    parser.add_argument("--info-topic", default="/camera/camera_info", help="CameraInfo topic")
    parser.add_argument("--hfov-deg", type=float, default=60.0, help="horizontal field of view (default 60)")
    parser.add_argument(
        "--start-time", type=float, help="stamp of the first frame, seconds since the epoch (default now)"
    )
    args = parser.parse_args(argv)
    if args.fps is not None and args.fps <= 0:
        parser.error("--fps must be positive")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be at least 1")
    if args.width is not None and args.width < 2:
        parser.error("--width must be at least 2")
    if not 0 < args.hfov_deg < 180:
        parser.error("--hfov-deg must be between 0 and 180")
    return args


def pinhole_intrinsics(width: int, height: int, hfov_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """K (3x3) and P (3x4), row-major and flattened, of an ideal camera with this horizontal FOV."""
    k = pinhole_matrix(width, height, hfov_deg)
    return k.reshape(-1), np.hstack([k, np.zeros((3, 1))]).reshape(-1)


class MessageFactory:
    """Builds typestore messages (rosbags classes) for one camera."""

    def __init__(self, store: Any, frame_id: str, encoding: str, hfov_deg: float) -> None:
        self.store = store
        self.frame_id = frame_id
        self.encoding = encoding
        self.hfov_deg = hfov_deg

    def header(self, stamp_ns: int) -> Any:
        types = self.store.types
        stamp = types["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        )
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=self.frame_id)

    def image(self, frame: np.ndarray, stamp_ns: int) -> Any:
        if self.encoding == "rgb8":
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        height, width = frame.shape[:2]
        return self.store.types[IMAGE](
            header=self.header(stamp_ns),
            height=height,
            width=width,
            encoding=self.encoding,
            is_bigendian=0,
            step=width * 3,
            data=np.ascontiguousarray(frame).reshape(-1),
        )

    def camera_info(self, width: int, height: int, stamp_ns: int) -> Any:
        k, p = pinhole_intrinsics(width, height, self.hfov_deg)
        roi = self.store.types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        return self.store.types[CAMERA_INFO](
            header=self.header(stamp_ns),
            height=height,
            width=width,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=k,
            r=np.eye(3).reshape(-1),
            p=p,
            binning_x=0,
            binning_y=0,
            roi=roi,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    capture = cv2.VideoCapture(str(args.video))
    if not capture.isOpened():
        print(f"video_to_bag: OpenCV cannot open {args.video}", file=sys.stderr)
        return 2
    fps = args.fps or capture.get(cv2.CAP_PROP_FPS)
    if not fps or fps <= 0 or math.isnan(fps):
        print(f"video_to_bag: {args.video} does not say its frame rate; give --fps", file=sys.stderr)
        return 2
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if args.max_frames:
        frames = min(frames or args.max_frames, args.max_frames)
    start_ns = round((args.start_time if args.start_time is not None else time.time()) * 1e9)

    store = typestore()
    factory = MessageFactory(store, args.frame_id, args.encoding, args.hfov_deg)
    try:
        writer = open_writer(args.output, args.storage)
    except BagError as error:
        print(f"video_to_bag: {error}", file=sys.stderr)
        return 2
    written = 0
    size = (0, 0)
    writer.open()
    try:  # closed in any case (Ctrl-C too): the bag then holds the frames converted so far
        writer.set_custom_data("humanoid_stack.source_video", args.video.name)
        image_conn = add_topic(writer, args.topic, IMAGE, store, [OFFERED_QOS])
        info_conn = add_topic(writer, args.info_topic, CAMERA_INFO, store, [OFFERED_QOS])
        with tqdm(total=frames, unit="frame", desc="video_to_bag", file=sys.stderr) as bar:
            while frames is None or written < frames:
                ok, frame = capture.read()
                if not ok:
                    break
                if args.width and args.width != frame.shape[1]:
                    height = max(1, round(frame.shape[0] * args.width / frame.shape[1]))
                    frame = cv2.resize(frame, (args.width, height), interpolation=cv2.INTER_AREA)
                stamp = start_ns + round(written * 1e9 / fps)
                size = (frame.shape[1], frame.shape[0])
                image = store.serialize_cdr(factory.image(frame, stamp), IMAGE)
                info = store.serialize_cdr(factory.camera_info(*size, stamp), CAMERA_INFO)
                writer.write(image_conn, stamp, image)
                writer.write(info_conn, stamp, info)
                written += 1
                bar.update()
    finally:
        writer.close()
    capture.release()
    if written == 0:
        shutil.rmtree(args.output)  # an empty bag would only mislead
        print(f"video_to_bag: no frame could be read from {args.video}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {written} frames {size[0]}x{size[1]} {args.encoding} at {fps:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
