"""config/tabletop_arm.urdf against the simulator it describes: joint limits (= config/vla_limits.yaml,
read through vla_node's URDF loader), kinematics (= tabletop_sim/world.py) and the camera frame
(= the simulator's rendering), and a well-formed link tree."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

from humanoid_common.config import config_dir
from tabletop_sim.render import Camera
from tabletop_sim.world import JOINT_NAMES, ArmSpec, forward_kinematics
from vla_node.safety import load_limits_urdf, load_limits_yaml

URDF = config_dir() / "tabletop_arm.urdf"


def joints() -> dict[str, ET.Element]:
    return {j.get("name"): j for j in ET.parse(URDF).getroot().iter("joint")}


def origin(joint: ET.Element) -> np.ndarray:
    """The joint's <origin xyz rpy> as a 4x4 transform (URDF: R = Rz(yaw) Ry(pitch) Rx(roll))."""
    element = joint.find("origin")
    xyz = [float(v) for v in element.get("xyz", "0 0 0").split()]
    roll, pitch, yaw = (float(v) for v in element.get("rpy", "0 0 0").split())
    transform = np.eye(4)
    transform[:3, :3] = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)
    transform[:3, 3] = xyz
    return transform


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def turn_z(angle: float) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = rot_z(angle)
    return transform


def test_urdf_limits_equal_the_vla_limits_file_and_the_simulator():
    from_urdf = load_limits_urdf(URDF)
    from_yaml = load_limits_yaml(config_dir() / "vla_limits.yaml")
    assert list(from_urdf) == list(JOINT_NAMES) == list(from_yaml)
    for name in JOINT_NAMES:
        urdf, limits = from_urdf[name], from_yaml[name]
        assert (urdf.lower, urdf.upper, urdf.velocity) == (limits.lower, limits.upper, limits.velocity), name
        assert urdf.acceleration == math.inf  # URDF has none; the YAML file keeps it
    arm = ArmSpec()
    assert [from_urdf[n].lower for n in JOINT_NAMES] == list(arm.position_lower)
    assert [from_urdf[n].upper for n in JOINT_NAMES] == list(arm.position_upper)
    assert [from_urdf[n].velocity for n in JOINT_NAMES] == list(arm.velocity_limit)


@pytest.mark.parametrize("q", [(0.0, 0.0), (math.pi / 2, 2.5), (-1.0, -2.0), (3.0, 1.2)])
def test_urdf_kinematics_put_the_tool_where_the_simulator_does(q):
    j = joints()
    assert all(j[n].find("axis").get("xyz").split() == ["0", "0", "1"] for n in JOINT_NAMES)
    tool = (
        origin(j["shoulder_joint"])
        @ turn_z(q[0])
        @ origin(j["elbow_joint"])
        @ turn_z(q[1])
        @ origin(j["tool_joint"])
    )
    _, end_effector = forward_kinematics(np.array(q), ArmSpec())
    np.testing.assert_allclose(tool[:3, 3], [*end_effector, 0.0], atol=1e-12)


def test_sim_camera_frame_projects_the_table_as_the_simulator_renders_it():
    sim = yaml.safe_load((config_dir() / "sim.yaml").read_text())["tabletop_sim"]["ros__parameters"]
    camera_joint = next(j for j in joints().values() if j.find("child").get("link") == sim["camera_frame"])
    camera_pose = origin(camera_joint)  # optical frame in base_link
    camera = Camera(sim["image_width"], sim["image_height"])
    k = camera.intrinsics()
    for point in [(0.0, 0.0), (0.3, 0.2), (-0.4, 0.5), (0.5, -0.1)]:
        in_camera = np.linalg.inv(camera_pose) @ [*point, 0.0, 1.0]
        u, v, w = k @ in_camera[:3]
        assert (u / w, v / w) == pytest.approx(camera.to_pixel(point), abs=1.0), point


def test_links_form_one_tree_rooted_at_base_link():
    root = ET.parse(URDF).getroot()
    links = {link.get("name") for link in root.iter("link")}
    children = [j.find("child").get("link") for j in root.iter("joint")]
    parents = {j.find("parent").get("link") for j in root.iter("joint")}
    assert len(children) == len(set(children)), "a link with two parents"
    assert set(children) | parents <= links, "a joint names a missing link"
    assert links - set(children) == {"base_link"}, "exactly one root"
