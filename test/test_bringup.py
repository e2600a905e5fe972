"""Bringup cores without ROS: profiles, the process supervisor, the governor's decisions, the platform
readers, the demo's video frame and report; and the governor node over ROS (integration)."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from std_msgs.msg import Header

from harness import wait_for
from humanoid_bringup.demo_report import DemoStats, EventRecord, render_report
from humanoid_bringup.demo_video import HEIGHT, WIDTH, Face, Scene, compose
from humanoid_bringup.governor import MAX_CONTROL_RATE_HZ, Governor, GovernorConfig, MissCounter, Sample
from humanoid_bringup.platform_state import CpuMeter, PlatformInfo, temperatures_c
from humanoid_bringup.profiles import NODES, ProfileError, available_profiles, load_profile, ros_arguments
from humanoid_bringup.supervisor import ChildSpec, Supervisor
from humanoid_common.config import EXIT_CANNOT_START
from humanoid_common.validation import InvalidMessageError
from perception_node.detector import Detection
from tabletop_sim.episode import EpisodeResult
from tabletop_sim.people import Appearance, SceneScript

# ---------------------------------------------------------------------------------------- profiles


def test_every_shipped_profile_loads_and_names_only_declared_parameters():
    from perception_node.settings import PARAMETERS as PERCEPTION

    declared = {
        "perception_node": {spec.name for spec in PERCEPTION},
        "memory_node": set(__import__("memory_node.node", fromlist=["PARAMETERS"]).PARAMETERS),
        "vla_node": set(__import__("vla_node.node", fromlist=["PARAMETERS"]).PARAMETERS),
        "planner_node": set(__import__("planner_node.node", fromlist=["PARAMETERS"]).PARAMETERS),
        "governor": set(__import__("humanoid_bringup.governor_node", fromlist=["PARAMETERS"]).PARAMETERS),
    }
    assert set(available_profiles()) == {"orin_nano", "agx_orin", "thor", "desktop_cpu", "desktop_gpu"}
    for name in available_profiles():
        profile = load_profile(name)
        nodes = ["perception_node", "memory_node", "vla_node", "planner_node", "governor"]
        assert profile.nodes == nodes, name
        for node, values in profile.parameters.items():
            assert set(values) <= declared[node] | {"autostart"}, (name, node, set(values) - declared[node])
        rates = profile.parameters["governor"]
        assert rates["perception_rates"][0] == profile.parameters["perception_node"]["max_rate_hz"], name
        assert rates["memory_rates"][0] == profile.parameters["memory_node"]["max_rate_hz"], name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("perception_node:\n  ros__parameters: {}\n", "is not one of"),
        ("/**/percepton_node:\n  ros__parameters: {}\n", "is not one of"),
        ("/**/vla_node:\n  control_rate_hz: 24.0\n", "ros__parameters"),
        ("[1, 2]\n", "maps"),
        ("/**/vla_node: {ros__parameters: {a: 1}\n", "not valid YAML"),
    ],
)
def test_a_broken_profile_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "robot.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_unknown_profile_lists_the_choices():
    with pytest.raises(ProfileError, match="orin_nano"):
        load_profile("orin_nanoo")


def test_ros_arguments_keep_types_and_order():
    args = ros_arguments(
        [Path("/p/profile.yaml"), Path("/p/mine.yaml")],
        namespace="robot1",
        use_sim_time=True,
        log_level="warn",
        remaps={"/camera/image_raw": "/head/image"},
        parameters={"qos_file": "/q.yaml", "rates": (1.0, 2.0)},
    )
    assert args == [
        "--ros-args", "--params-file", "/p/profile.yaml", "--params-file", "/p/mine.yaml",
        "-p", "use_sim_time:=true", "-p", 'qos_file:="/q.yaml"', "-p", "rates:=[1.0, 2.0]",
        "-r", "/camera/image_raw:=/head/image", "-r", "__ns:=/robot1", "--log-level", "warn",
    ]  # fmt: skip


def test_every_node_spec_names_a_real_class():
    for spec in NODES.values():
        assert spec.node_class().__name__ == spec.class_name


# -------------------------------------------------------------------------------------- supervisor


def _child(name: str, code: str, respawn: bool = True) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", code], respawn=respawn)


def test_supervisor_respawns_a_killed_child_and_prefixes_output():
    out = io.StringIO()
    sup = Supervisor(
        [_child("sleeper", "import time; print('up', flush=True); time.sleep(60)")],
        output=out, respawn_delay_s=0.1,
    )  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(target=sup.run, args=(stop, 0.02))
    runner.start()
    try:
        wait_for(lambda: "[sleeper] up" in out.getvalue(), 20, "the child's first line")
        first = sup.pid("sleeper")
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (p := sup.pid("sleeper")) and p != first and p, 10, "the respawn")
        assert second != first
        assert sup.children["sleeper"].starts == 2
        wait_for(lambda: out.getvalue().count("[sleeper] up") == 2, 20, "the respawned child's first line")
    finally:
        stop.set()
        runner.join(30)  # the supervisor's SIGKILL comes 20 s after its SIGINT
    text = out.getvalue()
    assert "still running" not in text, text  # stopped by the SIGINT
    assert sup.pid("sleeper") is None  # stopped
    assert "[sleeper] up" in text
    assert "killed by SIGKILL" in text
    assert "respawning in 0.1 s" in text


def test_supervisor_stops_the_stack_when_a_child_cannot_start():
    sup = Supervisor(
        [_child("bad", f"raise SystemExit({EXIT_CANNOT_START})"), _child("ok", "import time; time.sleep(9)")],
        output=io.StringIO(),
    )
    assert sup.run(threading.Event(), 0.02) == 1
    assert "bad cannot start" in sup.failure
    assert sup.pid("ok") is None  # the healthy one was stopped too


def test_respawn_delay_doubles_while_a_child_keeps_dying_young():
    now = [0.0]
    sup = Supervisor(
        [_child("crash", "raise SystemExit(3)")],
        output=io.StringIO(), respawn_delay_s=1.0, max_respawn_delay_s=3.0, clock=lambda: now[0],
    )  # fmt: skip
    sup.start()
    delays = []
    for _ in range(4):
        sup.children["crash"].proc.wait(10)
        sup.poll()
        child = sup.children["crash"]
        delays.append(child.respawn_at - now[0])
        now[0] = child.respawn_at
        sup.poll()  # respawns
    sup.stop()
    assert delays == [1.0, 2.0, 3.0, 3.0]


# ---------------------------------------------------------------------------------------- governor

CONFIG = GovernorConfig(perception_rates=(5.0, 2.0, 1.0), memory_rates=(2.0, 1.0), step_s=2.0, recover_s=5.0)


def test_governor_sheds_one_level_per_step_under_pressure_and_recovers_after_calm():
    governor = Governor(CONFIG)
    assert governor.rates() == {"perception_node": 5.0, "memory_node": 2.0}
    assert not governor.update(Sample(0.0, vla_deadline_misses=0, cpu_percent=50.0))
    assert governor.update(Sample(1.0, vla_deadline_misses=3, cpu_percent=50.0))  # the VLA missed
    assert governor.reasons == ["VLA missed 3 deadlines"]
    assert governor.level == 1
    assert not governor.update(Sample(2.0, vla_deadline_misses=3, cpu_percent=95.0))  # within step_s
    assert governor.update(Sample(3.0, vla_deadline_misses=3, cpu_percent=95.0))
    assert governor.rates() == {"perception_node": 1.0, "memory_node": 1.0}  # short ladder: its last
    assert not governor.update(Sample(6.0, cpu_percent=99.0))  # the top level holds
    assert not governor.update(Sample(7.0, cpu_percent=80.0))  # between the thresholds: hold
    assert not governor.update(Sample(8.0, cpu_percent=60.0))  # calm starts
    assert not governor.update(Sample(12.0, cpu_percent=60.0))
    assert governor.update(Sample(13.0, cpu_percent=60.0))  # 5 s of calm: one level back
    assert governor.level == 1
    assert governor.update(Sample(18.0, cpu_percent=60.0))
    assert governor.level == 0


def test_governor_reads_restarted_counters_and_absent_sources_as_no_pressure():
    governor = Governor(CONFIG)
    governor.update(Sample(0.0, vla_deadline_misses=40))
    assert not governor.update(Sample(5.0, vla_deadline_misses=2))  # the VLA node restarted
    assert not governor.update(Sample(10.0))  # nothing measured at all
    assert governor.level == 0
    assert governor.update(Sample(15.0, temperature_c=91.0))
    assert governor.reasons == ["91 °C"]


def test_governor_release_goes_back_to_the_profile_rates():
    governor = Governor(CONFIG)
    assert not governor.release()
    governor.update(Sample(0.0, cpu_percent=99.0))
    assert governor.level == 1
    assert governor.release()
    assert governor.rates() == {"perception_node": 5.0, "memory_node": 2.0}


def counts(control: str, camera: str = "0", **more: str) -> list[tuple[str, str]]:
    return [("enabled", "True"), ("deadline_misses.control", control), ("deadline_misses.camera", camera),
            *more.items()]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (counts("inf"), "deadline_misses.control is inf"),
        (counts("nan"), "deadline_misses.control is nan"),
        (counts("1e26"), r"expected a finite number in \[0, 1e\+10\]"),
        (counts("-1"), "deadline_misses.control is -1.0"),
        (counts("2.5"), "not a whole count"),
        (counts("lots"), "'lots', not a number"),
        (counts("1" * 1_000_000), "has 1000000 characters"),
        (counts("1", **{"deadline_misses.control": "2"}), "appears twice"),
        ([(f"deadline_misses.k{i}", "0") for i in range(300)], "status values has 300 entries"),
    ],
)
def test_deadline_counts_that_no_control_loop_produces_are_refused(values, message):
    with pytest.raises(InvalidMessageError, match=message):
        MissCounter.parse(values)


def test_deadline_counts_may_grow_only_as_fast_as_a_100_hz_loop_misses():
    misses = MissCounter()
    assert misses.update(MissCounter.parse(counts("40", "2")), 10.0) == 42  # the first report: any count
    assert misses.update({"deadline_misses.control": 45, "deadline_misses.camera": 2}, 11.0) == 47
    too_many = 45 + int(MAX_CONTROL_RATE_HZ * (1.0 + 1.0)) + 1  # one second later, plus one second slack
    with pytest.raises(InvalidMessageError, match=r"grew by 201 in 1\.00 s"):
        misses.update({"deadline_misses.control": too_many, "deadline_misses.camera": 2}, 12.0)
    assert misses.total == 47  # the refused report changed nothing
    assert misses.update({"deadline_misses.control": 3, "deadline_misses.camera": 0}, 12.5) == 3  # restart


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"perception_rates": ()}, "perception_rates"),
        ({"memory_rates": (1.0, 2.0)}, "must not rise"),
        ({"cpu_low_percent": 95.0}, "cpu_low_percent"),
        ({"recover_s": 0.0}, "recover_s"),
    ],
)
def test_governor_config_errors_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        Governor(GovernorConfig(**{**CONFIG.__dict__, **changes}))


#: The machine's load cannot reach these: only the VLA node's deadline misses move the level.
CALM_MACHINE = [f"{name}:=1000.0" for name in ("cpu_high_percent", "gpu_high_percent", "thermal_high_c")] + [
    f"{name}:=999.0" for name in ("cpu_low_percent", "gpu_low_percent", "thermal_low_c")
]


@pytest.mark.integration
def test_governor_refuses_impossible_counts_sheds_on_real_misses_and_restores_rates_when_stopped(
    ros, processes
):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from fuzz.observe import StatusBoard
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.parameter import Parameter

    from perception_node.node import PerceptionNode

    overrides = {"warmup_frames": 0, "tracker": "none", "max_rate_hz": 5.0}
    perception = PerceptionNode(
        context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]
    )
    ros.add(perception)
    args = ["period_s:=0.2", "step_s:=0.5", "recover_s:=60.0", *CALM_MACHINE]
    proc = processes.start(
        ["-m", "humanoid_bringup.governor_node", "--ros-args", *[a for arg in args for a in ("-p", arg)]],
        "governor",
    )
    node = ros.node("vla_reports")
    board = StatusBoard(node, {"governor: load", "governor: inputs"})
    reports = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def report(control: str) -> None:
        values = {"deadline_misses.control": control, "rate_hz": "24"}
        pairs = [KeyValue(key=k, value=v) for k, v in values.items()]
        status = DiagnosticStatus(name="vla_node: control", values=pairs)
        stamp = node.get_clock().now().to_msg()
        reports.publish(DiagnosticArray(header=Header(stamp=stamp), status=[status]))
        time.sleep(0.2)

    def rate() -> float:
        return perception.get_parameter("max_rate_hz").value

    wait_for(lambda: board.get("governor: load"), 30, "the governor's status")
    wait_for(lambda: reports.get_subscription_count() >= 2, 10, "the governor subscribing to /diagnostics")
    impossible = ["1e26", "inf", "nan", "-1", "1000003", "lots", "1" * 100_000]
    for value in impossible:  # each between two reports of the same count: no miss in truth
        report("3")
        report(value)
    report("3")

    def refused() -> int:
        return int(board.get("governor: inputs").get("dropped./diagnostics", 0))

    wait_for(lambda: refused() >= len(impossible), 10, "the refused reports counted")
    load = board.get("governor: load")
    assert (load["level"], load["vla_deadline_misses"], rate()) == ("0", "3", 5.0)

    def shed() -> None:
        misses = int(board.get("governor: load")["vla_deadline_misses"])
        for more in range(5, 60, 5):  # real misses, a few per report
            report(str(misses + more))
        wait_for(lambda: rate() == 1.0, 20, "the governor lowering perception to its last rate")

    lifecycle = node.create_client(ChangeState, "/governor/change_state")

    def transition(kind: int) -> None:
        future = lifecycle.call_async(ChangeState.Request(transition=Transition(id=kind)))
        wait_for(future.done, 20, f"lifecycle transition {kind}")
        assert future.result().success

    shed()
    transition(Transition.TRANSITION_DEACTIVATE)
    wait_for(lambda: rate() == 5.0, 10, "the profile's rate back when the governor was deactivated")
    transition(Transition.TRANSITION_ACTIVATE)
    shed()
    assert processes.stop(proc) == 0, processes.log(proc)  # Ctrl-C
    wait_for(lambda: rate() == 5.0, 10, "the profile's rate back when the governor stopped")
    assert processes.log(proc).count("restoring the profile's rates") == 2


# -------------------------------------------------------------------------------- platform state


def test_cpu_meter_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    meter = CpuMeter(stat)
    stat.write_text("cpu  250 0 150 900 0 0 0 0 0 0\n")  # +200 busy, +100 idle
    assert meter.percent() == pytest.approx(200 / 300 * 100)
    assert meter.percent() is None  # no time passed
    assert CpuMeter(tmp_path / "missing").percent() is None


def test_temperatures_and_absent_sources(tmp_path):
    for i, (kind, milli) in enumerate((("cpu-thermal", "48500"), ("gpu-thermal", "51250"))):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind)
        (zone / "temp").write_text(milli)
    assert temperatures_c(tmp_path) == {"cpu-thermal": 48.5, "gpu-thermal": 51.25}
    assert temperatures_c(tmp_path / "none") == {}
    absent = PlatformInfo(None, False, 0, False).absent()
    assert any("nvpmodel" in a for a in absent)
    assert any("tegrastats" in a for a in absent)
    assert PlatformInfo("MAXN", True, 9, True).absent() == []


# --------------------------------------------------------------------------------------- the demo


def test_demo_frame_shows_both_cameras():
    scene = Scene(
        head=np.full((480, 640, 3), 80, np.uint8),
        detections=[Detection(0, "person", 0.9, 500, 300, 120, 300, track_id=4)],
        faces=[Face((470, 180, 530, 260), "Alice", 2, 4, 0.71)],
        table=np.full((240, 320, 3), 200, np.uint8),
        commanded=np.array([1.2, 0.8]),
        instruction="touch the red cup",
        events=["10.0 s welcome back: Alice"],
    )
    frame = compose(scene)
    assert frame.shape == (HEIGHT, WIDTH, 3)
    assert not np.array_equal(frame[180:260, 470:530], np.full((80, 60, 3), 80, np.uint8))  # face drawn
    assert compose(Scene()).shape == (HEIGHT, WIDTH, 3)  # before any image arrived


def test_demo_report_holds_the_measured_numbers():
    stats = DemoStats("desktop_cpu")
    for i in range(11):
        stats.received("/perception/detections", 100.0 + 0.2 * i)
        stats.sample("perception.latency_ms", 40.0 + i)
    stats.events.append(EventRecord(9.5, "welcome back", "Alice", "abcdef123456", "Welcome back, Alice!"))
    stats.episodes = [EpisodeResult("touch the red cup", "red cup", True, 1.25, 0.01, 0)]
    stats.diagnostics["vla_node: control"] = {"deadline_misses.control": "3", "rate_hz": "24"}
    stats.governor(4.0, 1)
    script = SceneScript((Appearance("Alice", "obama2", 6.0, 18.0),), 30.0)
    text = render_report(stats, script, {"perception.latency_ms": "perception latency"})
    assert "| /perception/detections | 11 | 5.0 |" in text
    assert "| perception latency | 45.0 |" in text
    assert "| 9.5 | welcome back | Alice | abcdef12 | Welcome back, Alice! |" in text
    assert "## Tasks: 1 of 1 succeeded" in text
    assert "| vla_node: control | deadline_misses.control | 3 |" in text
    assert "rate_hz" not in text.split("## Deadline")[1].split("## Identities")[0]
    assert "- 4.0 s: level 1" in text
    assert "Alice 6–18 s" in text


def test_people_scene_puts_people_in_view_only_on_their_script_time():
    from tabletop_sim.people import PeopleScene

    script = SceneScript((Appearance("Alice", "obama2", 1.0, 2.0, x=0.8, height=200),), 3.0, 320, 240, "")
    scene = PeopleScene(script)
    empty, alice = scene.frame(0.5), scene.frame(1.5)
    assert empty.shape == (240, 320, 3)
    assert np.all(empty == empty[0, 0])  # plain background
    assert not np.array_equal(alice[40:, 180:300], empty[40:, 180:300])
    assert np.array_equal(scene.frame(2.5), empty)
