#!/usr/bin/env python3
"""Build the replay bags from bundled data into .cache/bags (idempotent; docs/replay.md).

- street: the first 100 frames of vtest.avi at 640x480, bgr8 Image + CameraInfo stamped at 10 fps.
- faces: the people scene of test/data/faces_scene.yaml (tabletop_sim.people) at 5 fps, bgr8.
- sim_gap: a tabletop_sim episode, the expert moving the arm from object to object: rgb8 Image +
  CameraInfo at 30 Hz and JointState at 100 Hz, with no image from 2 s to 3 s (joint states go on).

Stamps (header and bag time) start at START_S, so a bag and test/data/street_expected.json agree
frame by frame. A bag is rebuilt only when the hash of its inputs (this tool, the bag writer, the
scene script and code it renders, the assets' sha256) differs from the one in .cache/bags/index.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from video_to_bag import (  # noqa: E402 (tools/ is not a package)
    OFFERED_QOS,
    CameraWriter,
    MessageFactory,
    read_frames,
    resize_to_width,
    write_frames,
)

from humanoid_common.assets import AssetError, asset_index, asset_path  # noqa: E402
from humanoid_common.bags import BagError, add_topic, open_writer, typestore  # noqa: E402
from tabletop_sim.episode import LoopSpec  # noqa: E402
from tabletop_sim.expert import expert_chunk, goal_joints  # noqa: E402
from tabletop_sim.people import PHOTOS, PeopleScene, SceneError, load_script  # noqa: E402
from tabletop_sim.render import Camera, render  # noqa: E402
from tabletop_sim.world import JOINT_NAMES, World  # noqa: E402

DEFAULT_OUT = ROOT / ".cache" / "bags"
INDEX = "index.json"
START_S = 1_700_000_000  # first stamp of every bag (2023-11-14), seconds since the epoch
START_NS = START_S * 1_000_000_000

STREET_VIDEO = "vtest.avi"
STREET_FRAMES = 100
STREET_WIDTH = 640
STREET_FPS = 10.0  # vtest.avi's own rate

FACES_SCRIPT = ROOT / "test" / "data" / "faces_scene.yaml"
FACES_FPS = 5.0

JOINT_STATE = "sensor_msgs/msg/JointState"
SIM_SEED = 3
SIM_DURATION_S = 5.0
SIM_GAP_S = (2.0, 3.0)  # no camera image in [start, end)
SIM_PHYSICS_HZ = 300  # a multiple of both rates below: every stamp falls on a physics step
SIM_CAMERA_HZ = 30
SIM_JOINT_HZ = 100
SIM_CONTROL_PERIOD_S = LoopSpec().control_period_s
SIM_TARGET_PERIOD_S = 1.25  # the expert turns to the next object this often: the arm keeps moving
SIM_SOURCES = [ROOT / "tabletop_sim" / f"{name}.py" for name in ("world", "render", "expert", "episode")]

COMMON_INPUTS = (
    Path(__file__).resolve(),
    ROOT / "tools" / "video_to_bag.py",
    ROOT / "humanoid_common" / "bags.py",
)


@dataclass(frozen=True)
class BagSpec:
    """One bag: what its content depends on, and how to write it (returns the message count)."""

    name: str
    files: Callable[[], list[Path]]
    assets: Callable[[], list[str]]
    build: Callable[[Path], int]


# --- street ------------------------------------------------------------------------------------


def build_street(path: Path) -> int:
    capture = cv2.VideoCapture(str(asset_path(STREET_VIDEO)))
    try:
        frames = (resize_to_width(f, STREET_WIDTH) for f in read_frames(capture, STREET_FRAMES))
        written, _ = write_frames(
            path, frames, MessageFactory(typestore(), "camera", "bgr8"), fps=STREET_FPS, start_ns=START_NS,
            total=STREET_FRAMES, custom_data={"humanoid_stack.source_video": STREET_VIDEO}, desc="street",
        )  # fmt: skip
    finally:
        capture.release()
    return 2 * written


# --- faces -------------------------------------------------------------------------------------


def faces_assets() -> list[str]:
    """The assets the scene renders: its background video and the photos of who appears."""
    script = load_script(FACES_SCRIPT)
    return [script.background, *sorted({PHOTOS[a.photo].asset for a in script.appearances})]


def build_faces(path: Path) -> int:
    script = load_script(FACES_SCRIPT)
    scene = PeopleScene(script)
    count = round(script.duration_s * FACES_FPS)
    frames = (scene.frame(i / FACES_FPS) for i in range(count))
    factory = MessageFactory(typestore(), "head_camera", "bgr8")  # as tabletop_sim/people_node.py
    written, _ = write_frames(
        path, frames, factory, fps=FACES_FPS, start_ns=START_NS, total=count,
        custom_data={"humanoid_stack.scene_script": FACES_SCRIPT.relative_to(ROOT).as_posix()}, desc="faces",
    )  # fmt: skip
    return 2 * written


# --- sim_gap -----------------------------------------------------------------------------------


def joint_state(store: Any, factory: MessageFactory, world: World, stamp_ns: int) -> Any:
    """The sim's /joint_states message (positions and velocities, no efforts)."""
    return store.types[JOINT_STATE](
        header=factory.header(stamp_ns),
        name=list(JOINT_NAMES),
        position=world.q.copy(),
        velocity=world.qd.copy(),
        effort=np.zeros(0),
    )


def expert_step(world: World, t: float, dt: float) -> None:
    """One physics step of `dt` towards the object the expert goes to at `t`. The command is the
    expert's target one control period ahead, as in tabletop_sim.episode: the joints lag behind it."""
    target = world.objects[int(t / SIM_TARGET_PERIOD_S) % len(world.objects)].name
    world.set_command(expert_chunk(world.q, goal_joints(world, target), 1, SIM_CONTROL_PERIOD_S)[0])
    world.step(dt)


def build_sim_gap(path: Path) -> int:
    store = typestore()
    world = World(seed=SIM_SEED)
    camera = Camera()  # the sim node's default 320x240
    factory = MessageFactory(store, "sim_camera", "rgb8", k=camera.intrinsics())  # as tabletop_sim/node.py
    steps = round(SIM_DURATION_S * SIM_PHYSICS_HZ)
    messages = 0
    with open_writer(path) as writer, tqdm(total=steps, unit="step", desc="sim_gap", file=sys.stderr) as bar:
        writer.set_custom_data("humanoid_stack.camera_gap_s", f"{SIM_GAP_S[0]:g}-{SIM_GAP_S[1]:g}")
        images = CameraWriter(writer, factory)
        joints = add_topic(writer, "/joint_states", JOINT_STATE, store, [OFFERED_QOS])
        for step in range(steps):
            t = step / SIM_PHYSICS_HZ
            stamp_ns = START_NS + round(t * 1e9)
            if step % (SIM_PHYSICS_HZ // SIM_CAMERA_HZ) == 0 and not SIM_GAP_S[0] <= t < SIM_GAP_S[1]:
                # render() draws RGB; the factory takes OpenCV's BGR order and stores rgb8 like the sim
                images.write(cv2.cvtColor(render(world, camera), cv2.COLOR_RGB2BGR), stamp_ns)
                messages += 2
            if step % (SIM_PHYSICS_HZ // SIM_JOINT_HZ) == 0:
                writer.write(
                    joints,
                    stamp_ns,
                    store.serialize_cdr(joint_state(store, factory, world, stamp_ns), JOINT_STATE),
                )
                messages += 1
            expert_step(world, t, 1.0 / SIM_PHYSICS_HZ)
            bar.update()
    return messages


BAGS: dict[str, BagSpec] = {
    spec.name: spec
    for spec in (
        BagSpec("street", lambda: [], lambda: [STREET_VIDEO], build_street),
        BagSpec(
            "faces", lambda: [FACES_SCRIPT, ROOT / "tabletop_sim" / "people.py"], faces_assets, build_faces
        ),
        BagSpec("sim_gap", lambda: SIM_SOURCES, lambda: [], build_sim_gap),
    )
}


# --- index and driver --------------------------------------------------------------------------


def inputs_hash(spec: BagSpec) -> str:
    """sha256 over the bag's input files (contents) and assets (their indexed sha256)."""
    digest = hashlib.sha256(spec.name.encode())
    for path in [*COMMON_INPUTS, *spec.files()]:
        digest.update(
            f"\0file {path.relative_to(ROOT)}\0".encode() + hashlib.sha256(path.read_bytes()).digest()
        )
    index = asset_index()
    for name in spec.assets():
        asset_path(name)  # a missing asset fails here, with the message to run make setup
        digest.update(f"\0asset {name}\0{index[name]['sha256']}".encode())
    return digest.hexdigest()


def read_index(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / INDEX).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_index(out: Path, index: dict[str, Any]) -> None:
    partial = out / f"{INDEX}.partial"
    partial.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    partial.replace(out / INDEX)


def ensure(spec: BagSpec, out: Path, force: bool) -> None:
    """Build `spec` into out/<name> unless it is current.

    The bag is written beside its final place and moved there when complete, so an interrupted
    build never leaves a partial bag that looks current.
    """
    digest = inputs_hash(spec)
    bag = out / spec.name
    entry = read_index(out).get(spec.name, {})
    if not force and entry.get("inputs_sha256") == digest and (bag / "metadata.yaml").is_file():
        print(f"{spec.name}: up to date ({bag})")
        return
    partial = out / f"{spec.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    messages = spec.build(partial)
    shutil.rmtree(bag, ignore_errors=True)
    partial.rename(bag)
    index = read_index(out)
    index[spec.name] = {
        "inputs_sha256": digest,
        "messages": messages,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_index(out, index)
    print(f"{spec.name}: wrote {messages} messages to {bag} in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "bags", nargs="*", metavar="BAG", help=f"bags to build: {', '.join(BAGS)} (default all)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder of the bags (default {DEFAULT_OUT.relative_to(ROOT)})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    unknown = [name for name in args.bags if name not in BAGS]
    if unknown:
        parser.error(f"unknown bag(s) {', '.join(unknown)}; choose from {', '.join(BAGS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.bags or BAGS:
            ensure(BAGS[name], args.out, args.force)
    except (AssetError, SceneError, BagError) as error:
        print(f"build_bags: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
