"""memory_node: the ROS shell around the face memory (DESIGN §2, §6).

Wiring: /camera/image_raw → newest-frame slot → frame worker (detect + embed, associate to tracks,
Tier 0/1 answer) → /memory/people (provisional) → lookup queue → lookup worker (batched Tier 2/3)
→ /memory/people (refined) + /memory/events. /perception/detections (optional) gives person tracks.
Inputs are checked before use (memory_node.inputs): a message the node cannot use is dropped and
counted by its subscription ("inputs" on /diagnostics). Services: /memory/list_people on this node;
/memory/enroll, /memory/forget, /memory/confirm_identity and /memory/consolidate (std_srvs/Trigger),
which can take seconds, on a ServiceHost thread of their own, every request bounded
(memory_node.requests). Managed node: pipeline and store opened on configure, workers, inputs and
services on activate; everything released on deactivate/cleanup.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from humanoid_common.config import config_dir
from humanoid_common.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LatencyWindow, RateMeter
from humanoid_common.images import image_to_numpy, to_bgr8
from humanoid_common.latest import LatestWorker, Stamped, rate_error
from humanoid_common.lifecycle import ManagedNode, run_node
from humanoid_common.qos import QosConfigError, load_qos_config
from humanoid_common.validation import InvalidMessageError, header_stamp_ns, shorten
from humanoid_common.watch import WatchedPublisher, WatchedSubscription, inputs_status
from humanoid_stack.msg import DetectionArray, MemoryEvent, Person, PersonArray, PersonInfo
from humanoid_stack.srv import ConfirmIdentity, Enroll, Forget, ListPeople
from memory_node.bands import Match
from memory_node.config import MemoryConfigError, load_memory_config, load_thresholds
from memory_node.crypto import MemoryKeyError
from memory_node.errors import MemoryRequestError
from memory_node.faces import Face, create_pipeline
from memory_node.inputs import person_boxes
from memory_node.memory import Event, FaceMemory, FaceObservation
from memory_node.requests import ImageFiles, RateLimit, check_pixels
from memory_node.service_host import ServiceHost
from memory_node.store import StoreError
from memory_node.tracks import FaceTracks, PersonBox
from memory_node.worker import BackgroundWorker

FACE_TRACK_MIN_AGE_S = 1.0
IMAGE_TOPIC = "/camera/image_raw"
DETECTIONS_TOPIC = "/perception/detections"
PEOPLE_TOPIC = "/memory/people"
EVENTS_TOPIC = "/memory/events"

PARAMETERS: dict[str, tuple[Any, str]] = {
    "config_file": ("", "Memory configuration YAML (empty: config/memory.yaml)"),
    "thresholds_file": ("", "Per-model similarity thresholds YAML (empty: config/face_thresholds.yaml)"),
    "data_dir": ("", "Folder of the encrypted store; overrides memory.storage.data_dir when set"),
    "backend": ("insightface", "Face pipeline: insightface (SCRFD + ArcFace) or opencv (YuNet + SFace)"),
    "providers": (["CPUExecutionProvider"], "onnxruntime execution providers, in order of preference"),
    "detector_model": ("", "Face detector: an asset name or a file path; empty: the backend's own"),
    "recognizer_model": (
        "",
        "Face recognizer (the backend's model): an asset name or a path; empty: the backend's own",
    ),
    "use_detections": (True, "Attach faces to person tracks from /perception/detections when fresh"),
    "detections_max_age_s": (0.5, "Detections older than this (vs. the image stamp) are not used"),
    "qos_file": ("", "QoS YAML (empty: config/qos.yaml)"),
    "tick_period_s": (0.5, "How often LEFT events and expiry are checked"),
    "lookup_batch": (8, "Frames looked up together in Tier 2 (the lookup queue holds as many)"),
    "max_rate_hz": (0.0, "Most frames processed per second, newest first; 0 = as fast as the pipeline runs"),
}


@dataclass(frozen=True)
class Frame:
    header: Header
    stamp_ns: int  # header.stamp, checked
    received_ns: int
    bgr: np.ndarray


@dataclass(frozen=True)
class Lookup:
    frame: Frame
    faces: list[Face]
    observations: list[FaceObservation]


def face_track_age_s(max_rate_hz: float) -> float:
    """How long the IoU face tracker keeps an unseen track: a second, or two and a half frame periods
    when frames come slower (a governor can lower the rate to 0.5 Hz), so a face that stays in view
    keeps its track (and its votes and events) between processed frames."""
    return max(FACE_TRACK_MIN_AGE_S, 2.5 / max_rate_hz) if max_rate_hz > 0 else FACE_TRACK_MIN_AGE_S


def _time_msg(seconds: float | None) -> Time:
    if seconds is None:
        return Time()
    return Time(sec=int(seconds), nanosec=int((seconds % 1) * 1e9))


class MemoryNode(ManagedNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("memory_node", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.memory: FaceMemory | None = None
        self._pipeline = None
        self._pipeline_lock = threading.Lock()
        self._tracks = FaceTracks()
        self._people_boxes: tuple[int, list[PersonBox]] = (0, [])
        self._endpoints: list[Any] = []
        self._service_host: ServiceHost | None = None
        self._list_service: Any = None
        self._timer_handles: list[Any] = []
        self._frames: LatestWorker[Frame] | None = None
        self._lookups: BackgroundWorker[Lookup] | None = None
        self._image_sub: WatchedSubscription | None = None
        self._detections_sub: WatchedSubscription | None = None
        self._diagnostics: DiagnosticsPublisher | None = None
        self._reset_stats()
        self.live_parameter("max_rate_hz", rate_error, self._set_rate)
        self.autostart()

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _set_rate(self, max_rate_hz: float) -> None:
        if self._frames is not None and self._frames.max_rate_hz != max_rate_hz:
            self._frames.set_rate(max_rate_hz)
            self._tracks.tracker.max_age_s = face_track_age_s(max_rate_hz)
            self.get_logger().info(f"max_rate_hz set to {max_rate_hz:g}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = load_memory_config(self._param("config_file") or config_dir() / "memory.yaml")
            if self._param("data_dir"):
                cfg = dataclasses.replace(
                    cfg, storage=dataclasses.replace(cfg.storage, data_dir=self._param("data_dir"))
                )
            self._qos = load_qos_config(self._param("qos_file") or None)
            self.get_logger().info(f"loading the {self._param('backend')} face pipeline")
            self._pipeline = create_pipeline(
                self._param("backend"),
                tuple(self._param("providers")),
                detector_model=self._param("detector_model"),
                recognizer_model=self._param("recognizer_model"),
            )
            thresholds_file = self._param("thresholds_file") or config_dir() / "face_thresholds.yaml"
            thresholds = load_thresholds(thresholds_file, self._pipeline.model_name)
            self.memory = FaceMemory.open(cfg, thresholds, self._pipeline.dim)
        except (MemoryConfigError, QosConfigError, MemoryKeyError, StoreError, ValueError, OSError) as error:
            self.get_logger().error(f"cannot configure: {error}")
            self._pipeline = None
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f"memory open at {cfg.data_path()}: {len(self.memory.people)} people, "
            f"{self.memory.index.kind} index, "
            f"thresholds {thresholds}"
        )
        self._people_pub = WatchedPublisher(self, PersonArray, PEOPLE_TOPIC, self._qos)
        self._events_pub = WatchedPublisher(self, MemoryEvent, EVENTS_TOPIC, self._qos)
        self._endpoints = [self._people_pub, self._events_pub]
        self._diagnostics = DiagnosticsPublisher(self, "memory_node")
        self._diagnostics.add("frames", self._frames_status)
        self._diagnostics.add("memory", self._memory_status)
        self._diagnostics.add("inputs", inputs_status(self._watched_inputs))
        requests = cfg.requests
        self._image_files = ImageFiles(requests.image_dirs, requests.max_image_pixels)
        self._enroll_limit = RateLimit("Enroll", requests.enroll_burst, requests.enroll_interval_s)
        self._forget_limit = RateLimit("Forget", requests.forget_burst, requests.forget_interval_s)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._reset_stats()
        batch = int(self._param("lookup_batch"))
        self._frames = LatestWorker(
            self._process_frame, float(self._param("max_rate_hz")), self._on_error, "memory-frames"
        )
        self._tracks.tracker.max_age_s = face_track_age_s(self._frames.max_rate_hz)
        self._frames.start()
        self._lookups = BackgroundWorker(
            "memory-lookups", self._process_lookups, self._on_error, max_pending=batch, max_batch=batch
        )
        self._image_sub = WatchedSubscription(self, Image, IMAGE_TOPIC, self._on_image, self._qos)
        if self._param("use_detections"):
            self._detections_sub = WatchedSubscription(
                self, DetectionArray, DETECTIONS_TOPIC, self._on_detections, self._qos
            )
        self._service_host = ServiceHost(self)  # the services that may take seconds, on their own thread
        self._service_host.add(Enroll, "/memory/enroll", self._enroll)
        self._service_host.add(Forget, "/memory/forget", self._forget)
        self._service_host.add(ConfirmIdentity, "/memory/confirm_identity", self._confirm)
        self._service_host.add(Trigger, "/memory/consolidate", self._consolidate_now)
        self._list_service = self.create_guarded_service(ListPeople, "/memory/list_people", self._list_people)
        period = self.memory.config.consolidation.period_s
        self._timer_handles = [
            self.create_timer(float(self._param("tick_period_s")), self._tick),
            self.create_timer(period, self._consolidate_periodically),
        ]
        self.get_logger().info(f"active: {IMAGE_TOPIC} → {PEOPLE_TOPIC}, {EVENTS_TOPIC}")
        return super().on_activate(state)

    def stop_input(self) -> None:
        # The service thread first (after the request in progress): no other thread waits on the
        # graph while this node's endpoints are destroyed.
        if self._service_host is not None:
            self._service_host.close()  # its services go with its node
        for sub in (self._image_sub, self._detections_sub):
            if sub is not None:
                sub.destroy()
        self._image_sub = self._detections_sub = None
        for worker in (self._frames, self._lookups):
            if worker is not None:
                worker.stop()
        self._frames = self._lookups = None
        if self._list_service is not None:
            self.destroy_service(self._list_service)
        for timer in self._timer_handles:
            self.destroy_timer(timer)
        self._service_host, self._list_service, self._timer_handles = None, None, []

    def release(self) -> None:
        for endpoint in [*self._endpoints, self._diagnostics]:
            if endpoint is not None:
                endpoint.destroy()
        self._endpoints, self._diagnostics = [], None
        if self.memory is not None:
            self.memory.close()
            self.memory = None
        self._pipeline = None

    def _watched_inputs(self) -> list[WatchedSubscription]:
        return [sub for sub in (self._image_sub, self._detections_sub) if sub is not None]

    # ---------------------------------------------------------------- data path
    # A callback raises InvalidMessageError (ImageFormatError for pixels) for a message it cannot use:
    # the subscription drops it, counts it in the "inputs" status and logs it shortened, throttled.
    def _on_image(self, msg: Image) -> None:
        now = self.get_clock().now().nanoseconds
        stamp = header_stamp_ns(msg.header, now)
        bgr = to_bgr8(image_to_numpy(msg), msg.encoding)  # checks encoding, size, step, data length
        self._frames.submit(Frame(msg.header, stamp, now, bgr))

    def _on_detections(self, msg: DetectionArray) -> None:
        stamp = header_stamp_ns(msg.header, self.get_clock().now().nanoseconds)
        self._people_boxes = (stamp, person_boxes(msg))

    def _track_ids(self, frame: Frame, faces: list[Face]) -> list[int]:
        stamp_ns, people = self._people_boxes
        fresh = abs(frame.stamp_ns - stamp_ns) / 1e9 <= self._param("detections_max_age_s")
        return self._tracks.assign([f.box for f in faces], people if fresh else None, self._now())

    def _process_frame(self, batch: list[Stamped[Frame]]) -> None:
        (stamped,) = batch  # one camera: one key
        frame = stamped.item
        start = time.perf_counter()
        with self._pipeline_lock:
            faces = self._pipeline.process(frame.bgr)
        self.face_ms.add((time.perf_counter() - start) * 1e3)
        track_ids = self._track_ids(frame, faces)
        observations = [FaceObservation(t, f.embedding) for f, t in zip(faces, track_ids, strict=True)]
        self._publish_people(
            frame, faces, observations, self.memory.provisional(observations), provisional=True
        )
        self.frames_processed += 1
        self.rate.tick()
        if faces:
            self._lookups.submit(Lookup(frame, faces, observations))

    def _process_lookups(self, lookups: list[Lookup]) -> None:
        now = self._now()
        results = self.memory.refine([(lookup.observations, now) for lookup in lookups])
        for lookup, matches in zip(lookups, results, strict=True):
            self._publish_people(lookup.frame, lookup.faces, lookup.observations, matches, provisional=False)
        self._publish_events()

    def _publish_people(
        self,
        frame: Frame,
        faces: list[Face],
        observations: list[FaceObservation],
        matches: list[Match],
        *,
        provisional: bool,
    ) -> None:
        msg = PersonArray(
            header=frame.header, provisional=provisional, embedding_model=self._pipeline.model_name
        )
        for face, obs, match in zip(faces, observations, matches, strict=True):
            x1, y1, x2, y2 = face.box
            msg.people.append(
                Person(
                    center_x=(x1 + x2) / 2,
                    center_y=(y1 + y2) / 2,
                    size_x=x2 - x1,
                    size_y=y2 - y1,
                    landmarks=np.asarray(face.landmarks, np.float32).reshape(10).tolist(),
                    detector_score=float(face.score),
                    quality=float(face.quality),
                    quality_issue=face.issue,
                    track_id=obs.track_id,
                    person_id=match.person_id,
                    display_name=match.name,
                    similarity=float(match.similarity),
                    margin=float(match.margin),
                    band=int(match.band),
                    tier=int(match.tier),
                )
            )
        msg.processing_ms = (self.get_clock().now().nanoseconds - frame.received_ns) / 1e6
        (self.provisional_ms if provisional else self.refined_ms).add(msg.processing_ms)
        self._people_pub.publish(msg)

    def _publish_events(self) -> None:
        if self.memory is None:
            return
        for event in self.memory.pop_events():
            self._events_pub.publish(self._event_msg(event))
            self.events_published += 1

    @staticmethod
    def _event_msg(event: Event) -> MemoryEvent:
        return MemoryEvent(
            header=Header(stamp=_time_msg(event.stamp)),
            type=int(event.kind),
            person_id=event.person_id,
            display_name=event.name,
            track_id=event.track_id,
            similarity=float(event.similarity),
            absent_s=float(event.absent_s),
            text=event.text,
        )

    def _tick(self) -> None:
        self.memory.tick(self._now())
        self._publish_events()

    def _consolidate_periodically(self) -> None:
        try:
            self._consolidate()
        except (ValueError, StoreError) as error:  # a timer must not take the node down
            self.errors += 1
            self.last_error = f"consolidation: {type(error).__name__}: {error}"
            self.get_logger().error(f"consolidation failed, trying again next period: {error}")

    def _consolidate(self) -> dict[str, int]:
        start = time.perf_counter()
        stats = self.memory.consolidate(self._now())
        self._publish_events()
        self.get_logger().info(f"consolidated in {time.perf_counter() - start:.2f} s: {stats}")
        return stats

    def _on_error(self, error: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self.get_logger().error(f"frame dropped: {self.last_error}", throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- services
    # Enroll, Forget, ConfirmIdentity and Consolidate run on the ServiceHost thread, ListPeople on the
    # executor. A refused request gets success false and the reason (shortened) in its message.
    def _request_images(self, request: Enroll.Request) -> Iterator[np.ndarray]:
        """The request's pictures, decoded one at a time; counts, sizes and paths are all checked
        before the first is decoded."""
        limits = self.memory.config.requests
        count = len(request.images) + len(request.image_paths)
        if count > limits.max_images:
            raise MemoryRequestError(
                f"{count} images in one request, more than the {limits.max_images} allowed "
                f"(memory.requests.max_images); enrol with fewer pictures"
            )
        for i, msg in enumerate(request.images):
            check_pixels(msg.width, msg.height, limits.max_image_pixels, f"images[{i}]")
        for path in request.image_paths:
            self._image_files.resolve(path)
        for msg in request.images:
            yield to_bgr8(image_to_numpy(msg), msg.encoding)
        for path in request.image_paths:
            yield self._image_files.read(path)

    def _embeddings_from_images(
        self, images: Iterator[np.ndarray]
    ) -> tuple[list[np.ndarray], list[bytes], int]:
        """Embeddings of the largest good face of each image, its JPEG crop, and the rejected count."""
        embeddings, crops, rejected = [], [], 0
        for bgr in images:
            with self._pipeline_lock:
                faces = self._pipeline.process(bgr)
            good = [f for f in faces if not f.issue and f.embedding is not None]
            rejected += len(faces) - len(good) + (0 if faces else 1)
            if good:
                face = max(good, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                embeddings.append(face.embedding)
                x1, y1, x2, y2 = (int(max(v, 0)) for v in face.box)
                crops.append(cv2.imencode(".jpg", bgr[y1:y2, x1:x2])[1].tobytes())
                rejected += len(good) - 1
        return embeddings, crops, rejected

    def _enroll(self, request: Enroll.Request, response: Enroll.Response) -> Enroll.Response:
        sources = (request.track_id >= 0) + bool(request.images) + bool(request.image_paths)
        try:
            self._enroll_limit.take()
            if sources != 1:
                raise MemoryRequestError("give exactly one source: track_id, images or image_paths")
            name = self.memory.enrolment_name(request.name, request.consent)
            if request.track_id >= 0:
                pid, added = self.memory.enroll_track(request.track_id, name, True, self._now())
                rejected = 0
            else:
                embeddings, crops, rejected = self._embeddings_from_images(self._request_images(request))
                pid, added = self.memory.enroll(name, True, embeddings, self._now(), crops)
                rejected += len(embeddings) - added  # faces that do not look like the named person
        except (MemoryRequestError, InvalidMessageError) as error:
            response.success, response.message = False, shorten(error)
            return response
        response.success, response.person_id = True, pid
        response.samples_added, response.samples_rejected = added, rejected
        response.message = f"enrolled {name}: {added} samples stored, {rejected} faces rejected"
        self.get_logger().info(f"enrolled person {pid}: {added} samples")
        return response

    def _forget(self, request: Forget.Request, response: Forget.Response) -> Forget.Response:
        try:
            self._forget_limit.take()
            pid = self.memory.resolve(request.person_id, request.display_name)
            if request.learned_only:
                dropped = self.memory.drop_learned(pid)
            else:
                self.memory.forget(pid, self._now())
        except MemoryRequestError as error:
            response.success, response.message = False, shorten(error)
            return response
        response.success, response.person_id = True, pid
        if request.learned_only:
            self.get_logger().info(f"dropped {dropped} learned samples of person {pid}")
            response.message = f"dropped {dropped} learned samples; the enrolled (anchor) samples stay"
            return response
        self._publish_events()
        self.get_logger().info(f"forgot person {pid}")
        response.message = "forgotten: removed from every tier, the index, the archive and the store files"
        return response

    def _list_people(self, request: ListPeople.Request, response: ListPeople.Response) -> ListPeople.Response:
        for person, archived in self.memory.list_people(
            request.include_provisional, request.include_archived
        ):
            response.people.append(
                PersonInfo(
                    person_id=person.person_id,
                    display_name=person.name,
                    consent=person.consent,
                    provisional=person.provisional,
                    first_seen=_time_msg(person.first_seen),
                    last_seen=_time_msg(person.last_seen),
                    interactions=person.interactions,
                    samples=len(person.samples) + len(person.learned),
                    anchor_samples=len(person.samples),
                    learned_samples=len(person.learned),
                    archived=archived,
                    tags=person.tags,
                )
            )
        return response

    def _confirm(
        self, request: ConfirmIdentity.Request, response: ConfirmIdentity.Response
    ) -> ConfirmIdentity.Response:
        try:
            response.message = self.memory.confirm(
                request.track_id, request.person_id, request.confirmed, self._now()
            )
            response.success = True
        except MemoryRequestError as error:
            response.success, response.message = False, shorten(error)
        self._publish_events()
        return response

    def _consolidate_now(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, f"consolidated: {self._consolidate()}"
        return response

    # ---------------------------------------------------------------- diagnostics
    def _reset_stats(self) -> None:
        self.errors = self.frames_processed = self.events_published = 0
        self.last_error = ""
        self.face_ms = LatencyWindow(100)
        self.provisional_ms = LatencyWindow(100)
        self.refined_ms = LatencyWindow(100)
        self.rate = RateMeter(5.0)

    def _frames_status(self) -> tuple[bytes, str, dict[str, Any]]:
        sub = self._image_sub
        values = {
            "processed": self.frames_processed,
            "rate_hz": self.rate.rate(),
            "max_rate_hz": self._frames.max_rate_hz if self._frames else 0.0,
            "skipped_newer_frame": self._frames.slot.skipped if self._frames else 0,
            "lookups_dropped": self._lookups.dropped if self._lookups else 0,
            "errors": self.errors,
            "last_error": self.last_error,
            "camera_deadline_misses": sub.health.deadline_misses if sub else 0,
            **self.face_ms.summary("face_pipeline_ms."),
            **self.provisional_ms.summary("provisional_ms."),
            **self.refined_ms.summary("refined_ms."),
        }
        if sub is None:
            return OK, "inactive", values
        if self.errors:
            return ERROR, f"{self.errors} frames failed: {self.last_error}", values
        if sub.age_s() is None:
            return WARN, "waiting for the first image", values
        return OK, "running", values

    def _memory_status(self) -> tuple[bytes, str, dict[str, Any]]:
        memory = self.memory
        if memory is None:
            return OK, "not configured", {}
        values = {
            "people": len(memory.people),
            "index": memory.index.kind,
            "index_vectors": len(memory.index),
            "hot_cache": len(memory.hot),
            "recent_tracks": len(memory.recent.tracks),
            "events_published": self.events_published,
            "store": str(memory.store.path),
            "calibrated_gallery_size": memory.thresholds.gallery_size,
        }
        calibrated = memory.thresholds.gallery_size
        if calibrated and len(memory.people) > calibrated:
            return (
                WARN,
                f"{len(memory.people)} people, more than the {calibrated} the face thresholds were "
                f"calibrated for: strangers are named more often than calibrated; ship the band for a "
                f"larger gallery (tools/calibrate_faces.py --gallery-size)",
                values,
            )
        return OK, f"{len(memory.people)} people", values


def main(args: list[str] | None = None) -> int:
    return run_node(MemoryNode, args)


if __name__ == "__main__":
    sys.exit(main())
