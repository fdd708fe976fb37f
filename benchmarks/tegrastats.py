"""tegrastats on a Jetson: a parser for its lines across JetPack 4.6 to 6, and a sampler for a run.

``parse_line(text)`` turns one line into a :class:`TegrastatsSample` (RAM, CPU loads and
clocks, GR3D and EMC load and clock, temperatures, power rails, total input power) and never
raises: what a line lacks is None. The formats differ by release:

- JetPack 4 (Nano): ``POM_5V_IN 2140/2140`` (current/average mW, no unit), ``EMC_FREQ 0%``,
  ``GR3D_FREQ 0%@76``, temperatures ``CPU@34C``;
- JetPack 5 (Xavier, Orin): ``VDD_IN 4838mW/4838mW``, ``GR3D_FREQ 0%@[1100]`` (one clock per
  GPC), temperatures ``cpu@41.25C``;
- JetPack 6 (Orin): as 5, ``GR3D_FREQ 0%`` often without a clock, ``tj@46.093C``;
- any: an optional ``MM-DD-YYYY HH:MM:SS`` timestamp prefix, cores shown as ``off``.

:class:`TegrastatsSampler` runs ``tegrastats --interval N`` while a measurement runs (only when
the binary exists) and turns the input power it saw into the row's ``power`` entry.
"""

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

#: rails that hold the whole board's input power, by release
INPUT_RAILS: Tuple[str, ...] = ("VDD_IN", "POM_5V_IN")
#: zones whose reading is not a die temperature (the Nano's PMIC zone always reads 100 C)
IGNORED_ZONES: Tuple[str, ...] = ("PMIC",)
#: a die at or above this is taken as throttling: the Jetson thermal trips for software
#: throttling sit between about 95 C and 100 C depending on the module
THROTTLE_TEMP_C = 95.0

_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_TEMP = re.compile(r"(?<![\w@])([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"(?<![\w@])([A-Za-z][A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_NOT_RAILS = ("RAM", "SWAP", "IRAM", "lfb")


@dataclass
class TegrastatsSample:
    """One tegrastats line, parsed. Memory in MB, clocks in MHz, loads in %, power in mW."""

    timestamp: Optional[str] = None
    ram_used_mb: Optional[int] = None
    ram_total_mb: Optional[int] = None
    swap_used_mb: Optional[int] = None
    swap_total_mb: Optional[int] = None
    #: per core, None for a core shown as "off"
    cpu_load_pct: List[Optional[int]] = field(default_factory=list)
    cpu_mhz: List[Optional[int]] = field(default_factory=list)
    gr3d_pct: Optional[int] = None
    #: the highest GPC clock when several are listed
    gr3d_mhz: Optional[int] = None
    emc_pct: Optional[int] = None
    emc_mhz: Optional[int] = None
    temperatures_c: Dict[str, float] = field(default_factory=dict)
    #: rail name -> (current mW, running average mW)
    rails_mw: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    @property
    def input_mw(self) -> Optional[int]:
        """The board's total input power now (VDD_IN, or POM_5V_IN on JetPack 4), in mW."""
        for rail in INPUT_RAILS:
            if rail in self.rails_mw:
                return self.rails_mw[rail][0]
        return None

    @property
    def max_temp_c(self) -> Optional[float]:
        """The hottest real die temperature on the line (PMIC and offline zones left out)."""
        values = [v for k, v in self.temperatures_c.items() if k.upper() not in IGNORED_ZONES and v > -40.0]
        return max(values) if values else None

    @property
    def throttled(self) -> bool:
        """Whether a die is at or above the software-throttling temperature."""
        hottest = self.max_temp_c
        return hottest is not None and hottest >= THROTTLE_TEMP_C


def parse_line(text: str) -> TegrastatsSample:
    """One tegrastats line -> TegrastatsSample; fields the line lacks stay None (never raises)."""
    sample = TegrastatsSample()
    if not isinstance(text, str):
        return sample
    match = _TIMESTAMP.match(text)
    if match:
        sample.timestamp = match.group(1)
        text = text[match.end():]
    match = _RAM.search(text)
    if match:
        sample.ram_used_mb, sample.ram_total_mb = int(match.group(1)), int(match.group(2))
    match = _SWAP.search(text)
    if match:
        sample.swap_used_mb, sample.swap_total_mb = int(match.group(1)), int(match.group(2))
    match = _CPU.search(text)
    if match:
        for core in match.group(1).split(","):
            parsed = _CORE.match(core.strip())
            sample.cpu_load_pct.append(int(parsed.group(1)) if parsed else None)
            sample.cpu_mhz.append(int(parsed.group(2)) if parsed and parsed.group(2) else None)
    match = _GR3D.search(text)
    if match:
        sample.gr3d_pct = int(match.group(1))
        if match.group(2):
            sample.gr3d_mhz = max(int(v) for v in match.group(2).split(",") if v)
    match = _EMC.search(text)
    if match:
        sample.emc_pct = int(match.group(1))
        sample.emc_mhz = int(match.group(2)) if match.group(2) else None
    sample.temperatures_c = {name: float(value) for name, value in _TEMP.findall(text)}
    sample.rails_mw = {name: (int(now), int(avg)) for name, now, avg in _RAIL.findall(text)
                       if name not in _NOT_RAILS}
    return sample


def power_summary(samples: Sequence[TegrastatsSample], inferences: int, window_s: float) -> Optional[Dict[str, Any]]:
    """The row's ``power`` entry from the samples seen during a measured window.

    avg_mw is the mean board input power (VDD_IN / POM_5V_IN), idle draw included;
    mj_per_inference = avg_mw * window_s / inferences; fps_per_watt = (inferences / window_s) / W.
    None when no sample carries input power or the window is empty.
    """
    powers = [s.input_mw for s in samples if s.input_mw is not None]
    if not powers or inferences <= 0 or window_s <= 0:
        return None
    avg_mw = sum(powers) / len(powers)
    temps = [t for t in (s.max_temp_c for s in samples) if t is not None]
    fps = inferences / window_s
    return {"avg_mw": avg_mw, "mj_per_inference": avg_mw * window_s / inferences,
            "fps_per_watt": fps / (avg_mw / 1000.0) if avg_mw > 0 else 0.0,
            "max_temp_c": max(temps) if temps else None, "throttled": any(s.throttled for s in samples),
            "samples": len(powers)}


class TegrastatsSampler:
    """Run tegrastats for the duration of a ``with`` block and keep the lines it prints, parsed.

    Without the binary (any machine but a Jetson) the block runs unchanged and :meth:`power`
    returns None. ``command`` replaces the tegrastats command line (tests feed recorded lines).
    """

    def __init__(self, interval_ms: int = 100, command: Optional[List[str]] = None,
                 binary: str = "tegrastats") -> None:
        self.interval_ms = int(interval_ms)
        if command is None and shutil.which(binary):
            command = [binary, "--interval", str(self.interval_ms)]
        self.command = command
        self.samples: List[TegrastatsSample] = []
        self.window_s = 0.0
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._seen = threading.Event()
        self._started = 0.0

    @property
    def available(self) -> bool:
        """Whether there is a tegrastats to run."""
        return self.command is not None

    def __enter__(self) -> "TegrastatsSampler":
        if self.command is not None:
            try:
                self._process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                 universal_newlines=True, bufsize=1)
            except OSError:
                self._process = None
            else:
                self._reader = threading.Thread(target=self._read, name="tegrastats", daemon=True)
                self._reader.start()
        self._started = time.perf_counter()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            sample = parse_line(line)
            if sample.rails_mw or sample.temperatures_c:
                with self._lock:
                    self.samples.append(sample)
                self._seen.set()

    def __exit__(self, *exc: Any) -> None:
        self.window_s = time.perf_counter() - self._started
        if self._process is None:
            return
        # A window shorter than the interval would see no line: wait for one, at most two intervals.
        self._seen.wait(timeout=2 * self.interval_ms / 1000.0)
        self._process.terminate()
        try:
            self._process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2.0)

    def power(self, inferences: int) -> Optional[Dict[str, Any]]:
        """The row's ``power`` entry for ``inferences`` runs in the block; None without samples."""
        with self._lock:
            samples = list(self.samples)
        return power_summary(samples, inferences, self.window_s)

    @property
    def throttled(self) -> bool:
        """Whether any line in the window showed a die at the throttling temperature."""
        with self._lock:
            return any(s.throttled for s in self.samples)
