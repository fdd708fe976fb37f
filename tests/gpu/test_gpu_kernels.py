"""The kernel source: it compiles (NVRTC, nvcc) where the compilers exist, its parameter list matches
the launch code, and the driver-API launch passes every value in order (against a fake driver)."""

import re
import shutil

import pytest
from cuda_bindings_fakes import CUresult, FakeCudaDriver

from edge.cuda import kernels
from edge.cuda.base import CudaError


def nvrtc_or_skip():
    try:
        nvrtc = kernels._import_nvrtc()
        nvrtc.nvrtcVersion()
    except ImportError:
        pytest.skip("cuda-python (cuda.bindings.nvrtc) is not installed: pip install cuda-python")
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"libnvrtc not found ({type(exc).__name__}): pip install nvidia-cuda-nvrtc")
    return nvrtc


@pytest.mark.parametrize("cc", [(7, 5), (8, 7), (9, 0)])  # Turing, Orin, Hopper
def test_nvrtc_compiles_a_cubin_for_the_device(cc):
    image, kind = kernels.nvrtc_compile(cc, nvrtc_or_skip())
    assert kind == "cubin" and image[:4] == b"\x7fELF"


def test_nvrtc_falls_back_to_ptx_for_an_architecture_it_does_not_know():
    nvrtc = nvrtc_or_skip()
    supported = list(nvrtc.nvrtcGetSupportedArchs()[1])
    unknown = next(a for a in range(supported[0] + 1, 200) if a not in supported)
    image, kind = kernels.nvrtc_compile((unknown // 10, unknown % 10), nvrtc)
    newest_below = max(a for a in supported if a <= unknown)
    assert kind == "ptx"
    text = image.decode(errors="replace")
    assert f".target sm_{newest_below}" in text and ".entry edge_preprocess" in text


def test_nvrtc_refuses_an_architecture_older_than_it_supports():
    nvrtc = nvrtc_or_skip()
    with pytest.raises(CudaError, match="NVRTC cannot target sm_30"):
        kernels.nvrtc_compile((3, 0), nvrtc)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_nvcc_compiles_the_same_source():
    assert kernels.nvcc_compile((8, 7))[:4] == b"\x7fELF"


def test_the_parameter_table_matches_the_kernel_signature():
    signature = re.search(r"edge_preprocess\((.*?)\)\s*\{", kernels.KERNEL_SOURCE, re.S).group(1)
    c_types = {"p": ("unsigned char*", "void*"), "i": ("int",), "f": ("float",), "d": ("double",)}
    declared = [p.replace("__restrict__", "").replace("const", "").split() for p in signature.split(",")]
    assert len(declared) == len(kernels.PARAMETERS)
    for words, (name, kind) in zip(declared, kernels.PARAMETERS):
        assert words[-1] == name
        assert " ".join(words[:-1]) in c_types[kind], (name, words)


def test_launch_args_must_cover_every_parameter():
    with pytest.raises(ValueError, match="takes 23 arguments, got 2"):
        kernels.LaunchArgs((1, 2))


def test_grid_covers_every_output_pixel():
    assert kernels.grid_for((640, 640)) == (20, 80, 1)
    assert kernels.grid_for((33, 9)) == (2, 2, 1)


class _Stream:
    handle = 0x5001


def test_the_driver_launch_passes_every_value_in_order():
    driver = FakeCudaDriver("".join(kind for _, kind in kernels.PARAMETERS))
    kernel = kernels.DriverKernel(driver, b"\x7fELF-cubin")
    values = [0x7F0000001000, 3840, 1, 2, 1280, 720, 224, 126, 0, 49, 5.714285714285714, 5.714285714285714,
              0x7F0000100000, 224, 224, 0.5, 0.25, 0.125, -1.5, -2.0, 3.0, 114, kernels.SWAP_RB | kernels.OUT_F16]
    kernel.launch(kernels.LaunchArgs(values), (7, 28, 1), _Stream())
    launch = driver.launches[0]
    assert launch["grid"] == (7, 28, 1) and launch["block"] == kernels.BLOCK and launch["stream"] == 0x5001
    assert launch["values"] == pytest.approx(values)
    assert driver.log.names() == ["cuInit", "cuModuleLoadData", "cuModuleGetFunction", "cuLaunchKernel"]
    assert driver.log.calls[2][2] == (b"edge_preprocess",)
    kernel.close()
    kernel.close()
    assert driver.log.names().count("cuModuleUnload") == 1
    with pytest.raises(CudaError, match="closed"):
        kernel.launch(kernels.LaunchArgs(values), (1, 1, 1), _Stream())


@pytest.mark.parametrize("call, error", [("cuModuleLoadData", CUresult.CUDA_ERROR_INVALID_IMAGE),
                                         ("cuLaunchKernel", CUresult.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)])
def test_driver_errors_name_the_call_and_the_error(call, error):
    driver = FakeCudaDriver("".join(kind for _, kind in kernels.PARAMETERS))
    driver.fail[call] = error
    with pytest.raises(CudaError, match=rf"^{call} failed: {error.name}$"):
        kernel = kernels.DriverKernel(driver, b"\x7fELF")
        kernel.launch(kernels.LaunchArgs([0] * len(kernels.PARAMETERS)), (1, 1, 1), _Stream())
