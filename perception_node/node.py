"""perception_node: the ROS shell around the YOLO detector (DESIGN §2–§3).

Wiring: /camera/image_raw (or .../compressed) → newest-frame slot → worker thread (rate-limited
detect + track) → /perception/detections, /perception/debug_image and /perception/markers (each only
while subscribed; markers placed with /camera/camera_info), /diagnostics. With several cameras
(``cameras`` parameter, perception_node.cameras) each has a slot and its own topics, and the worker
runs the newest frame of every camera that has a new one as one batch.
Managed node: the model is loaded on configure, warmed up on activate, released on cleanup.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from humanoid_common.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LatencyWindow, RateMeter
from humanoid_common.images import (
    ImageFormatError,
    check_compressed,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image,
    to_bgr8,
)
from humanoid_common.latest import LatestWorker, RateLimiter, Stamped, rate_error
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import QosConfig, QosConfigError, load_qos_config
from humanoid_common.throttle import KeyedThrottle, problem_kind
from humanoid_common.validation import header_stamp_ns, shorten
from humanoid_common.watch import TopicHealth, WatchedPublisher, WatchedSubscription, inputs_status
from humanoid_stack.msg import DetectionArray
from perception_node.cameras import CameraTopics, with_camera_qos
from perception_node.convert import result_to_msg
from perception_node.debug_draw import draw_detections
from perception_node.detector import Detector, DetectorError, FrameResult, load_detector
from perception_node.inputs import check_camera_info
from perception_node.markers import camera_intrinsics, detection_markers
from perception_node.settings import PARAMETERS, PerceptionSettings, SettingsError

WARN_PERIOD_S = 5.0  # per kind of problem


@dataclass(frozen=True)
class Frame:
    """A received camera frame: decoded BGR pixels (raw input) or the still compressed message."""

    header: Header
    received_ns: int
    bgr: np.ndarray | None = None
    compressed: CompressedImage | None = None


class Camera:
    """One camera's endpoints and state in the node (its subscriptions exist while active)."""

    def __init__(self, node: PerceptionNode, index: int, topics: CameraTopics, qos: QosConfig) -> None:
        self.index = index
        self.topics = topics
        self.label = f"camera {topics.name}" if topics.name else "camera"
        self.detections = WatchedPublisher(node, DetectionArray, topics.detections, qos)
        self.debug = WatchedPublisher(node, Image, topics.debug_image, qos)
        self.markers = WatchedPublisher(node, MarkerArray, topics.markers, qos)
        self.image_sub: WatchedSubscription | None = None
        self.info_sub: WatchedSubscription | None = None
        self.info: CameraInfo | None = None  # read by the worker thread: one reference, replaced whole
        self.debug_limiter = self.markers_limiter = RateLimiter(0.0)
        self.undecodable = 0
        self.last_undecodable = ""
        self.undecodable_at: float | None = None

    def subscriptions(self) -> list[WatchedSubscription]:
        return [sub for sub in (self.image_sub, self.info_sub) if sub is not None]

    def unsubscribe(self) -> None:
        for sub in self.subscriptions():
            sub.destroy()
        self.image_sub = self.info_sub = None

    def destroy(self) -> None:
        self.unsubscribe()
        for endpoint in (self.detections, self.debug, self.markers):
            endpoint.destroy()


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception_node", **kwargs)
        for spec in PARAMETERS:
            when = " (changes apply at once)" if spec.name == "max_rate_hz" else " (read on configure)"
            descriptor = ParameterDescriptor(description=spec.description + when)
            default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
            self.declare_parameter(spec.name, default, descriptor)
        self.settings: PerceptionSettings | None = None
        self._detector: Detector | None = None
        self._worker: LatestWorker[Frame] | None = None
        self._cameras: list[Camera] = []
        self._diagnostics: DiagnosticsPublisher | None = None
        self._throttle = KeyedThrottle(WARN_PERIOD_S)
        self._reset_stats()
        self.live_parameter("max_rate_hz", rate_error, self._set_rate)
        self.autostart()

    @property
    def model_loaded(self) -> bool:
        return self._detector is not None

    @property
    def cameras(self) -> list[Camera]:
        """The configured cameras, in batch order (empty before configure)."""
        return self._cameras

    def _set_rate(self, max_rate_hz: float) -> None:
        if self.settings is not None:
            self.settings = replace(self.settings, max_rate_hz=max_rate_hz)
        if self._worker is not None and self._worker.max_rate_hz != max_rate_hz:
            self._worker.set_rate(max_rate_hz)
            self.get_logger().info(f"max_rate_hz set to {max_rate_hz:g}")

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.settings = PerceptionSettings.from_parameters(self._parameter_values())
            qos = load_qos_config(self.settings.qos_file or None)
            self._qos = with_camera_qos(qos, self.settings.cameras, self.settings.image_reliability)
            detector = self.settings.detector
            self.get_logger().info(f"loading {detector.model} ({detector.task}, backend {detector.backend})")
            self._detector = load_detector(detector)
        except (SettingsError, DetectorError, QosConfigError) as error:
            self.get_logger().error(f"cannot configure: {error}")
            return TransitionCallbackReturn.FAILURE
        self._cameras = [Camera(self, i, t, self._qos) for i, t in enumerate(self.settings.cameras)]
        self._diagnostics = DiagnosticsPublisher(self, "perception_node", self.settings.diagnostics_period_s)
        for camera in self._cameras:
            self._diagnostics.add(camera.label, lambda camera=camera: self._camera_status(camera))
        self._diagnostics.add("inference", self._inference_status)
        self._diagnostics.add("inputs", inputs_status(self._watched_inputs))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self.settings
        cameras = len(self._cameras)
        self._detector.warm_up(
            settings.warmup_frames, lambda i, n: self.get_logger().info(f"warm-up {i}/{n}"), cameras
        )
        self._reset_stats()
        self._worker = LatestWorker(self._process, settings.max_rate_hz, self._on_worker_error, "perception")
        msg_type = CompressedImage if settings.compressed_input else Image
        for camera in self._cameras:
            camera.debug_limiter = RateLimiter(settings.debug_image_max_hz)
            camera.markers_limiter = RateLimiter(settings.markers_max_hz)
            camera.image_sub = WatchedSubscription(
                self, msg_type, camera.topics.image,
                lambda msg, camera=camera: self._on_image(camera, msg), self._qos,
                on_deadline_missed=lambda health, camera=camera: self._on_camera_deadline(camera, health),
            )  # fmt: skip
            camera.info_sub = WatchedSubscription(
                self, CameraInfo, camera.topics.camera_info,
                lambda msg, camera=camera: self._on_camera_info(camera, msg), self._qos,
            )  # fmt: skip
        self._worker.start()
        limit = settings.max_rate_hz
        rate = f"at most {limit:g} Hz" if limit > 0 else "as fast as the model runs"
        routes = ", ".join(f"{c.topics.image} → {c.topics.detections}" for c in self._cameras)
        batch = f", {cameras} cameras in one batch" if cameras > 1 else ""
        self.get_logger().info(
            f"active: {routes} {rate} ({self._detector.model_name}, backend {settings.detector.backend}, "
            f"tracker {settings.detector.tracker or 'none'}{batch})"
        )
        return super().on_activate(state)

    def stop_input(self) -> None:
        for camera in self._cameras:
            camera.unsubscribe()
        if self._worker is not None:
            if not self._worker.stop():
                self.get_logger().error("the inference thread did not stop within 10 s")
            self._worker = None
        if self._detector is not None:
            self._detector.reset_tracks()

    def release(self) -> None:
        if self._diagnostics is not None:
            self._diagnostics.destroy()
            self._diagnostics = None
        for camera in self._cameras:
            camera.destroy()
        self._cameras = []
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def _watched_inputs(self) -> list[WatchedSubscription]:
        return [sub for camera in self._cameras for sub in camera.subscriptions()]

    # ---------------------------------------------------------------- data path
    # A callback raises InvalidMessageError (ImageFormatError) for a message it cannot use: the
    # subscription drops it, counts it in the "inputs" status and logs it shortened, throttled.
    def _on_image(self, camera: Camera, msg: Image | CompressedImage) -> None:
        received_ns = self.get_clock().now().nanoseconds
        header_stamp_ns(msg.header, received_ns)
        if isinstance(msg, CompressedImage):  # decoding is costly: only the frames processed are decoded
            check_compressed(msg)  # its declared size, before anything is decoded
            self._worker.submit(Frame(msg.header, received_ns, compressed=msg), camera.index)
            return
        bgr = to_bgr8(image_to_numpy(msg), msg.encoding)  # checks size, step, length, encoding
        self._worker.submit(Frame(msg.header, received_ns, bgr=bgr), camera.index)

    def _on_camera_info(self, camera: Camera, msg: CameraInfo) -> None:
        header_stamp_ns(msg.header, self.get_clock().now().nanoseconds)
        check_camera_info(msg)
        camera.info = msg

    def _process(self, batch: list[Stamped[Frame]]) -> None:
        start_ns = self.get_clock().now().nanoseconds
        cameras, frames, images = [], [], []
        for stamped in batch:
            camera, frame = self._cameras[stamped.key], stamped.item
            self.stats_age_ms.add((start_ns - self._reference_ns(frame)) / 1e6)
            bgr = frame.bgr
            if bgr is None:
                try:
                    bgr = compressed_to_numpy(frame.compressed, "bgr8")
                except ImageFormatError as error:  # passed check_compressed, but the data is corrupt
                    self._undecodable(camera, error)
                    continue
            cameras.append(camera)
            frames.append(frame)
            images.append(bgr)
        if not images:
            return
        results = self._detector.detect_batch(images, [camera.index for camera in cameras])
        for camera, frame, bgr, result in zip(cameras, frames, images, results, strict=True):
            msg = result_to_msg(result, frame.header, self._detector.model_name)
            msg.latency_ms = (self.get_clock().now().nanoseconds - self._reference_ns(frame)) / 1e6
            camera.detections.publish(msg)
            self.stats_latency_ms.add(msg.latency_ms)
            self._publish_views(camera, bgr, result, frame.header)
        self.stats_rate.tick()
        self.stats_inference_ms.add(results[0].inference_ms)

    def _publish_views(self, camera: Camera, bgr: np.ndarray, result: FrameResult, header: Header) -> None:
        """The debug image and the markers, each only while subscribed and at most at its rate."""
        if camera.debug.publisher.get_subscription_count() > 0 and camera.debug_limiter.ready():
            camera.debug_limiter.mark()
            canvas = draw_detections(bgr, result.detections, self.stats_rate.rate())
            camera.debug.publish(numpy_to_image(canvas, "bgr8", header))
        if camera.markers.publisher.get_subscription_count() > 0 and camera.markers_limiter.ready():
            camera.markers_limiter.mark()
            intrinsics = camera_intrinsics(camera.info, bgr.shape[1], bgr.shape[0])
            distance_m = self.settings.marker_distance_m
            camera.markers.publish(detection_markers(result.detections, header, intrinsics, distance_m))

    @staticmethod
    def _reference_ns(frame: Frame) -> int:
        """Latency reference: the image stamp, or the receipt time when the camera left it zero."""
        stamp_ns = frame.header.stamp.sec * 1_000_000_000 + frame.header.stamp.nanosec
        return stamp_ns or frame.received_ns

    def _undecodable(self, camera: Camera, error: ImageFormatError) -> None:
        camera.undecodable += 1
        camera.last_undecodable = shorten(error)
        camera.undecodable_at = time.monotonic()
        self._warn(f"dropped an undecodable image on {camera.topics.image}: {camera.last_undecodable}")

    def _on_worker_error(self, error: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self._warn(f"processing a frame failed, frame dropped: {self.last_error}")

    def _on_camera_deadline(self, camera: Camera, health: TopicHealth) -> None:
        self._warn(
            f"no image on {camera.topics.image} for more than {health.deadline_ms:g} ms "
            f"({health.deadline_misses} deadline misses so far)",
            key=f"{camera.label} deadline",
        )

    def _warn(self, message: str, key: str | None = None) -> None:
        if (text := self._throttle.message(key or problem_kind(message), message)) is not None:
            self.get_logger().warning(text)

    # ---------------------------------------------------------------- diagnostics
    def _reset_stats(self) -> None:
        self.errors = 0
        self.last_error = ""
        for camera in self._cameras:
            camera.undecodable, camera.last_undecodable, camera.undecodable_at = 0, "", None
        self.stats_rate = RateMeter(5.0)
        self.stats_inference_ms = LatencyWindow(100)
        self.stats_latency_ms = LatencyWindow(100)
        self.stats_age_ms = LatencyWindow(100)

    def _camera_status(self, camera: Camera) -> tuple[bytes, str, dict[str, Any]]:
        sub = camera.image_sub
        if sub is None:
            return OK, "inactive", {}
        health = sub.health
        age = sub.age_s()
        values = {
            "topic": sub.subscription.topic_name,
            "reliability": sub.qos.reliability,
            "messages": health.messages,
            "deadline_ms": health.deadline_ms,
            "deadline_misses": health.deadline_misses,
            "age_s": age if age is not None else "never",
            "incompatible_qos": health.incompatible_qos,
        }
        if health.incompatible_qos and not health.messages:
            return ERROR, "a publisher's QoS is incompatible: no images arrive", values
        if age is None:
            return WARN, "waiting for the first image", values
        if health.deadline_ms and age * 1e3 > health.deadline_ms:
            return WARN, f"camera stalled: no image for {age:.1f} s", values
        return OK, "receiving images", values

    def _inference_status(self) -> tuple[bytes, str, dict[str, Any]]:
        worker = self._worker
        images = [camera.image_sub.health for camera in self._cameras if camera.image_sub]
        undecodable = sum(camera.undecodable for camera in self._cameras)
        malformed = undecodable + sum(image.dropped for image in images)
        last_malformed = [c.last_undecodable for c in self._cameras if c.last_undecodable]
        last_malformed += [image.last_problem for image in images if image.last_problem]
        detector = self._detector
        values = {
            "model": detector.model_name if detector else "",
            "backend": detector.config.backend if detector else "",
            "cameras": len(self._cameras),
            "rate_hz": self.stats_rate.rate(),
            "processed": worker.processed if worker else 0,
            "skipped_stale": worker.slot.skipped if worker else 0,
            "malformed_dropped": malformed,
            "undecodable": undecodable,
            "last_malformed": last_malformed[0] if last_malformed else "",
            "errors": self.errors,
            "last_error": self.last_error,
            **self.stats_inference_ms.summary("inference_ms."),
            **self.stats_latency_ms.summary("latency_ms."),
            **self.stats_age_ms.summary("frame_age_at_start_ms."),
        }
        if self.errors:
            return ERROR, f"{self.errors} frames failed: {self.last_error}", values
        times = [image.last_problem_at for image in images] + [c.undecodable_at for c in self._cameras]
        problems = [t for t in times if t is not None]
        if problems and time.monotonic() - max(problems) < WARN_PERIOD_S:
            return WARN, f"dropping malformed images ({malformed} so far)", values
        return OK, "running" if worker else "inactive", values

    # ---------------------------------------------------------------- parameters
    def _parameter_values(self) -> dict[str, Any]:
        values = {}
        for spec in PARAMETERS:
            try:
                values[spec.name] = self.get_parameter(spec.name).value
            except ParameterUninitializedException:
                values[spec.name] = spec.default
        return values


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())
