#!/usr/bin/env python3
"""Export a YOLO .pt model for perception_node: ONNX (here, any machine) or a TensorRT engine (Jetson).

    python tools/export_model.py .cache/assets/yolo11n-pose.pt --format onnx [--imgsz 640] [-o out/models]
    python tools/export_model.py yolo11n-pose.pt --format engine --half   # on the Jetson only

Uses Ultralytics' own export. The TensorRT path (--format engine) needs TensorRT and a CUDA GPU, which
exist only on the robot: it was NOT run in this project's development environment (TensorRT cannot be
installed there); build the engine on the Jetson that runs it, since engines are specific to the GPU and
TensorRT version. Set the node's `model` parameter to the file printed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install exporters behind the user's back


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="the .pt model to export")
    parser.add_argument("--format", choices=("onnx", "engine"), default="onnx",
                        help="onnx (default) or engine = TensorRT (Jetson only; not run here)")  # fmt: skip
    parser.add_argument("--imgsz", type=int, default=640, help="input size in pixels (default 640)")
    parser.add_argument("--half", action="store_true", help="FP16 (engine only)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic input size (onnx)")
    parser.add_argument("--device", default=None, help="export device, e.g. cuda:0 (engine needs a GPU)")
    parser.add_argument("-o", "--output-dir", help="move the exported file here (default: beside the .pt)")
    args = parser.parse_args(argv)

    source = Path(args.model)
    if source.suffix != ".pt" or not source.is_file():
        parser.error(f"{source} is not an existing .pt file")
    if args.half and args.format != "engine":
        parser.error("--half applies to --format engine only (an FP16 ONNX model runs slower on CPU)")
    if args.format == "engine":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            print("TensorRT is not installed here: build the engine on the Jetson (JetPack ships TensorRT).",
                  file=sys.stderr)  # fmt: skip
            return 2

    from ultralytics import YOLO

    print(f"exporting {source} to {args.format} (imgsz {args.imgsz}) ...", flush=True)
    options = {"format": args.format, "imgsz": args.imgsz, "dynamic": args.dynamic}
    if args.half:
        options["quantize"] = 16
    if args.device:
        options["device"] = args.device
    exported = Path(YOLO(str(source)).export(**options))
    if args.output_dir:
        target = Path(args.output_dir) / exported.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(exported), target)
        exported = target
    print(f"done: {exported}\nuse it with: perception_node --ros-args -p model:={exported.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
