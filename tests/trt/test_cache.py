"""The engine cache: keys, stale plans (never loaded, rebuilt with the reason), locking, atomic writes.

The builder is a stub here (``Builds``): these tests are about the cache's contract, not TensorRT.
"""

import datetime
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

import numpy as np
import pytest
from tiny_models import make_colour_classifier

from edge.cuda.base import DeviceInfo
from edge.tensorrt import cache as cache_module
from edge.tensorrt.cache import (
    BuildLock,
    EngineCache,
    EngineKey,
    jetpack_guess,
    l4t_release,
    parse_iso_time,
    platform_id,
    stale_reason,
)

ROOT = Path(__file__).resolve().parents[2]
ORIN = DeviceInfo(0, "Orin (test)", (8, 7), 8 << 30, True)
XAVIER = DeviceInfo(0, "Xavier (test)", (7, 2), 8 << 30, True)
BASE_KEY = dict(onnx_sha256="ab" * 32, precision="fp16", profiles={"image": [[1, 3, 8, 8], [4, 3, 8, 8], [8, 3, 8, 8]]},
                tensorrt_version="10.3.0", compute_capability=(8, 7), platform="L4T R36.4.3", dla_core=None)


class Builds:
    """A stand-in for build_engine: counts calls, returns distinct plan bytes per build, can wait or fail."""

    def __init__(self, fail: bool = False, gate: Any = None) -> None:
        self.calls: List[str] = []
        self.fail, self.gate = fail, gate

    def __call__(self, onnx_path: Path, options: Any, *, report: Any = None) -> SimpleNamespace:
        self.calls.append(str(onnx_path))
        if self.gate is not None:
            assert self.gate.wait(30), "the second builder never started waiting"
        if self.fail:
            raise RuntimeError("build failed (test)")
        return SimpleNamespace(plan=f"plan-{len(self.calls)}-{options.precision}".encode(),
                               precision_asked=options.precision, precision_obtained=options.precision,
                               layer_precisions={"conv": options.precision}, build_seconds=1.25,
                               tensorrt_version=None, warnings=[])


def options(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**dict(dict(precision="fp16", profiles=None, dla_core=None, workspace_mib=256), **kw))


@pytest.fixture()
def onnx_path(tmp_path: Path) -> Path:
    return make_colour_classifier(tmp_path / "colour.onnx")


@pytest.fixture()
def cache(tmp_path: Path) -> EngineCache:
    return EngineCache(tmp_path / "engines")


def engine_for(cache: EngineCache, path: Path, builds: Builds, lines: List[str], device: DeviceInfo = ORIN,
               trt: str = "10.3.0", opts: Any = None) -> Any:
    return cache.engine_for(path, opts or options(), build=builds, device=device, trt_version=trt,
                            report=lines.append)


# ------------------------------------------------------------------------------------------ keys
@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32), ("precision", "fp32"), ("precision", "int8"),
    ("profiles", {"image": [[1, 3, 8, 8], [2, 3, 8, 8], [8, 3, 8, 8]]}), ("profiles", {}),
    ("tensorrt_version", "8.5.2.2"), ("compute_capability", (7, 2)), ("platform", "x86_64 Linux"), ("dla_core", 0),
    ("calibration_sha256", "ef" * 32),
])
def test_key_changes_with_each_field(field, value):
    base = EngineKey.create(**BASE_KEY)
    other = EngineKey.create(**dict(BASE_KEY, **{field: value}))
    assert other != base and other.digest() != base.digest()


def test_a_key_without_calibration_keeps_the_digest_of_plans_cached_before_the_field():
    key = EngineKey.create(**BASE_KEY)
    assert "calibration_sha256" not in key.to_dict()
    before = dict(BASE_KEY, profiles=BASE_KEY["profiles"], compute_capability="8.7")  # the dict an older edge hashed
    canonical = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert key.digest() == hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    calibrated = EngineKey.create(**dict(BASE_KEY, precision="int8", calibration_sha256="ef" * 32))
    assert EngineKey.from_dict(json.loads(json.dumps(calibrated.to_dict()))) == calibrated


def test_the_int8_key_follows_the_calibration_images_and_their_preprocessing(cache, onnx_path, tmp_path):
    """Issue 12's known gap: a plan calibrated on other images (or another preprocessing) is not reused."""
    import cv2
    from tiny_models import colour_classifier_config

    from edge.config import EdgeConfig
    from edge.tensorrt.builder import Calibration

    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(3):
        cv2.imwrite(str(folder / f"f{k}.png"), np.full((8, 8, 3), 40 * k, np.uint8))

    def key(**calibration):
        opts = options(precision="int8", calibration=Calibration(images=folder, **calibration))
        return cache.key_for(onnx_path, opts, device=ORIN, trt_version="10.3.0")

    first = key()
    assert first.calibration_sha256 is not None and key() == first  # stable
    cv2.imwrite(str(folder / "f1.png"), np.full((8, 8, 3), 99, np.uint8))
    changed = key()
    assert changed.calibration_sha256 != first.calibration_sha256
    assert "calibration set" in stale_reason(first, changed)
    assert key(max_images=2) != changed  # fewer images read: another set
    config = EdgeConfig.from_dict(colour_classifier_config())
    assert key(config=config) != changed  # the preprocessing the images go through
    fp16 = cache.key_for(onnx_path, options(precision="fp16", calibration=Calibration(images=folder)), device=ORIN,
                         trt_version="10.3.0")
    assert fp16.calibration_sha256 is None  # only int8 is calibrated

def test_key_digest_is_short_stable_and_canonical():
    key = EngineKey.create(**BASE_KEY)
    same = EngineKey.create(**dict(BASE_KEY, compute_capability="8.7",
                                   profiles={"image": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}))
    assert same == key and same.digest() == key.digest()
    assert len(key.digest()) == 16 and int(key.digest(), 16) >= 0
    assert EngineKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key
    two = {"b": [[1], [2], [3]], "a": [[1], [1], [1]]}
    assert EngineKey.create(**dict(BASE_KEY, profiles=two)) == \
        EngineKey.create(**dict(BASE_KEY, profiles=dict(reversed(list(two.items())))))


def test_workspace_is_not_part_of_the_key(cache, onnx_path):
    builds, lines = Builds(), []
    first, _ = engine_for(cache, onnx_path, builds, lines, opts=options(workspace_mib=128))
    second, _ = engine_for(cache, onnx_path, builds, lines, opts=options(workspace_mib=4096))
    assert first == second and len(builds.calls) == 1


@pytest.mark.parametrize("text, l4t, jetpack", [
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n",
     "L4T R36.4.3", "6.2"),
    ("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64\n", "L4T R35.3.1", "5.1.1"),
    ("# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64\n", "L4T R32.7.4", "4.6.x"),
    ("# R36 (release), REVISION: 4.0, GCID: 1\n", "L4T R36.4.0", "6.1"),
    ("garbage\n", None, None),
])
def test_l4t_release_and_jetpack_guess(tmp_path, text, l4t, jetpack):
    release = tmp_path / "nv_tegra_release"
    release.write_text(text)
    assert l4t_release(release) == l4t and jetpack_guess(l4t) == jetpack
    assert platform_id(release) == (l4t or platform_id(tmp_path / "missing"))


def test_platform_off_jetson_is_machine_and_os(tmp_path):
    import platform
    assert platform_id(tmp_path / "missing") == f"{platform.machine()} {platform.system()}"


# ------------------------------------------------------------------------------------------ build, hit, sidecar
def test_first_use_builds_then_hits_and_the_sidecar_has_the_provenance(cache, onnx_path):
    builds, lines = Builds(), []
    key = cache.key_for(onnx_path, options(), device=ORIN, trt_version="10.3.0")
    assert cache.lookup(key, report=lines.append) is None and lines.pop() == "no engine for this model yet"
    plan, sidecar = engine_for(cache, onnx_path, builds, lines)
    assert lines == ["no engine for this model yet"] and len(builds.calls) == 1
    assert plan.read_bytes() == b"plan-1-fp16"  # the plan exactly as built: no header, trtexec can load it
    on_disk = json.loads(plan.with_suffix(".json").read_text())
    assert on_disk == sidecar and set(on_disk) == {"edge_config", "provenance"}
    assert on_disk["edge_config"]["name"] == "colour_nchw"
    prov = on_disk["provenance"]
    assert prov["onnx_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert prov["plan_sha256"] == hashlib.sha256(b"plan-1-fp16").hexdigest()
    assert (prov["tensorrt_version"], prov["compute_capability"], prov["gpu_name"]) == ("10.3.0", "8.7", ORIN.name)
    assert (prov["precision_asked"], prov["precision_obtained"], prov["workspace_mib"]) == ("fp16", "fp16", 256)
    assert prov["onnx_path"] == str(onnx_path.resolve()) and prov["build_seconds"] == 1.25
    built = parse_iso_time(prov["built_at"])
    assert built.tzinfo is not None and prov["built_at"].endswith("Z")
    for field in ("cuda_version", "platform", "l4t", "jetpack", "layer_precisions", "profiles", "dla_core",
                  "edge_version", "cache_key"):
        assert field in prov
    again = engine_for(cache, onnx_path, builds, lines)
    assert again[0] == plan and len(builds.calls) == 1 and lines == ["no engine for this model yet"]
    assert cache.lookup(key) == again


def test_a_model_without_an_embedded_config_gets_null(cache, tmp_path):
    path = make_colour_classifier(tmp_path / "bare.onnx", embed=False)
    _, sidecar = engine_for(cache, path, Builds(), [])
    assert sidecar["edge_config"] is None


# ------------------------------------------------------------------------------------------ stale plans
def _damage_plan(cache, onnx_path):
    plan = next(cache.root.glob("*.plan"))
    plan.write_bytes(b"XXXX" + plan.read_bytes()[4:])


def _drop_sidecar(cache, onnx_path):
    next(cache.root.glob("*.json")).unlink()


def _garble_sidecar(cache, onnx_path):
    next(cache.root.glob("*.json")).write_text("{not json")


def _sidecar_of_another_key(cache, onnx_path):
    sidecar = next(cache.root.glob("*.json"))
    data = json.loads(sidecar.read_text())
    data["provenance"]["cache_key"]["tensorrt_version"] = "8.5.2.2"
    sidecar.write_text(json.dumps(data))


def _new_onnx_bytes(cache, onnx_path):
    make_colour_classifier(onnx_path, size=16)


@pytest.mark.parametrize("change, reason", [
    (dict(trt="8.5.2.2"), "engine was built for TensorRT 8.5.2.2, this is 10.3.0: rebuilding"),
    (dict(device=XAVIER), "engine was built for compute capability 7.2, this is 8.7: rebuilding"),
    (_damage_plan, "plan file damaged: rebuilding"),
    (_drop_sidecar, "engine has no sidecar (interrupted build?): rebuilding"),
    (_garble_sidecar, "engine sidecar is unreadable: rebuilding"),
    (_sidecar_of_another_key, "engine was built for TensorRT 8.5.2.2, this is 10.3.0: rebuilding"),
    (_new_onnx_bytes, "the ONNX file changed since its engine was built"),
], ids=["other-trt", "other-cc", "damaged-plan", "missing-sidecar", "unreadable-sidecar", "sidecar-other-key",
        "other-onnx-bytes"])
def test_stale_plans_are_rebuilt_with_the_reason_and_never_loaded(cache, onnx_path, change, reason):
    builds, lines = Builds(), []
    if callable(change):
        engine_for(cache, onnx_path, builds, lines)
        change(cache, onnx_path)
    else:  # built elsewhere first: another TensorRT or GPU wrote the cache
        engine_for(cache, onnx_path, builds, lines, **change)
    plan, sidecar = engine_for(cache, onnx_path, builds, lines)
    assert lines[-1].startswith(reason), lines
    assert len(builds.calls) == 2 and plan.read_bytes() == b"plan-2-fp16"
    assert sidecar["provenance"]["plan_sha256"] == hashlib.sha256(b"plan-2-fp16").hexdigest()
    key = cache.key_for(onnx_path, options(), device=ORIN, trt_version="10.3.0")
    assert cache.lookup(key) == (plan, sidecar)


def test_an_older_export_of_the_same_file_is_removed_after_the_rebuild(cache, onnx_path):
    builds, lines = Builds(), []
    engine_for(cache, onnx_path, builds, lines)
    engine_for(cache, onnx_path, builds, lines, trt="8.5.2.2")  # another TensorRT: kept, may come back
    make_colour_classifier(onnx_path, size=16)
    engine_for(cache, onnx_path, builds, lines)
    versions = sorted(row["provenance"]["tensorrt_version"] for row in cache.cache_info())
    assert versions == ["10.3.0", "8.5.2.2"] and len(builds.calls) == 3


def test_force_rebuilds_a_valid_plan(cache, onnx_path):
    builds, lines = Builds(), []
    engine_for(cache, onnx_path, builds, lines)
    cache.engine_for(onnx_path, options(), build=builds, device=ORIN, trt_version="10.3.0", report=lines.append,
                     force=True)
    assert len(builds.calls) == 2 and lines[-1] == "rebuilding the engine as asked (--force)"


def test_a_precision_is_required(cache, onnx_path):
    with pytest.raises(ValueError, match="resolved precision"):
        engine_for(cache, onnx_path, Builds(), [], opts=options(precision=None))


# ------------------------------------------------------------------------------------------ atomic writes
def _leftovers(cache: EngineCache) -> List[str]:
    return sorted(p.name for p in cache.root.iterdir() if not p.name.endswith(".lock"))


def test_a_failing_build_leaves_no_files(cache, onnx_path):
    with pytest.raises(RuntimeError, match="build failed"):
        engine_for(cache, onnx_path, Builds(fail=True), [])
    assert _leftovers(cache) == []


def test_a_sidecar_that_cannot_be_written_leaves_no_files(cache):
    key = EngineKey.create(**BASE_KEY)
    with pytest.raises(TypeError):
        cache.store(key, b"plan", {"edge_config": None, "provenance": {"bad": object()}})
    assert _leftovers(cache) == []


def test_a_crash_between_plan_and_sidecar_is_rebuilt_and_leaves_no_temporary_files(cache, onnx_path, monkeypatch):
    real_replace, seen = os.replace, []

    def replace(src: str, dst: str) -> None:
        seen.append(dst)
        if dst.endswith(".json"):
            raise OSError("disk full (test)")
        real_replace(src, dst)

    monkeypatch.setattr(cache_module.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        engine_for(cache, onnx_path, Builds(), [])
    monkeypatch.setattr(cache_module.os, "replace", real_replace)
    assert [Path(p).suffix for p in seen] == [".plan", ".json"]
    assert [Path(n).suffix for n in _leftovers(cache)] == [".plan"]  # no .tmp, no half sidecar
    builds, lines = Builds(), []
    engine_for(cache, onnx_path, builds, lines)
    assert lines == ["engine has no sidecar (interrupted build?): rebuilding"] and len(builds.calls) == 1


# ------------------------------------------------------------------------------------------ concurrency
def _two_threads_build(cache: EngineCache, onnx_path: Path) -> None:
    waiting = threading.Event()
    builds = Builds(gate=waiting)
    results, lines_b = [None, None], []

    def first() -> None:
        results[0] = engine_for(cache, onnx_path, builds, [])

    def second() -> None:
        def report(line: str) -> None:
            lines_b.append(line)
            if "waiting" in line:
                waiting.set()  # the first build finishes only once the second is blocked on the lock

        results[1] = cache.engine_for(onnx_path, options(), build=builds, device=ORIN, trt_version="10.3.0",
                                      report=report)

    a = threading.Thread(target=first)
    a.start()
    while not builds.calls:  # the first thread holds the lock and is building
        threading.Event().wait(0.01)
    b = threading.Thread(target=second)
    b.start()
    a.join(60)
    b.join(60)
    assert len(builds.calls) == 1
    assert results[0] == results[1] and results[0][0].read_bytes() == b"plan-1-fp16"
    assert any("another process is building this engine" in line for line in lines_b)


def test_two_threads_build_once(cache, onnx_path):
    _two_threads_build(cache, onnx_path)


def test_two_threads_build_once_without_fcntl(cache, onnx_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl -> ImportError, as on Windows
    _two_threads_build(cache, onnx_path)
    assert not list(cache.root.glob("*.lock"))  # the O_EXCL lock file is removed on release


def test_a_stale_exclusive_lock_file_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)
    path = tmp_path / "x.lock"
    path.write_text("12345")
    old = path.stat().st_mtime - 7200
    os.utime(path, (old, old))
    with BuildLock(path, stale_s=3600):
        assert path.exists()
    assert not path.exists()


PROCESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from types import SimpleNamespace
    sys.path.insert(0, sys.argv[1])
    from edge.cuda.base import DeviceInfo
    from edge.tensorrt.cache import EngineCache
    folder = Path(sys.argv[2])

    def build(onnx_path, options, report=None):
        (folder / "builds").open("a").write("x")
        (folder / "building").write_text("1")
        while not (folder / "go").exists():
            time.sleep(0.02)
        return SimpleNamespace(plan=b"plan-from-" + sys.argv[3].encode(), precision_asked="fp16",
                               precision_obtained="fp16", layer_precisions={}, build_seconds=1.0,
                               tensorrt_version=None, warnings=[])

    def report(line):
        if "waiting" in line:
            (folder / "waiting").write_text(line)

    options = SimpleNamespace(precision="fp16", profiles=None, dla_core=None, workspace_mib=None)
    plan, _ = EngineCache(folder / "engines").engine_for(sys.argv[4], options, build=build,
        device=DeviceInfo(0, "Orin", (8, 7), 1, True), trt_version="10.3.0", report=report)
    print(plan.read_bytes().decode())
""")


def _wait_for(path: Path, process: Any) -> None:
    while not path.exists():
        assert process.poll() is None, process.communicate()
        threading.Event().wait(0.02)


def test_two_processes_build_once(tmp_path, onnx_path):
    def start(name: str) -> Any:
        return subprocess.Popen([sys.executable, "-c", PROCESS, str(ROOT), str(tmp_path), name, str(onnx_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)

    first = start("first")
    _wait_for(tmp_path / "building", first)
    second = start("second")
    _wait_for(tmp_path / "waiting", second)
    (tmp_path / "go").write_text("1")
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["plan-from-first", "plan-from-first"]
    assert (tmp_path / "builds").read_text() == "x"


# ------------------------------------------------------------------------------------------ other caches, list, clear
def test_paths_share_the_root_under_the_settings_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "c"))
    cache = EngineCache()
    assert cache.root == tmp_path / "c" / "engines"
    assert cache.timing_cache_path("10.3.0", (8, 7)) == cache.root / "timing-10.3.0-8.7.cache"
    assert cache.calibration_dir() == cache.root / "calibration"


def test_cache_info_and_clear(cache, onnx_path):
    builds = Builds()
    engine_for(cache, onnx_path, builds, [])
    old_plan, _ = engine_for(cache, onnx_path, builds, [], trt="8.5.2.2")
    sidecar = old_plan.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["provenance"]["built_at"] = "2020-01-01T00:00:00Z"
    sidecar.write_text(json.dumps(data))
    timing = cache.timing_cache_path("10.3.0", (8, 7))
    timing.write_bytes(b"t")
    info = cache.cache_info()
    assert len(info) == 2 and {row["sidecar"] for row in info} == {"ok"}
    assert {row["provenance"]["tensorrt_version"] for row in info} == {"10.3.0", "8.5.2.2"}
    assert cache.clear(older_than=datetime.timedelta(days=30)) == [old_plan]
    assert not old_plan.exists() and not sidecar.exists() and len(cache.cache_info()) == 1
    assert len(cache.clear()) == 1 and cache.cache_info() == [] and timing.exists()


def test_cache_info_of_a_missing_root_is_empty(tmp_path):
    assert EngineCache(tmp_path / "nothing").cache_info() == [] and EngineCache(tmp_path / "x").clear() == []


@pytest.mark.parametrize("text,expected", [
    ("2026-11-30T08:50:00Z", datetime.datetime(2026, 11, 30, 8, 50, tzinfo=datetime.timezone.utc)),
    ("2026-11-30T08:50:00", datetime.datetime(2026, 11, 30, 8, 50, tzinfo=datetime.timezone.utc)),
    ("2026-11-30T10:50:00+02:00", datetime.datetime(2026, 11, 30, 8, 50, tzinfo=datetime.timezone.utc)),
    ("2026-11-30 03:20:00.25-0530", datetime.datetime(2026, 11, 30, 8, 50, 0, 250000, tzinfo=datetime.timezone.utc)),
    ("2026-11-30T08:50", ValueError), ("yesterday", ValueError), ("None", ValueError)])
def test_sidecar_times_are_read_without_fromisoformat(text, expected):
    # datetime.fromisoformat is Python 3.7+ (JetPack 4.6 has 3.6) and reads "Z" only from 3.11
    if expected is ValueError:
        with pytest.raises(ValueError, match="not an ISO 8601 time"):
            parse_iso_time(text)
    else:
        assert parse_iso_time(text) == expected and parse_iso_time(text).tzinfo is not None
