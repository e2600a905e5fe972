"""Face pipeline: detection, five landmarks, quality gates, alignment and embeddings (no rclpy).

Two backends behind one interface (`FacePipeline`):

- ``insightface``: SCRFD-500M detector + ArcFace MobileFaceNet (w600k_mbf, 512-d), run with
  onnxruntime on the selected execution providers. Weights: non-commercial research use only.
- ``opencv``: YuNet detector + SFace (128-d) through cv2.FaceDetectorYN / cv2.FaceRecognizerSF on
  OpenCV's CPU DNN. Weights: MIT / Apache-2.0 (licence-clean).

Both align with the same similarity transform to the ArcFace 112×112 template (memory_node.align), so
quality gates and `embed_aligned` mean the same for both. Similarities are cosine similarities of the
L2-normalised embeddings; thresholds are per `model_name` (config/face_thresholds.yaml).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import onnxruntime as ort

from humanoid_common.assets import model_file
from memory_node.align import CROP_SIZE, align_face, from_image_order
from memory_node.quality import POSE_REFERENCES, TEMPLATE_REFERENCE, PoseReference, pose_angles, sharpness
from memory_node.scrfd import ScrfdDetector

BACKENDS = ("insightface", "opencv")
DETECT_INPUT_SIZE = 640  # detectors see the image with its longer side scaled to this
# Detector threshold. Faces between this and QualityGates.min_score are reported with issue "low_score".
DETECT_SCORE = 0.4
NMS_IOU = 0.4


# An onnxruntime execution provider: its name, or (name, options),
# e.g. ("CUDAExecutionProvider", {"device_id": 0}).
Provider = str | tuple[str, dict[str, Any]]


class ProviderError(ValueError):
    """A requested onnxruntime execution provider is not available (or not usable by the backend)."""


@dataclass
class Face:
    """One detected face. Landmarks are in the person's-viewpoint order of msg/Person.msg."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in input-image pixels (may pass the edges)
    landmarks: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth
    score: float  # detector confidence [0, 1]
    quality: float  # combined quality [0, 1]
    issue: str  # "" when the quality gates passed, else "too_small" | "low_score" | "blurry" | "pose"
    embedding: np.ndarray | None = None  # L2-normalised float32 (dim,); only for faces that passed


@dataclass(frozen=True)
class QualityGates:
    """Thresholds a face must pass to be embedded (checked in this order; the first failure is the issue)."""

    min_size_px: float = 40.0  # shorter side of the face box
    min_score: float = 0.6  # detector confidence
    min_sharpness: float = 40.0  # variance of the Laplacian of the aligned 112×112 grey crop
    max_yaw_deg: float = 40.0  # landmark pose proxy (memory_node.quality), from the detector's frontal face
    max_pitch_deg: float = 35.0

    def __post_init__(self) -> None:
        for name in ("min_size_px", "min_sharpness"):
            if getattr(self, name) < 0:
                raise ValueError(f"QualityGates.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"QualityGates.min_score must be in [0, 1], got {self.min_score}")
        for name in ("max_yaw_deg", "max_pitch_deg"):
            if not 0.0 < getattr(self, name) <= 90.0:
                raise ValueError(f"QualityGates.{name} must be in (0, 90] degrees, got {getattr(self, name)}")

    def assess(
        self,
        box_size: float,
        score: float,
        crop: np.ndarray,
        landmarks: np.ndarray,
        pose_reference: PoseReference = TEMPLATE_REFERENCE,
    ) -> tuple[str, float]:
        """(issue, quality) of one face; quality is the product of per-gate factors in [0, 1].
        `pose_reference`: the detector's frontal landmark geometry (memory_node.quality.POSE_REFERENCES)."""
        sharp = sharpness(crop)
        yaw, pitch = pose_angles(landmarks, pose_reference)
        if box_size < self.min_size_px:
            issue = "too_small"
        elif score < self.min_score:
            issue = "low_score"
        elif sharp < self.min_sharpness:
            issue = "blurry"
        elif yaw > self.max_yaw_deg or pitch > self.max_pitch_deg:
            issue = "pose"
        else:
            issue = ""
        size_factor = min(1.0, box_size / (2.0 * self.min_size_px)) if self.min_size_px else 1.0
        sharp_factor = min(1.0, sharp / (2.0 * self.min_sharpness)) if self.min_sharpness else 1.0
        pose_factor = max(0.0, 1.0 - yaw / 90.0) * max(0.0, 1.0 - pitch / 90.0)
        return issue, float(np.clip(size_factor * score * sharp_factor * pose_factor, 0.0, 1.0))


class FacePipeline(Protocol):
    """What the memory node needs from a face backend."""

    backend: str  # "insightface" | "opencv"
    model_name: str  # embedding model id; similarity thresholds are per model
    dim: int  # embedding dimension
    pose_reference: PoseReference  # the detector's frontal landmark geometry (the pose gate's reference)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        """Detection + landmarks + quality gates (no embeddings), best score first."""
        ...

    def embed(self, bgr: np.ndarray, faces: list[Face]) -> None:
        """Fill `.embedding` of the faces with issue == "" (one batch)."""
        ...

    def process(self, bgr: np.ndarray) -> list[Face]:
        """detect + embed."""
        ...

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, dim) L2-normalised float32 embeddings of aligned 112×112 BGR crops."""
        ...


def check_bgr(image: np.ndarray) -> None:
    """Raise ValueError unless the image is a non-empty H×W×3 uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an H×W×3 uint8 BGR image, got shape {shape} dtype {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def onnx_session(model: Path, providers: Sequence[Provider]) -> ort.InferenceSession:
    """A session on the requested providers; ProviderError when one is missing or does not load."""
    providers = list(providers)
    if not providers:
        raise ProviderError("no onnxruntime execution provider requested (e.g. CPUExecutionProvider)")
    available = ort.get_available_providers()
    missing = [provider_name(p) for p in providers if provider_name(p) not in available]
    if missing:
        raise ProviderError(
            f"onnxruntime {ort.__version__} here has no {', '.join(missing)} "
            f"(available: {', '.join(available)}); "
            "install the matching onnxruntime build (onnxruntime-gpu, or JetPack's wheel for TensorRT) "
            "or request CPUExecutionProvider"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the registry models trigger harmless initializer warnings
    # No busy-waiting of idle pool threads after a run: on a robot several nodes share the CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model), sess_options=options, providers=providers)
    # onnxruntime falls back to the CPU silently when a provider's libraries (CUDA, cuDNN, TensorRT)
    # fail to load: refuse instead of reporting CPU numbers as GPU ones.
    not_loaded = [provider_name(p) for p in providers if provider_name(p) not in session.get_providers()]
    if not_loaded:
        raise ProviderError(
            f"onnxruntime could not load {', '.join(not_loaded)} for {model.name} (session runs on "
            f"{', '.join(session.get_providers())}): check the CUDA / cuDNN / TensorRT libraries it needs"
        )
    return session


class _AlignedPipeline(ABC):
    """Shared gates/alignment/batching; subclasses supply `_raw_detections` and `embed_aligned`."""

    backend: str
    model_name: str
    dim: int
    pose_reference: PoseReference  # where the backend's detector puts the landmarks on a frontal face

    def __init__(self, gates: QualityGates) -> None:
        self.gates = gates

    @abstractmethod
    def _raw_detections(self, bgr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """(box x1y1x2y2, keypoints image-left first (5, 2), score) per face, best first."""

    @abstractmethod
    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, dim) L2-normalised float32 embeddings of aligned 112×112 BGR crops."""

    def detect(self, bgr: np.ndarray) -> list[Face]:
        check_bgr(bgr)
        faces = []
        for box, keypoints, score in self._raw_detections(bgr):
            landmarks = from_image_order(keypoints)
            crop = align_face(bgr, landmarks)
            size = float(min(box[2] - box[0], box[3] - box[1]))
            issue, quality = self.gates.assess(size, score, crop, landmarks, self.pose_reference)
            box_tuple = tuple(float(v) for v in box)
            faces.append(Face(box_tuple, landmarks, float(np.clip(score, 0.0, 1.0)), quality, issue))
        return faces

    def embed(self, bgr: np.ndarray, faces: list[Face]) -> None:
        check_bgr(bgr)
        good = [face for face in faces if face.issue == ""]
        if not good:
            return
        embeddings = self.embed_aligned([align_face(bgr, face.landmarks) for face in good])
        for face, embedding in zip(good, embeddings, strict=True):
            face.embedding = embedding

    def process(self, bgr: np.ndarray) -> list[Face]:
        faces = self.detect(bgr)
        self.embed(bgr, faces)
        return faces


def _check_crops(crops: list[np.ndarray]) -> None:
    for index, crop in enumerate(crops):
        shape, dtype = getattr(crop, "shape", None), getattr(crop, "dtype", None)
        if not isinstance(crop, np.ndarray) or shape != (CROP_SIZE, CROP_SIZE, 3) or dtype != np.uint8:
            raise ValueError(
                f"crop {index}: expected a {CROP_SIZE}×{CROP_SIZE}×3 uint8 aligned BGR crop, "
                f"got shape {shape} dtype {dtype}"
            )


class InsightFacePipeline(_AlignedPipeline):
    """SCRFD-500M + ArcFace MobileFaceNet (w600k_mbf, 512-d) on onnxruntime."""

    backend = "insightface"
    model_name = "w600k_mbf"
    default_models = ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx")
    pose_reference = POSE_REFERENCES["scrfd"]

    def __init__(self, providers: Sequence[Provider], gates: QualityGates, models: tuple[Path, Path]) -> None:
        super().__init__(gates)
        self.providers = list(providers)
        detector_session = onnx_session(models[0], providers)
        self._detector = ScrfdDetector(detector_session, DETECT_INPUT_SIZE, DETECT_SCORE, NMS_IOU)
        self._recogniser = onnx_session(models[1], providers)
        self._recogniser_input = self._recogniser.get_inputs()[0].name
        self.dim = int(self._recogniser.get_outputs()[0].shape[-1])

    def _raw_detections(self, bgr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        return [(d.box, d.keypoints, d.score) for d in self._detector(bgr)]

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        _check_crops(crops)
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        blob = cv2.dnn.blobFromImages(crops, 1.0 / 127.5, (CROP_SIZE, CROP_SIZE), (127.5,) * 3, swapRB=True)
        (features,) = self._recogniser.run(None, {self._recogniser_input: blob})
        return l2_normalise(features)


class OpenCvPipeline(_AlignedPipeline):
    """YuNet + SFace (128-d) through OpenCV's DNN module (CPU)."""

    backend = "opencv"
    model_name = "sface"
    default_models = ("yunet.onnx", "sface.onnx")
    pose_reference = POSE_REFERENCES["yunet"]
    dim = 128

    def __init__(self, providers: Sequence[Provider], gates: QualityGates, models: tuple[Path, Path]) -> None:
        if [provider_name(p) for p in providers] != ["CPUExecutionProvider"]:
            raise ProviderError(
                "the opencv backend runs on OpenCV's CPU DNN module, not onnxruntime; "
                f"providers {list(providers)} cannot be used with it "
                "(request ('CPUExecutionProvider',) or the insightface backend)"
            )
        super().__init__(gates)
        self.providers = ["CPUExecutionProvider"]
        size = (DETECT_INPUT_SIZE, DETECT_INPUT_SIZE)
        self._detector = cv2.FaceDetectorYN.create(
            str(models[0]), "", size, DETECT_SCORE, NMS_IOU, top_k=5000
        )
        self._recogniser = cv2.FaceRecognizerSF.create(str(models[1]), "")
        self._lock = threading.Lock()  # OpenCV's DNN nets are not safe to call from several threads

    def _raw_detections(self, bgr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        height, width = bgr.shape[:2]
        scale = min(1.0, DETECT_INPUT_SIZE / max(height, width))
        small = bgr
        if scale < 1.0:
            small = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))))
        with self._lock:
            self._detector.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self._detector.detect(small)
        if rows is None:
            return []
        detections = []
        for row in sorted(rows, key=lambda r: -r[14]):
            x, y, w, h = row[:4] / scale
            keypoints = row[4:14].reshape(5, 2) / scale
            detections.append((np.array([x, y, x + w, y + h]), keypoints, float(row[14])))
        return detections

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        _check_crops(crops)
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        # FaceRecognizerSF takes one crop per call (its network input is fixed at batch 1).
        with self._lock:
            features = [self._recogniser.feature(crop).reshape(1, -1) for crop in crops]
        return l2_normalise(np.vstack(features))


def create_pipeline(
    backend: str = "insightface",
    providers: Sequence[Provider] = ("CPUExecutionProvider",),
    gates: QualityGates = QualityGates(),  # frozen, so a shared default is safe
    detector_model: str = "",
    recognizer_model: str = "",
) -> FacePipeline:
    """Load the backend's models on the given onnxruntime providers. A model is an asset name or a
    file path (humanoid_common.assets.model_file); empty: the backend's own model from the assets.
    A recognizer file must be the backend's model: the similarity thresholds are calibrated for it."""
    pipelines = {"insightface": InsightFacePipeline, "opencv": OpenCvPipeline}
    pipeline = pipelines.get(backend)
    if pipeline is None:
        raise ValueError(f"unknown face backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    models = (
        model_file(detector_model or pipeline.default_models[0], "detector_model"),
        model_file(recognizer_model or pipeline.default_models[1], "recognizer_model"),
    )
    return pipeline(providers, gates, models)
