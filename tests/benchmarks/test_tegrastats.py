"""benchmarks/tegrastats.py: the line parser on every recorded line, the power summary, the sampler.

The lines in tests/benchmarks/data/tegrastats_*.txt are REPRESENTATIVE RECONSTRUCTIONS of the
formats documented for each JetPack release (JetPack 4.6 Nano with POM_* rails, JetPack 5.1
Xavier NX with VDD_* mW rails and a bracketed GR3D clock, JetPack 6 Orin Nano, and a line with
the timestamp prefix); they were not captured from a board here. Replace them with captures when
a board is at hand.
"""

import sys
from pathlib import Path

import pytest

from benchmarks.tegrastats import TegrastatsSampler, parse_line, power_summary

DATA = Path(__file__).parent / "data"


def lines(name: str):
    return (DATA / name).read_text().splitlines()


NANO_IDLE, NANO_BUSY = lines("tegrastats_jp46_nano.txt")
(XAVIER_NX,) = lines("tegrastats_jp51_xavier_nx.txt")
(ORIN_NANO,) = lines("tegrastats_jp6_orin_nano.txt")
(STAMPED,) = lines("tegrastats_timestamped.txt")

# line, field, expected value
CASES = [
    (NANO_IDLE, "timestamp", None),
    (NANO_IDLE, "ram_used_mb", 2235), (NANO_IDLE, "ram_total_mb", 3956),
    (NANO_IDLE, "swap_used_mb", 0), (NANO_IDLE, "swap_total_mb", 1978),
    (NANO_IDLE, "cpu_load_pct", [12, 3, 5, 2]), (NANO_IDLE, "cpu_mhz", [1479, 1479, 1479, 1479]),
    (NANO_IDLE, "emc_pct", 0), (NANO_IDLE, "emc_mhz", None),
    (NANO_IDLE, "gr3d_pct", 0), (NANO_IDLE, "gr3d_mhz", None),
    (NANO_IDLE, "temperatures_c", {"PLL": 31.0, "CPU": 34.0, "PMIC": 100.0, "GPU": 33.0, "AO": 40.0,
                                   "thermal": 33.5}),
    (NANO_IDLE, "rails_mw", {"POM_5V_IN": (2140, 2140), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (412, 412)}),
    (NANO_IDLE, "input_mw", 2140),
    (NANO_IDLE, "max_temp_c", 40.0),  # PMIC's constant 100 C is not a die temperature
    (NANO_IDLE, "throttled", False),
    (NANO_BUSY, "cpu_load_pct", [87, 91, None, None]), (NANO_BUSY, "cpu_mhz", [1479, 1479, None, None]),
    (NANO_BUSY, "emc_pct", 41), (NANO_BUSY, "emc_mhz", 1600),
    (NANO_BUSY, "gr3d_pct", 99), (NANO_BUSY, "gr3d_mhz", 921),
    (NANO_BUSY, "rails_mw", {"POM_5V_IN": (6904, 4522), "POM_5V_GPU": (2961, 1550), "POM_5V_CPU": (1303, 857)}),
    (NANO_BUSY, "input_mw", 6904),
    (XAVIER_NX, "ram_used_mb", 2120), (XAVIER_NX, "ram_total_mb", 6854),
    (XAVIER_NX, "cpu_load_pct", [3, 1, 0, 1, None, None]),
    (XAVIER_NX, "cpu_mhz", [1190, 1190, 1190, 1190, None, None]),
    (XAVIER_NX, "emc_pct", 0), (XAVIER_NX, "emc_mhz", 1600),
    (XAVIER_NX, "gr3d_pct", 0), (XAVIER_NX, "gr3d_mhz", 1100),
    (XAVIER_NX, "temperatures_c", {"aux": 39.0, "cpu": 41.25, "thermal": 40.3, "ao": 38.5, "gpu": 39.0,
                                   "iwlwifi": 39.0, "PMIC": 50.0}),
    (XAVIER_NX, "rails_mw", {"VDD_IN": (4838, 4838), "VDD_CPU_GPU_CV": (1105, 1105), "VDD_SOC": (1441, 1441)}),
    (XAVIER_NX, "input_mw", 4838),
    (ORIN_NANO, "ram_used_mb", 1843), (ORIN_NANO, "swap_total_mb", 3810),
    (ORIN_NANO, "cpu_load_pct", [2, 1, 0, 0, 0, 0]), (ORIN_NANO, "cpu_mhz", [729] * 6),
    (ORIN_NANO, "emc_mhz", 2133), (ORIN_NANO, "gr3d_pct", 0), (ORIN_NANO, "gr3d_mhz", None),
    (ORIN_NANO, "temperatures_c", {"cpu": 45.75, "soc2": 44.531, "soc0": 44.281, "gpu": 44.656, "tj": 46.093,
                                   "soc1": 44.5}),
    (ORIN_NANO, "rails_mw", {"VDD_IN": (5051, 5051), "VDD_CPU_GPU_CV": (563, 563), "VDD_SOC": (1486, 1486)}),
    (ORIN_NANO, "input_mw", 5051), (ORIN_NANO, "max_temp_c", 46.093), (ORIN_NANO, "throttled", False),
    (STAMPED, "timestamp", "11-27-2026 03:20:11"),
    (STAMPED, "ram_used_mb", 3120),
    (STAMPED, "cpu_load_pct", [35, 22, 18, 40, None, None]),
    (STAMPED, "gr3d_pct", 76), (STAMPED, "gr3d_mhz", 624), (STAMPED, "emc_pct", 12),
    (STAMPED, "input_mw", 9874), (STAMPED, "rails_mw", {"VDD_IN": (9874, 7420), "VDD_CPU_GPU_CV": (3512, 2260),
                                                        "VDD_SOC": (2290, 2010)}),
    (STAMPED, "max_temp_c", 96.5), (STAMPED, "throttled", True),
]


@pytest.mark.parametrize("line, name, expected", CASES)
def test_parse_line_reads_every_field(line, name, expected):
    assert getattr(parse_line(line), name) == expected


@pytest.mark.parametrize("text", ["", "garbage with no fields", None, "RAM x/yMB CPU [", "GR3D_FREQ %"])
def test_parse_line_never_raises_on_junk(text):
    sample = parse_line(text)
    assert sample.input_mw is None and sample.rails_mw == {} and sample.max_temp_c is None


def test_power_summary_is_energy_per_inference():
    samples = [parse_line(NANO_IDLE), parse_line(NANO_BUSY)]  # 2140 and 6904 mW -> 4522 mW
    power = power_summary(samples, inferences=100, window_s=2.0)
    assert power["avg_mw"] == pytest.approx(4522.0)
    assert power["mj_per_inference"] == pytest.approx(4522.0 * 2.0 / 100)  # mW * s = mJ
    assert power["fps_per_watt"] == pytest.approx(50.0 / 4.522)
    assert power["max_temp_c"] == 47.0 and power["throttled"] is False


@pytest.mark.parametrize("samples, inferences, window_s", [([], 10, 1.0), ([parse_line("RAM 1/2MB")], 10, 1.0),
                                                           ([parse_line(ORIN_NANO)], 0, 1.0)])
def test_power_summary_is_none_without_power(samples, inferences, window_s):
    assert power_summary(samples, inferences, window_s) is None


def test_sampler_without_tegrastats_gives_no_power():
    with TegrastatsSampler(100, binary="no-such-tegrastats-binary") as sampler:
        pass
    assert not sampler.available
    assert sampler.power(10) is None and sampler.throttled is False


def test_sampler_parses_the_lines_a_command_prints():
    script = "import sys; sys.stdout.write(open(sys.argv[1]).read()); sys.stdout.flush()"
    command = [sys.executable, "-c", script, str(DATA / "tegrastats_timestamped.txt")]
    with TegrastatsSampler(100, command=command) as sampler:
        sampler._seen.wait(30)  # the block is the measured window; here it waits for the fake's output
    power = sampler.power(inferences=50)
    assert power is not None and power["avg_mw"] == 9874 and power["throttled"] is True
    assert sampler.throttled
