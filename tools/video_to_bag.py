#!/usr/bin/env python3
"""Convert a video file into a rosbag2 bag of sensor_msgs/Image and CameraInfo (no ROS runtime needed).

Frames are stamped (header and bag time) at the video's frame rate, or --fps, from --start-time.
The CameraInfo is an approximation, not a calibration: an ideal pinhole camera with the given
horizontal field of view, square pixels, the principal point at the image centre and zero
(plumb_bob) distortion. Good enough for replaying a scene through perception; calibrate the real
camera for anything metric.

The writing part takes any iterable of frames (`write_frames`, `CameraWriter`), so other sources
(a rendered scene, a simulation) make camera bags the same way: tools/setup/build_bags.py.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Writer
from tqdm import tqdm

from humanoid_common.bags import BagError, add_topic, open_writer, typestore
from humanoid_common.images import pinhole_matrix

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
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
    parser.add_argument("--topic", default=IMAGE_TOPIC, help="image topic")
    parser.add_argument("--info-topic", default=INFO_TOPIC, help="CameraInfo topic")
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


def pinhole_intrinsics(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """K (3x3) and P (3x4) of a distortion-free camera, row-major and flattened."""
    return k.reshape(-1), np.hstack([k, np.zeros((3, 1))]).reshape(-1)


class MessageFactory:
    """Builds typestore messages (rosbags classes) for one camera from BGR frames (OpenCV order).

    CameraInfo carries `k` when given (e.g. a simulated camera's own intrinsics), else an ideal
    pinhole with horizontal field of view `hfov_deg`.
    """

    def __init__(
        self,
        store: Any,
        frame_id: str,
        encoding: str,
        hfov_deg: float = 60.0,
        k: np.ndarray | None = None,
    ) -> None:
        self.store = store
        self.frame_id = frame_id
        self.encoding = encoding
        self.hfov_deg = hfov_deg
        self.k = k

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
        k = self.k if self.k is not None else pinhole_matrix(width, height, self.hfov_deg)
        k, p = pinhole_intrinsics(np.asarray(k, dtype=np.float64))
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


class CameraWriter:
    """The Image and CameraInfo connections of an open bag; `write` stores one frame on both."""

    def __init__(
        self, writer: Writer, factory: MessageFactory, topic: str = IMAGE_TOPIC, info_topic: str = INFO_TOPIC
    ) -> None:
        self.writer = writer
        self.factory = factory
        self.image_conn = add_topic(writer, topic, IMAGE, factory.store, [OFFERED_QOS])
        self.info_conn = add_topic(writer, info_topic, CAMERA_INFO, factory.store, [OFFERED_QOS])
        self.frames = 0
        self.size = (0, 0)

    def write(self, frame: np.ndarray, stamp_ns: int) -> None:
        """One BGR frame, stamped `stamp_ns` (header and bag time) on both topics."""
        store = self.factory.store
        self.size = (frame.shape[1], frame.shape[0])
        image = store.serialize_cdr(self.factory.image(frame, stamp_ns), IMAGE)
        info = store.serialize_cdr(self.factory.camera_info(*self.size, stamp_ns), CAMERA_INFO)
        self.writer.write(self.image_conn, stamp_ns, image)
        self.writer.write(self.info_conn, stamp_ns, info)
        self.frames += 1


def write_frames(
    output: Path,
    frames: Iterable[np.ndarray],
    factory: MessageFactory,
    *,
    fps: float,
    start_ns: int,
    storage: str = "sqlite3",
    topic: str = IMAGE_TOPIC,
    info_topic: str = INFO_TOPIC,
    total: int | None = None,
    custom_data: dict[str, str] | None = None,
    desc: str = "frames",
) -> tuple[int, tuple[int, int]]:
    """Write BGR `frames` into a new bag at `output`, frame i stamped start_ns + i / fps.

    Returns (frames written, (width, height) of the last one). The bag is closed in any case (Ctrl-C
    too: it then holds the frames written so far); a bag without frames is removed. `total` only
    sizes the progress bar. Raises BagError when `output` exists.
    """
    writer = open_writer(output, storage)
    writer.open()
    try:
        for key, value in (custom_data or {}).items():
            writer.set_custom_data(key, value)
        camera = CameraWriter(writer, factory, topic, info_topic)
        with tqdm(total=total, unit="frame", desc=desc, file=sys.stderr) as bar:
            for frame in frames:
                camera.write(frame, start_ns + round(camera.frames * 1e9 / fps))
                bar.update()
    finally:
        writer.close()
    if camera.frames == 0:
        shutil.rmtree(output)  # an empty bag would only mislead
    return camera.frames, camera.size


def read_frames(capture: cv2.VideoCapture, limit: int | None = None) -> Iterator[np.ndarray]:
    """The BGR frames of an open capture, at most `limit`."""
    count = 0
    while limit is None or count < limit:
        ok, frame = capture.read()
        if not ok:
            return
        count += 1
        yield frame


def resize_to_width(frame: np.ndarray, width: int) -> np.ndarray:
    """`frame` scaled to `width` pixels, keeping the aspect ratio (area interpolation)."""
    if width == frame.shape[1]:
        return frame
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


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
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if args.max_frames:
        total = min(total or args.max_frames, args.max_frames)
    start_ns = round((args.start_time if args.start_time is not None else time.time()) * 1e9)
    frames = read_frames(capture, total)
    if args.width:
        frames = (resize_to_width(frame, args.width) for frame in frames)
    factory = MessageFactory(typestore(), args.frame_id, args.encoding, args.hfov_deg)
    try:
        written, size = write_frames(
            args.output, frames, factory, fps=fps, start_ns=start_ns, storage=args.storage,
            topic=args.topic, info_topic=args.info_topic, total=total,
            custom_data={"humanoid_stack.source_video": args.video.name}, desc="video_to_bag",
        )  # fmt: skip
    except BagError as error:
        print(f"video_to_bag: {error}", file=sys.stderr)
        return 2
    finally:
        capture.release()
    if written == 0:
        print(f"video_to_bag: no frame could be read from {args.video}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {written} frames {size[0]}x{size[1]} {args.encoding} at {fps:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
