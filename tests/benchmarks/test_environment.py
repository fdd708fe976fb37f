"""benchmarks/environment.py: capture on this machine, and on a fake Jetson /sys + /etc tree."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from benchmarks import environment as env

XAVIER_RELEASE = "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, DATE: Sun Mar 19\n"
SHOW_LOCKED = """SOC family:tegra194  Machine:NVIDIA Jetson Xavier NX Developer Kit
Online CPUs: 0-5
cpu0: Online=1 Governor=schedutil MinFreq=1907200 MaxFreq=1907200 CurrentFreq=1907200 IdleStates: C1=0 c6=0
cpu1: Online=1 Governor=schedutil MinFreq=1907200 MaxFreq=1907200 CurrentFreq=1907200 IdleStates: C1=0 c6=0
cpu4: Online=0 Governor=schedutil MinFreq=1190400 MaxFreq=1907200 CurrentFreq=1190400 IdleStates: C1=0 c6=0
GPU MinFreq=1109250000 MaxFreq=1109250000 CurrentFreq=1109250000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1
NV Power Mode: MODE_20W_6CORE
"""
SHOW_DVFS = SHOW_LOCKED.replace("GPU MinFreq=1109250000", "GPU MinFreq=114750000")
SHOW_EMC_FREE = SHOW_LOCKED.replace("FreqOverride=1", "FreqOverride=0")
SHOW_CPU_FREE = SHOW_LOCKED.replace("cpu1: Online=1 Governor=schedutil MinFreq=1907200",
                                    "cpu1: Online=1 Governor=schedutil MinFreq=1190400")


def write(root: Path, relative: str, content) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def fake_jetson(root: Path, gpu_min_hz: int = 114750000, gpu_cur_hz: int = 1109250000) -> Path:
    """A Xavier NX on JetPack 5.1.1 as far as the files the capture reads go."""
    write(root, "etc/nv_tegra_release", XAVIER_RELEASE)
    write(root, "proc/device-tree/model", b"NVIDIA Jetson Xavier NX Developer Kit\x00")
    write(root, "proc/cpuinfo", "processor\t: 0\nCPU implementer\t: 0x4e\nCPU part\t: 0x004\n")
    gpu = "sys/devices/gpu.0/devfreq/17000000.gv11b/"
    write(root, gpu + "cur_freq", f"{gpu_cur_hz}\n")
    write(root, gpu + "min_freq", f"{gpu_min_hz}\n")
    write(root, gpu + "max_freq", "1109250000\n")
    for index, (name, milli) in enumerate([("CPU-therm", 41250), ("GPU-therm", 39500), ("CV0-therm", -256000),
                                           ("CPU-therm", 41000)]):
        write(root, f"sys/class/thermal/thermal_zone{index}/type", name + "\n")
        write(root, f"sys/class/thermal/thermal_zone{index}/temp", f"{milli}\n")
    for cpu in range(2):
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", "1907200\n")
    return root


def runner(outputs: Dict[str, Optional[str]]):
    def run(command: List[str]) -> Optional[str]:
        return outputs.get(command[0])
    return run


def test_capture_on_this_machine_fills_versions_and_no_jetson():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    found = env.capture(threads=3)
    assert found["jetson"] is None  # this CI machine is not a Jetson
    assert found["threads"] == 3 and found["cores"] >= 1 and found["cpu"]
    for key in ("python", "numpy", "onnxruntime", "opencv"):
        assert isinstance(found[key], str) and found[key][0].isdigit(), key
    assert set(found) >= {"tensorrt", "cuda", "torch"}


def test_capture_on_a_fake_jetson_tree(tmp_path):
    root = fake_jetson(tmp_path)
    found = env.capture(root=root, run=runner({"nvpmodel": "NV Power Mode: MODE_20W_6CORE\n8\n"}))
    jetson = found["jetson"]
    assert found["cpu"].startswith("NVIDIA Carmel")
    assert jetson["board"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert jetson["l4t"] == "35.3.1" and jetson["jetpack"] == "5.1.x"
    assert jetson["nvpmodel"] == "MODE_20W_6CORE" and jetson["nvpmodel_id"] == 8
    assert jetson["gpu_mhz"] == pytest.approx(1109.25)
    assert jetson["emc_mhz"] is None  # debugfs is root-only: not in the fake tree
    assert jetson["jetson_clocks"] is False  # no jetson_clocks output; devfreq min < max
    assert jetson["temperature_c"] == {"CPU-therm": 41.25, "GPU-therm": 39.5, "CPU-therm.3": 41.0}
    assert jetson["clocks"]["cpu_mhz"] == [1907.2, 1907.2]


def test_jetson_clocks_from_show_output_wins_over_sysfs(tmp_path):
    root = fake_jetson(tmp_path)
    jetson = env.jetson_state(root, run=runner({"jetson_clocks": SHOW_LOCKED}))
    assert jetson["jetson_clocks"] is True


def test_sysfs_says_locked_when_gpu_min_equals_max(tmp_path):
    root = fake_jetson(tmp_path, gpu_min_hz=1109250000)
    assert env.jetson_state(root, run=runner({}))["jetson_clocks"] is True


def test_no_jetson_files_means_no_jetson_section(tmp_path):
    write(tmp_path, "proc/cpuinfo", "model name\t: Some CPU @ 2.0GHz\n")
    found = env.capture(root=tmp_path, run=runner({}))
    assert found["jetson"] is None and found["cpu"] == "Some CPU @ 2.0GHz"


@pytest.mark.parametrize("text, expected", [
    (SHOW_LOCKED, True),
    (SHOW_DVFS, False),
    (SHOW_EMC_FREE, False),
    (SHOW_CPU_FREE, False),
    ("jetson_clocks: must be run as root\n", None),
    (None, None),
])
def test_parse_jetson_clocks_show(text, expected):
    assert env.parse_jetson_clocks_show(text) is expected


@pytest.mark.parametrize("files, expected", [
    ({"usr/local/cuda/version.json": '{"cuda": {"name": "CUDA SDK", "version": "11.4.315"}}'}, "11.4.315"),
    ({"usr/local/cuda/version.txt": "CUDA Version 10.2.300\n"}, "10.2.300"),
    ({"usr/local/cuda/version.json": "not json", "usr/local/cuda/version.txt": "CUDA Version 12.6.68"}, "12.6.68"),
])
def test_cuda_version_from_the_toolkit_files(tmp_path, files, expected):
    for relative, content in files.items():
        write(tmp_path, relative, content)
    assert env.cuda_version(tmp_path) == expected


@pytest.mark.parametrize("before, after, throttled, expected", [
    ({"gpu_mhz": 1109.25, "emc_mhz": 1600.0, "cpu_mhz": [1907.2]}, {"gpu_mhz": 1109.25, "emc_mhz": 1600.0,
                                                                   "cpu_mhz": [1907.2]}, [False], True),
    ({"gpu_mhz": 1109.25, "emc_mhz": None, "cpu_mhz": []}, {"gpu_mhz": 624.75, "emc_mhz": None, "cpu_mhz": []},
     [False], False),
    ({"gpu_mhz": None, "emc_mhz": None, "cpu_mhz": [1907.2, 1907.2]},
     {"gpu_mhz": None, "emc_mhz": None, "cpu_mhz": [1907.2, 1190.4]}, [], False),
    ({"gpu_mhz": 1109.25, "emc_mhz": None, "cpu_mhz": []}, {"gpu_mhz": 1109.25, "emc_mhz": None, "cpu_mhz": []},
     [False, True], False),  # a throttle seen in tegrastats
    (None, None, [False], None),  # not a Jetson: unknown
    ({"gpu_mhz": None, "emc_mhz": None, "cpu_mhz": []}, {"gpu_mhz": None, "emc_mhz": None, "cpu_mhz": []}, [], None),
])
def test_run_stability(before, after, throttled, expected):
    assert env.run_stability(before, after, throttled) is expected


def test_snapshot_of_a_fake_tree_and_a_clock_change(tmp_path):
    root = fake_jetson(tmp_path)
    before = env.clock_snapshot(root)
    write(root, "sys/devices/gpu.0/devfreq/17000000.gv11b/cur_freq", "624750000\n")
    assert env.clocks_changed(before, env.clock_snapshot(root))


def test_reads_are_tolerant(tmp_path):
    write(tmp_path, "sys/class/thermal/thermal_zone0/type", "x\n")
    write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "not a number\n")
    assert env.temperatures(tmp_path) is None
    assert env.clock_snapshot(tmp_path)["gpu_mhz"] is None
    assert env.read_text(tmp_path / "missing") is None and env.read_number(tmp_path / "missing") is None
    assert env.run_command(["no-such-command-here-xyz"]) is None


def test_installed_benchmarks_record_the_board(tmp_path):
    """issue 11: edge-bench installed (edge_benchmarks, without the checkout's jetson/ folder) records the board."""
    root = Path(__file__).resolve().parents[2]
    assert '"edge_benchmarks": "benchmarks"' in (root / "setup.py").read_text()  # the layout copied below
    site = tmp_path / "site-packages"
    ignore = shutil.ignore_patterns("__pycache__", "data")
    shutil.copytree(root / "edge", site / "edge", ignore=ignore)
    shutil.copytree(root / "benchmarks", site / "edge_benchmarks", ignore=ignore)
    board = fake_jetson(tmp_path / "board")
    code = ("import json, sys; from pathlib import Path; from edge_benchmarks.environment import capture; "
            "run = lambda command: 'NV Power Mode: MAXN\\n0\\n' if command[0] == 'nvpmodel' else None; "
            "print(json.dumps(capture(root=Path(sys.argv[1]), run=run)['jetson']))")
    done = subprocess.run([sys.executable, "-c", code, str(board)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=str(tmp_path), timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(site)))
    assert done.returncode == 0, done.stderr
    jetson = json.loads(done.stdout)
    assert (jetson["board"], jetson["l4t"], jetson["jetpack"]) == ("NVIDIA Jetson Xavier NX Developer Kit", "35.3.1",
                                                                  "5.1.x")
    assert (jetson["nvpmodel"], jetson["nvpmodel_id"]) == ("MAXN", 0)
