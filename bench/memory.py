#!/usr/bin/env python3
"""memory_node benchmarks: a table on stdout and JSON (default out/bench/memory.json).

Sections (run all, or pick with --section):

- ``faces``: per backend, detection latency on a 640×480 frame with 1 and with 5 faces, embedding
  latency for batches of 1 and 8 aligned crops (also per face), and detect + embed per frame.

Each section is a function ``(args, progress) -> list[Row]`` registered in ``SECTIONS``; rows share one
table and one JSON writer. To add one: write ``def match_section(args, progress)`` that returns
``Row(section, measure, params, time_ms(fn, repeats, warmup) or your own stats dict, note)`` items
(milliseconds in keys ending ``_ms``; extra numbers such as recall go in ``stats`` too), honour
``args.quick``, and add it to ``SECTIONS``.

Only numpy, OpenCV and onnxruntime are imported for the face section (no ROS), so it runs on a GPU
machine with just those and the face assets (``HUMANOID_ASSETS``).

    python bench/memory.py [--quick] [--device cpu|cuda:0] [--section faces] [--json PATH]
    python bench/memory.py --export-assets out/face_assets   # the ~30 MB of assets to carry to a GPU host

``--device cuda:N`` runs the insightface backend on onnxruntime's CUDAExecutionProvider (device N);
where that provider is missing, or for the opencv backend (OpenCV's CPU DNN), the rows say
"unavailable" with the reason instead of measuring something else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runs from a bare checkout too (GPU machine without the editable install)

import memory_tiers  # noqa: E402  (bench/ is on sys.path when this runs as a script)

from humanoid_common.assets import asset_index, asset_path  # noqa: E402
from memory_node.align import align_face  # noqa: E402
from memory_node.faces import BACKENDS, FacePipeline, ProviderError, create_pipeline  # noqa: E402

DEFAULT_JSON = REPO / "out" / "bench" / "memory.json"
FRAME_SIZE = (640, 480)
PORTRAITS = ("face_obama.jpg", "face_biden.jpg", "faces_yaoming.jpg", "face_obama2.jpg", "face_obama3.jpg")
FACE_MODELS = ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx", "yunet.onnx", "sface.onnx")


@dataclass
class Row:
    """One measured quantity; `stats` in milliseconds, empty when `note` says why it was not measured."""

    section: str
    name: str
    params: dict[str, Any]
    stats: dict[str, float] = field(default_factory=dict)
    note: str = ""


def time_ms(fn: Callable[[], object], repeats: int, warmup: int) -> dict[str, float]:
    """Median / p90 / mean / min of `repeats` timed calls after `warmup` untimed ones, in ms."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
        "mean_ms": statistics.fmean(samples),
        "min_ms": samples[0],
        "n": len(samples),
    }


# --------------------------------------------------------------------------------------------------
# Section: faces


def head_crops() -> list[np.ndarray]:
    """The bundled portraits cut around the largest face (found by the opencv backend), head and shoulders."""
    finder = create_pipeline("opencv")
    crops = []
    for name in PORTRAITS:
        image = cv2.imread(str(asset_path(name)))
        face = max(finder.detect(image), key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        x1, y1, x2, y2 = face.box
        pad_x, pad_y = 0.5 * (x2 - x1), 0.6 * (y2 - y1)
        top, left = int(max(0, y1 - pad_y)), int(max(0, x1 - pad_x))
        crops.append(image[top : int(y2 + pad_y), left : int(x2 + pad_x)])
    return crops


def composite_frame(crops: list[np.ndarray], faces: int) -> np.ndarray:
    """A 640×480 frame with `faces` head crops side by side, each scaled to fit its tile (aspect kept)."""
    width, height = FRAME_SIZE
    frame = np.full((height, width, 3), 110, np.uint8)
    tile_w = width // faces
    for index in range(faces):
        crop = crops[index % len(crops)]
        scale = min(tile_w / crop.shape[1], height / crop.shape[0])
        tile = cv2.resize(
            crop, (int(crop.shape[1] * scale), int(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
        top = (height - tile.shape[0]) // 2
        left = index * tile_w + (tile_w - tile.shape[1]) // 2
        frame[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return frame


def measure_pipeline(
    pipeline: FacePipeline,
    frames: dict[int, np.ndarray],
    base: dict[str, Any],
    timing: tuple[int, int],
    progress: Callable[[str], None],
) -> list[Row]:
    rows = []
    for count, frame in frames.items():
        found = sum(face.issue == "" for face in pipeline.detect(frame))
        params = {**base, "faces_in_frame": count, "good_faces": found}
        progress(f"faces/{pipeline.backend}: detect and detect+embed, {count} face(s)")
        rows.append(
            Row("faces", "detect per frame", params, time_ms(partial(pipeline.detect, frame), *timing))
        )
        rows.append(
            Row("faces", "detect+embed per frame", params, time_ms(partial(pipeline.process, frame), *timing))
        )
    five = frames[max(frames)]
    aligned = [align_face(five, face.landmarks) for face in pipeline.detect(five)]
    aligned = (aligned * 8)[:8]
    for batch in (1, 8):
        progress(f"faces/{pipeline.backend}: embed batch {batch}")
        stats = time_ms(partial(pipeline.embed_aligned, aligned[:batch]), *timing)
        stats["per_face_median_ms"] = stats["median_ms"] / batch
        rows.append(Row("faces", "embed aligned crops", {**base, "batch": batch}, stats))
    return rows


def faces_section(args: argparse.Namespace, progress: Callable[[str], None]) -> list[Row]:
    timing = (5, 1) if args.quick else (50, 5)  # (repeats, warm-up calls)
    if args.device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        device_id = int(args.device.partition(":")[2] or 0)
        providers = [("CUDAExecutionProvider", {"device_id": device_id})]
    crops = head_crops()
    frames = {n: composite_frame(crops, n) for n in (1, 5)}
    rows: list[Row] = []
    for backend in BACKENDS:
        base = {"backend": backend, "device": args.device}
        try:
            pipeline = create_pipeline(backend, providers=providers)
        except ProviderError as error:
            rows.append(Row("faces", "all", base, note=f"unavailable: {error}"))
            continue
        rows += measure_pipeline(pipeline, frames, {**base, "model": pipeline.model_name}, timing, progress)
    return rows


def embed_torch_section(args: argparse.Namespace, progress: Callable[[str], None]) -> list[Row]:
    """ArcFace (w600k_mbf.onnx) run by PyTorch (converted with onnx2torch) on `--device`.

    For GPUs whose onnxruntime has no CUDA provider (the lent benchmark GPU's build): the same graph
    and weights, checked against onnxruntime on the CPU (cosine of the embeddings) before timing.
    """
    try:
        import onnx
        import onnx2torch
        import torch
    except ImportError as error:
        return [Row("embed_torch", "all", {"device": args.device}, note=f"unavailable: {error}")]
    timing = (5, 1) if args.quick else (50, 5)
    reference = create_pipeline("insightface")
    aligned = []
    for name in PORTRAITS:
        image = cv2.imread(str(asset_path(name)))
        aligned += [align_face(image, face.landmarks) for face in reference.detect(image) if face.issue == ""]
    device = torch.device(args.device)
    model = onnx2torch.convert(onnx.load(str(asset_path("w600k_mbf.onnx")))).eval().to(device)
    rows = []
    for half in (False, True) if device.type == "cuda" else (False,):
        net = model.half() if half else model.float()
        for batch in (1, 8, 32):
            crops = [aligned[i % len(aligned)] for i in range(batch)]
            blob = cv2.dnn.blobFromImages(crops, 1.0 / 127.5, (112, 112), (127.5,) * 3, swapRB=True)
            tensor = torch.from_numpy(blob).to(device, torch.float16 if half else torch.float32)

            def run(net=net, tensor=tensor) -> torch.Tensor:
                with torch.inference_mode():
                    out = net(tensor)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                return out

            features = run().float().cpu().numpy()
            features /= np.linalg.norm(features, axis=1, keepdims=True)
            cosine = float(np.min(np.sum(features * reference.embed_aligned(crops), axis=1)))
            progress(f"embed_torch: {'fp16' if half else 'fp32'} batch {batch} on {device}")
            stats = time_ms(run, *timing)
            stats["per_face_ms"] = stats["median_ms"] / batch
            params = {"model": "w600k_mbf", "device": args.device, "precision": "fp16" if half else "fp32",
                      "batch": batch, "min_cosine_vs_onnxruntime": round(cosine, 5)}  # fmt: skip
            rows.append(Row("embed_torch", "embed aligned crops (torch)", params, stats))
    return rows


SECTIONS: dict[str, Callable[[argparse.Namespace, Callable[[str], None]], list[Row]]] = {
    "faces": faces_section,
    "embed_torch": embed_torch_section,
}
SECTIONS.update(memory_tiers.sections(Row, time_ms, head_crops, composite_frame))


# --------------------------------------------------------------------------------------------------
# Shared output


def print_table(rows: list[Row]) -> None:
    """One line per row: section, name, parameters, then median / p90 (and per face) or the note."""
    print(f"\n{'section':<8} {'measure':<24} {'parameters':<58} {'median ms':>10} {'p90 ms':>9}  extra")
    for row in rows:
        params = " ".join(f"{k}={v}" for k, v in row.params.items())
        if not row.stats:
            print(f"{row.section:<8} {row.name:<24} {params:<58} {row.note}")
            continue
        extra = " ".join(
            f"{k}={v:.3f}"
            for k, v in row.stats.items()
            if k not in {"median_ms", "p90_ms", "mean_ms", "min_ms", "n"}
        )
        median, p90 = row.stats["median_ms"], row.stats["p90_ms"]
        print(f"{row.section:<8} {row.name:<24} {params:<58} {median:>10.3f} {p90:>9.3f}  {extra}")


def write_json(path: Path, args: argparse.Namespace, rows: list[Row], started: str) -> None:
    document = {
        "config": {k: str(v) for k, v in vars(args).items()},
        "host": {
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__,
            "onnxruntime_providers": onnxruntime.get_available_providers(),
        },
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": [asdict(row) for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))


def export_face_assets(folder: Path) -> None:
    """Copy the assets the faces section needs (about 30 MB) and their index, to carry to another machine."""
    index = asset_index()
    folder.mkdir(parents=True, exist_ok=True)
    subset = {}
    for name in (*FACE_MODELS, *PORTRAITS):
        shutil.copyfile(asset_path(name), folder / index[name]["path"])
        subset[name] = index[name]
    (folder / "index.json").write_text(json.dumps(subset, indent=2))
    print(f"copied {len(subset)} assets to {folder}; use them with HUMANOID_ASSETS={folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="memory_node benchmarks (table + JSON)")
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run, not numbers")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (onnxruntime CUDA provider)")
    parser.add_argument("--section", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument(
        "--hnsw-max", type=int, default=100_000, help="largest gallery the match section indexes with HNSW"
    )
    parser.add_argument(
        "--export-assets", type=Path, metavar="DIR", help="copy the face assets to DIR and exit"
    )
    args = parser.parse_args(argv)
    if args.export_assets:
        export_face_assets(args.export_assets)
        return 0
    if args.device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", args.device):
        parser.error(f"--device must be cpu or cuda:N, got {args.device!r}")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows: list[Row] = []
    for name in args.section:
        rows += SECTIONS[name](args, lambda message: print(f"[bench] {message}", file=sys.stderr, flush=True))
    print_table(rows)
    write_json(args.json, args, rows, started)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
