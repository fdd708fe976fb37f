"""open_cuda's choice of layer (argument, EDGE_CUDA, default order) and its one-line errors."""

import pytest

import edge.cuda as cuda_package
from edge.cuda import available_layers, gpu_available, no_device_error, open_cuda
from edge.errors import EdgeError, MissingDependency

MISSING = {name: MissingDependency(module, f"the {name} CUDA layer", f"pip install {name}")
           for name, module in (("cuda-python", "cuda.bindings"), ("pycuda", "pycuda"))}
NO_DEVICE = no_device_error("cuda-python", "cudaErrorNoDevice")


def layers(monkeypatch, **outcomes):
    """Replace the two layer classes: outcome 'ok' constructs, an exception is raised. Returns tried names."""
    tried = []

    def factory(name):
        def construct(device=0):
            tried.append((name, device))
            outcome = outcomes[name.replace("-", "_")]
            if isinstance(outcome, Exception):
                raise outcome
            return f"{name} layer on {device}"
        return construct

    monkeypatch.setattr(cuda_package, "_layer_class", factory)
    return tried


@pytest.mark.parametrize("prefer, env, cuda_python, pycuda, expected, tried", [
    (None, None, "ok", "ok", "cuda-python layer on 0", ["cuda-python"]),
    (None, None, MISSING["cuda-python"], "ok", "pycuda layer on 0", ["cuda-python", "pycuda"]),
    (None, None, NO_DEVICE, "ok", "pycuda layer on 0", ["cuda-python", "pycuda"]),  # e.g. a driver too old
    ("pycuda", None, "ok", "ok", "pycuda layer on 0", ["pycuda"]),
    ("CUDA_PYTHON", None, "ok", "ok", "cuda-python layer on 0", ["cuda-python"]),
    (None, "pycuda", "ok", "ok", "pycuda layer on 0", ["pycuda"]),
    ("cuda-python", "pycuda", "ok", "ok", "cuda-python layer on 0", ["cuda-python"]),  # the argument wins
])
def test_selection(monkeypatch, prefer, env, cuda_python, pycuda, expected, tried):
    if env is None:
        monkeypatch.delenv("EDGE_CUDA", raising=False)
    else:
        monkeypatch.setenv("EDGE_CUDA", env)
    log = layers(monkeypatch, cuda_python=cuda_python, pycuda=pycuda)
    assert open_cuda(prefer) == expected
    assert [name for name, _ in log] == tried


@pytest.mark.parametrize("prefer, cuda_python, pycuda, error, message", [
    (None, MISSING["cuda-python"], MISSING["pycuda"], MissingDependency,
     r"needs the Python module 'cuda.bindings \(cuda-python\) or pycuda'.*Fix: pip install cuda-python"),
    (None, NO_DEVICE, MISSING["pycuda"], EdgeError, r"^cuda-python \| no CUDA device \(cudaErrorNoDevice\)"),
    ("pycuda", "ok", MISSING["pycuda"], MissingDependency, r"'pycuda'.*Fix: pip install pycuda"),  # no fallback
    ("opencl", "ok", "ok", EdgeError, r"unknown CUDA layer 'opencl'.*Fix: choose one of cuda-python, pycuda"),
])
def test_errors_are_one_line_and_name_the_fix(monkeypatch, prefer, cuda_python, pycuda, error, message):
    monkeypatch.delenv("EDGE_CUDA", raising=False)
    layers(monkeypatch, cuda_python=cuda_python, pycuda=pycuda)
    with pytest.raises(error, match=message) as info:
        open_cuda(prefer)
    assert "\n" not in str(info.value)


def test_the_device_index_is_passed_on(monkeypatch):
    monkeypatch.delenv("EDGE_CUDA", raising=False)
    log = layers(monkeypatch, cuda_python="ok", pycuda="ok")
    assert open_cuda(device=1) == "cuda-python layer on 1" and log == [("cuda-python", 1)]


def test_available_layers_names_each_layer_with_a_reason_or_none():
    found = available_layers()
    assert [name for name, _ in found] == ["cuda-python", "pycuda"]
    for _, reason in found:
        assert reason is None or ("Fix:" in reason and "\n" not in reason)
    usable, detail = gpu_available()
    assert usable == any(reason is None for _, reason in found)
    assert detail


def test_available_layers_without_the_device_check_only_imports(monkeypatch):
    import edge.cuda.pycuda_layer as pycuda_layer

    def missing():
        raise MISSING["pycuda"]

    monkeypatch.setattr(pycuda_layer, "import_driver", missing)
    reasons = dict(available_layers(check_device=False))
    assert reasons["pycuda"] == str(MISSING["pycuda"])
