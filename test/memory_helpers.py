"""Shared pieces of the memory tests: synthetic identities, a memory opened in a temp dir, face scenes
from the bundled photos, a camera that publishes them, and a service call."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import cv2
import numpy as np
from sensor_msgs.msg import Image

from harness import wait_for
from humanoid_common.assets import asset_path
from humanoid_common.images import numpy_to_image
from humanoid_common.qos import load_qos_config
from memory_node.config import MemoryConfig, Thresholds
from memory_node.memory import FaceMemory

DIM = 64
THRESHOLDS = Thresholds(known=0.6, tentative=0.4, margin=0.05)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def identity(rng: np.random.Generator) -> np.ndarray:
    return unit(rng.standard_normal(DIM))


def sample(center: np.ndarray, rng: np.random.Generator, spread: float = 0.6) -> np.ndarray:
    """A face of the person at `center`: cosine to it ≈ 1 / sqrt(1 + spread²) (≈ 0.86 at 0.6)."""
    return unit(center + spread * rng.standard_normal(DIM) / np.sqrt(DIM))


def make_config(data_dir: Path, **sections: dict) -> MemoryConfig:
    cfg = MemoryConfig()
    changes = {"storage": dataclasses.replace(cfg.storage, data_dir=str(data_dir))}
    for name, values in sections.items():
        changes[name] = dataclasses.replace(getattr(cfg, name), **values)
    return dataclasses.replace(cfg, **changes)


def open_memory(data_dir: Path, **sections: dict) -> FaceMemory:
    return FaceMemory.open(make_config(data_dir, **sections), THRESHOLDS, DIM)


def face_crop(name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """The face region of a bundled photo with some margin, scaled to 180 px high."""
    image = cv2.imread(str(asset_path(name)))
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    crop = image[max(y1 - h // 2, 0) : y2 + h // 2, max(x1 - w // 2, 0) : x2 + w // 2]
    return cv2.resize(crop, (int(180 * crop.shape[1] / crop.shape[0]), 180))


def frame(face: np.ndarray | None) -> np.ndarray:
    canvas = np.full((480, 640, 3), 90, np.uint8)
    if face is not None:
        canvas[150 : 150 + face.shape[0], 200 : 200 + face.shape[1]] = face
    return canvas


class Camera:
    """Publishes the current scene (None: nothing) at 5 Hz from a thread until stopped."""

    def __init__(self, node) -> None:
        self.scene: np.ndarray | None = frame(None)
        self._pub = node.create_publisher(
            Image, "/camera/image_raw", load_qos_config().profile("/camera/image_raw")
        )
        self._node = node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if self.scene is None:
                continue
            header = numpy_to_image(self.scene, "bgr8").header
            header.stamp = self._node.get_clock().now().to_msg()
            self._pub.publish(numpy_to_image(self.scene, "bgr8", header))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def call(node, srv_type, name: str, request, timeout: float = 60.0):
    client = node.create_client(srv_type, name)
    wait_for(lambda: client.service_is_ready(), 30, f"service {name}")
    future = client.call_async(request)
    wait_for(future.done, timeout, f"the answer of {name}")
    return future.result()
