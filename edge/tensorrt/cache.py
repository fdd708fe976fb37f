"""The engine cache: ``<root>/<digest>.plan`` + ``<digest>.json``, keyed by all that makes a plan invalid.

A plan is returned only when its sidecar parses, names the same key and records the plan's sha256; else
the reason is reported and it is rebuilt (plans are tied to TensorRT version and GPU, brief §1.6). Plans
stay plain TensorRT files (``trtexec --loadEngine``); the sidecar is what ``export inspect`` reads:
``{"edge_config": ... | null, "provenance": ...}``. Atomic writes; a per-key lock stops two processes
building one engine. Timing caches (``timing-<trt>-<cc>.cache``) and ``calibration/`` share the root.
"""

import contextlib
import datetime
import hashlib
import json
import os
import platform as _platform
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from edge.autoconfig import model_config
from edge.config import loads_json
from edge.files import write_atomic
from edge.onnxfile import read_onnx
from edge.settings import cache_dir

Report = Callable[[str], None]
Profiles = Tuple[Tuple[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]], ...]
Entry = Tuple[Path, Dict[str, Any]]
NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
#: (L4T prefix, JetPack) — most specific first; a guess for the provenance, never used for decisions
_JETPACK_BY_L4T = (("R39.2", "7.2"), ("R38.4", "7.1"), ("R38.2", "7.0"), ("R36.5", "6.2.2+"), ("R36.4.4", "6.2.1"),
                   ("R36.4.7", "6.2.1"), ("R36.4.3", "6.2"), ("R36.4", "6.1"), ("R36.3", "6.0"),
                   ("R35.6", "5.1.4+"), ("R35.5", "5.1.3"), ("R35.4", "5.1.2"), ("R35.3", "5.1.1"), ("R35.2", "5.1"),
                   ("R35.1", "5.0.2"), ("R34.1", "5.0"), ("R32.7", "4.6.x"), ("R32.6", "4.6"))


def l4t_release(path: Path = NV_TEGRA_RELEASE) -> Optional[str]:
    """'L4T R36.4.3' from /etc/nv_tegra_release ('# R36 (release), REVISION: 4.3, ...'), or None off Jetson."""
    try:
        match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", path.read_text(errors="replace"))
    except OSError:
        return None
    return f"L4T R{match.group(1)}.{match.group(2).rstrip('.')}" if match else None


def jetpack_guess(l4t: Optional[str]) -> Optional[str]:
    """The JetPack release an L4T release most likely belongs to (brief §3.2), or None."""
    release = (l4t or "").split()[-1:] or [""]
    return next((jp for prefix, jp in _JETPACK_BY_L4T if (release[0] + ".").startswith(prefix + ".")), None)


def platform_id(l4t_path: Path = NV_TEGRA_RELEASE) -> str:
    """The platform part of the key: the L4T release on a Jetson, else machine + OS ('x86_64 Linux')."""
    return l4t_release(l4t_path) or f"{_platform.machine() or 'unknown'} {_platform.system() or 'unknown'}"


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cc(value: Union[str, Sequence[int]]) -> str:
    return value if isinstance(value, str) else ".".join(str(int(v)) for v in value)


def canonical_profiles(profiles: Optional[Mapping[str, Sequence[Sequence[int]]]]) -> Profiles:
    """{input: (min, opt, max)} as a sorted tuple of int tuples, so equal profiles give equal keys."""
    out = tuple((name, tuple(tuple(int(d) for d in s) for s in shapes))
                for name, shapes in sorted((profiles or {}).items()))
    if any(len(shapes) != 3 for _, shapes in out):
        raise ValueError(f"every profile needs (min, opt, max) shapes, got {profiles}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class EngineKey:
    """What makes a plan valid: ONNX bytes, precision, profiles, TensorRT, GPU, platform, DLA core and, for an
    int8 plan calibrated on images, the calibration set (its images and the preprocessing they went through).
    Not the workspace: it changes how long the build searches, not whether the plan can run here."""

    onnx_sha256: str
    precision: str
    profiles: Profiles
    tensorrt_version: str
    compute_capability: str  # "8.7"
    platform: str  # "L4T R36.4.3" or "x86_64 Linux"
    dla_core: Optional[int] = None
    calibration_sha256: Optional[str] = None

    @classmethod
    def create(cls, onnx_sha256: str, precision: str, profiles: Optional[Mapping[str, Sequence[Sequence[int]]]],
               tensorrt_version: str, compute_capability: Union[str, Sequence[int]], platform: Optional[str] = None,
               dla_core: Optional[int] = None, calibration_sha256: Optional[str] = None) -> "EngineKey":
        """A key with canonical profiles and compute capability; ``platform`` defaults to this machine's."""
        return cls(onnx_sha256, precision, canonical_profiles(profiles), str(tensorrt_version), _cc(compute_capability),
                   platform if platform is not None else platform_id(), None if dla_core is None else int(dla_core),
                   calibration_sha256)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form (profiles as {name: [min, opt, max]}). A key without a calibration set leaves the field
        out, so the keys (and digests) of plans cached before it existed stay the same."""
        data = dict(asdict(self), profiles={name: [list(s) for s in shapes] for name, shapes in self.profiles})
        if data["calibration_sha256"] is None:
            del data["calibration_sha256"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineKey":
        """Inverse of :meth:`to_dict`; KeyError/TypeError/ValueError on a malformed dict."""
        return cls.create(data["onnx_sha256"], data["precision"], data["profiles"], data["tensorrt_version"],
                          data["compute_capability"], data["platform"], data.get("dla_core"),
                          data.get("calibration_sha256"))

    def digest(self) -> str:
        """Short stable hex name of this key: 16 hex digits of the sha256 of its sorted, compact JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def stale_reason(old: EngineKey, new: EngineKey) -> str:
    """Why a plan built for ``old`` cannot serve ``new``, in the words engine_for prints."""
    if old.onnx_sha256 != new.onnx_sha256:
        return (f"the ONNX file changed since its engine was built (sha256 {old.onnx_sha256[:12]}… → "
                f"{new.onnx_sha256[:12]}…): rebuilding")
    if old.calibration_sha256 != new.calibration_sha256:
        return ("the int8 calibration set (its images or their preprocessing) changed since its engine was built: "
                "rebuilding")
    for field, label in (("tensorrt_version", "TensorRT"), ("compute_capability", "compute capability"),
                         ("platform", "platform")):
        if getattr(old, field) != getattr(new, field):
            return f"engine was built for {label} {getattr(old, field)}, this is {getattr(new, field)}: rebuilding"
    return "engine was built with other settings: rebuilding"


def calibration_set_sha256(calibration: Any) -> Optional[str]:
    """sha256 of an int8 calibration set on images: the images the calibrator reads (names and bytes, in its
    order and number) and the preprocessing they go through (the edge config given, else the ONNX file's own,
    which its sha256 already covers). None without images (no calibration, or a custom calibrator factory)."""
    images = getattr(calibration, "images", None)
    if images is None:
        return None
    from edge.tensorrt.calibrator import calibration_images

    digest = hashlib.sha256()
    for path in calibration_images(Path(images), int(getattr(calibration, "max_images", 500))):
        digest.update(path.name.encode("utf-8") + b"\0" + sha256_file(path).encode("ascii") + b"\n")
    config = getattr(calibration, "config", None)
    if config is not None:
        digest.update(b"config\0" + config.to_json().encode("utf-8"))
    return digest.hexdigest()


class BuildLock:
    """An exclusive lock on ``<key>.lock`` so one process (or thread) builds an engine at a time: fcntl.flock
    (released by the OS if the process dies), else an O_EXCL lock file taken over after ``stale_s`` seconds."""

    def __init__(self, path: Path, *, report: Optional[Report] = None, stale_s: float = 3600.0) -> None:
        self.path, self.report, self.stale_s = path, report, stale_s
        self._fd: Optional[int] = None
        self._exclusive_file = False

    def __enter__(self) -> "BuildLock":
        try:
            import fcntl
        except ImportError:
            self._acquire_exclusive_file()
            return self
        self._fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._waiting()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def _acquire_exclusive_file(self) -> None:
        told = False
        while True:
            try:
                os.close(os.open(str(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                self._exclusive_file = True
                return
            except FileExistsError:
                try:  # a file's age is wall-clock by nature
                    if _wall_clock_s() - self.path.stat().st_mtime > self.stale_s:
                        _unlink(self.path)  # its builder died: take over
                        continue
                except FileNotFoundError:
                    continue
            if not told:
                self._waiting()
                told = True
            time.sleep(0.1)

    def _waiting(self) -> None:
        if self.report:
            self.report(f"another process is building this engine; waiting for it ({self.path.name})")

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        if self._exclusive_file:
            _unlink(self.path)
            self._exclusive_file = False


def _wall_clock_s() -> float:
    """Seconds since the epoch: comparable with file modification times (durations use perf_counter)."""
    return datetime.datetime.now(datetime.timezone.utc).timestamp()


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class EngineCache:
    """Plans and sidecars under ``root`` (default ``cache_dir()/engines``), never a stale plan."""

    def __init__(self, root: Optional[Union[str, Path]] = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "engines"

    def plan_path(self, key: EngineKey) -> Path:
        """``<root>/<digest>.plan`` (its sidecar: the same with ``.json``)."""
        return self.root / f"{key.digest()}.plan"

    def sidecar_path(self, key: EngineKey) -> Path:
        """``<root>/<digest>.json``."""
        return self.plan_path(key).with_suffix(".json")

    def lock(self, key: EngineKey, report: Optional[Report] = None) -> BuildLock:
        """The build lock of ``key`` (creates the root). Lock files stay: deleting one under a holder races."""
        self.root.mkdir(parents=True, exist_ok=True)
        return BuildLock(self.root / f"{key.digest()}.lock", report=report)

    def timing_cache_path(self, tensorrt_version: str, compute_capability: Union[str, Sequence[int]]) -> Path:
        """Where the builder's timing cache for this TensorRT and GPU lives (``timing-<trt>-<cc>.cache``)."""
        return self.root / f"timing-{tensorrt_version}-{_cc(compute_capability)}.cache"

    def calibration_dir(self) -> Path:
        """Folder for INT8 calibration caches."""
        return self.root / "calibration"

    def probe(self, key: EngineKey) -> Tuple[Optional[Entry], str]:
        """(entry, "") for a usable plan, else (None, why not)."""
        plan, sidecar_file = self.plan_path(key), self.sidecar_path(key)
        if not plan.is_file():
            return None, "no engine for this model yet"
        if not sidecar_file.is_file():
            return None, "engine has no sidecar (interrupted build?): rebuilding"
        sidecar = read_sidecar(sidecar_file)
        if sidecar is None:
            return None, "engine sidecar is unreadable: rebuilding"
        provenance = sidecar.get("provenance") or {}
        stored = _stored_key(provenance)
        if stored is None:
            return None, "engine sidecar has no valid cache key: rebuilding"
        if stored != key:
            return None, stale_reason(stored, key)
        if provenance.get("plan_sha256") != sha256_file(plan):
            return None, "plan file damaged: rebuilding"
        return (plan, sidecar), ""

    def lookup(self, key: EngineKey, report: Optional[Report] = None) -> Optional[Entry]:
        """(plan path, sidecar) for ``key``, or None (the reason goes to ``report``). Never a stale plan."""
        entry, reason = self.probe(key)
        if entry is None and report:
            report(reason)
        return entry

    def entries(self) -> List[Tuple[Path, Optional[Dict[str, Any]]]]:
        """(plan path, sidecar or None) for every plan in the cache, oldest first."""
        plans = sorted(self.root.glob("*.plan"), key=lambda p: (p.stat().st_mtime, p.name))
        return [(plan, read_sidecar(plan.with_suffix(".json"))) for plan in plans]

    def store(self, key: EngineKey, plan: bytes, sidecar: Dict[str, Any]) -> Entry:
        """Write the plan and its sidecar atomically; the sidecar gets the key and the plan's sha256."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = dict(sidecar, edge_config=sidecar.get("edge_config"))
        data["provenance"] = dict(sidecar.get("provenance") or {}, plan_sha256=hashlib.sha256(plan).hexdigest(),
                                  cache_key=key.to_dict(), cache_key_digest=key.digest())
        text = json.dumps(data, indent=2)  # a bad sidecar fails here, before anything is written
        # Plan first: a crash in between leaves a plan with no (or another plan's) sidecar: rebuilt.
        write_atomic(self.plan_path(key), bytes(plan))
        write_atomic(self.sidecar_path(key), (text + "\n").encode("utf-8"))
        return self.plan_path(key), data

    def engine_for(self, onnx_path: Union[str, Path], options: Any, *, build: Callable[..., Any],
                   device: Any, trt_version: str, report: Optional[Report] = None,
                   cuda_version: Optional[str] = None, force: bool = False,
                   edge_config: Optional[Dict[str, Any]] = None) -> Entry:
        """The (plan path, sidecar) for ``onnx_path`` + ``options`` on ``device``: cached, or built now with
        ``build(onnx_path, options, report=report)`` after one line saying why. One builder per key at a time.

        edge_config: the config the model runs with, for the sidecar (a plan has no metadata of its own);
        None: the ONNX's embedded config, or one derived from its metadata (e.g. an Ultralytics export).
        """
        say = report or print
        onnx_path = Path(onnx_path)
        key = self.key_for(onnx_path, options, device=device, trt_version=trt_version)
        entry, reason = self.probe(key)
        if entry is not None and not force:
            return entry
        with self.lock(key, say):
            entry, reason = self.probe(key)  # another process may have built it while we waited
            if entry is not None and not force:
                return entry
            superseded = self._superseded(key, onnx_path)
            if force:
                reason = "rebuilding the engine as asked (--force)"
            elif not self.plan_path(key).exists() and superseded:
                reason = stale_reason(superseded[0][0], key)
            say(reason)
            result = build(onnx_path, options, report=say)
            if edge_config is None:
                edge_config = model_config(read_onnx(onnx_path))
            sidecar = {"edge_config": edge_config,
                       "provenance": build_provenance(onnx_path, key, options, result, device, cuda_version)}
            entry = self.store(key, result.plan, sidecar)
            for old, plan in superseded:
                if old.onnx_sha256 != key.onnx_sha256 and replace(old, onnx_sha256=key.onnx_sha256) == key:
                    self.remove(plan)  # an older export of this same file, for this same board: never usable again
        return entry

    def key_for(self, onnx_path: Path, options: Any, *, device: Any, trt_version: str) -> EngineKey:
        """The key of ``onnx_path`` built with ``options`` on ``device`` (a DeviceInfo) by TensorRT ``trt_version``."""
        precision = getattr(options, "precision", None)
        if not precision:
            raise ValueError("engine_for needs a resolved precision (fp32, fp16 or int8), got None")
        calibration = getattr(options, "calibration", None) if precision == "int8" else None
        return EngineKey.create(sha256_file(onnx_path), precision, getattr(options, "profiles", None) or {},
                                trt_version, device.compute_capability, dla_core=getattr(options, "dla_core", None),
                                calibration_sha256=calibration_set_sha256(calibration))

    def _superseded(self, key: EngineKey, onnx_path: Path) -> List[Tuple[EngineKey, Path]]:
        """Other cached plans asking the same (precision, profiles, DLA) of the same ONNX bytes or path; the same
        bytes first, then newest first."""
        resolved, found = str(onnx_path.resolve()), []
        for plan, sidecar in reversed(self.entries()):
            provenance = (sidecar or {}).get("provenance") or {}
            other = _stored_key(provenance)
            if other is None or other == key or (other.precision, other.profiles, other.dla_core) != (
                    key.precision, key.profiles, key.dla_core):
                continue
            if other.onnx_sha256 == key.onnx_sha256 or provenance.get("onnx_path") == resolved:
                found.append((other, plan))
        return sorted(found, key=lambda item: item[0].onnx_sha256 != key.onnx_sha256)  # stable: newest stay first

    def remove(self, plan: Path) -> None:
        """Delete a plan and its sidecar (not its lock file: another process may hold it)."""
        _unlink(plan)
        _unlink(plan.with_suffix(".json"))

    def clear(self, older_than: Optional[datetime.timedelta] = None) -> List[Path]:
        """Delete cached plans (all, or those built more than ``older_than`` ago); returns the plans removed.
        Timing and calibration caches stay: still valid, they make rebuilds faster."""
        now = datetime.datetime.now(datetime.timezone.utc)
        removed = [plan for plan, sidecar in self.entries()
                   if older_than is None or now - _built_at(plan, sidecar) >= older_than]
        for plan in removed:
            self.remove(plan)
        return removed

    def cache_info(self) -> List[Dict[str, Any]]:
        """One dict per cached plan: path, size, sidecar status and provenance (for ``--list``)."""
        return [{"plan": str(plan), "size_bytes": plan.stat().st_size, "built_at": _built_at(plan, sidecar).isoformat(),
                 "sidecar": "ok" if sidecar is not None else "missing or unreadable",
                 "provenance": (sidecar or {}).get("provenance") or {}} for plan, sidecar in self.entries()]


def _stored_key(provenance: Mapping[str, Any]) -> Optional[EngineKey]:
    try:
        return EngineKey.from_dict(provenance["cache_key"])
    except (KeyError, TypeError, ValueError):
        return None


def build_provenance(onnx_path: Path, key: EngineKey, options: Any, result: Any, device: Any,
                     cuda_version: Optional[str] = None) -> Dict[str, Any]:
    """The sidecar's "provenance" section for a plan just built (``result`` is a BuildResult)."""
    from edge import __version__

    l4t = l4t_release()
    return {
        "onnx_path": str(onnx_path.resolve()), "onnx_sha256": key.onnx_sha256,
        "plan_sha256": hashlib.sha256(result.plan).hexdigest(), "tensorrt_version": key.tensorrt_version,
        "cuda_version": cuda_version,
        "platform": key.platform, "l4t": l4t, "jetpack": jetpack_guess(l4t),
        "gpu_name": getattr(device, "name", None), "compute_capability": key.compute_capability,
        "precision_asked": result.precision_asked, "precision_obtained": result.precision_obtained,
        "layer_precisions": dict(result.layer_precisions or {}),
        "profiles": key.to_dict()["profiles"], "dla_core": key.dla_core,
        "workspace_mib": getattr(options, "workspace_mib", None), "build_seconds": round(result.build_seconds, 3),
        "warnings": list(getattr(result, "warnings", None) or []),
        "built_at": utc_now_iso(), "edge_version": __version__,
    }


def read_sidecar(path: Path) -> Optional[Dict[str, Any]]:
    """The sidecar as a dict, or None when it is missing, unreadable or not an object."""
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6})\d*)?(Z|[+-]\d\d:?\d\d)?$")


def parse_iso_time(text: str) -> datetime.datetime:
    """"2026-11-30T08:50:00Z" (+hh:mm, or no zone: UTC) -> aware datetime; ValueError otherwise (not
    datetime.fromisoformat: Python 3.7+, "Z" only from 3.11; JetPack 4.6 runs 3.6)."""
    match = _ISO.match(str(text).strip())
    if not match:
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    *fields, fraction, zone = match.groups()
    zone = zone or "Z"
    digits = zone[1:].replace(":", "") or "0000"
    offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])) * (-1 if zone[:1] == "-" else 1)
    return datetime.datetime(*(int(f) for f in fields), int((fraction or "0").ljust(6, "0")),
                             tzinfo=datetime.timezone(offset))


def _built_at(plan: Path, sidecar: Optional[Dict[str, Any]]) -> datetime.datetime:
    text = ((sidecar or {}).get("provenance") or {}).get("built_at")
    try:
        return parse_iso_time(str(text))
    except ValueError:
        return datetime.datetime.fromtimestamp(plan.stat().st_mtime, datetime.timezone.utc)


def utc_now_iso() -> str:
    """Now, ISO 8601 in UTC with a 'Z' (the sidecar's ``built_at``)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
