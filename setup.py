"""edge: trained vision models on NVIDIA Jetson boards (and any CPU), with honest latency numbers."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def renamed_packages(folder, name):
    """The packages of a repository folder, renamed: export, export.commands -> edge_export, edge_export.commands."""
    return [name + package[len(folder):] for package in find_packages(include=[folder, folder + ".*"])]


setup(
    name="edge",
    version="0.1.0",
    description="Run trained vision models on Jetson cameras with ONNX Runtime, TensorRT or OpenCV; CPU fallback",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.6",  # the runtime; export/ (edge-export) needs 3.8 and says so
    # The folders keep the names the design card gives them (export/, benchmarks/: `python -m export`
    # in a checkout), but are installed under names that belong to edge, so that no other project's
    # module called "export" or "benchmarks" collides with them in site-packages. Code inside them
    # imports its siblings relatively. The model zoo (models/) is installed as edge/_zoo, so the
    # default model is found wherever edge is installed.
    packages=find_packages(include=["edge", "edge.*"])
    + ["edge._zoo"] + renamed_packages("export", "edge_export") + renamed_packages("benchmarks", "edge_benchmarks"),
    package_dir={"edge._zoo": "models", "edge_export": "export", "edge_benchmarks": "benchmarks"},
    package_data={
        "edge": ["data/samples/*.jpg", "data/samples/*.md"],
        "edge_benchmarks": ["schema.json", "SCHEMA.md"],
        "edge._zoo": ["manifest.json", "*/*.onnx", "*/*.json", "*/README.md", "*/LICENSE", "*/gallery/*/*.png"],
    },
    entry_points={
        "console_scripts": [
            "edge-camera = edge.camera:main",
            "edge-export = edge_export.__main__:main",
            "edge-bench = edge_benchmarks.__main__:main",
        ],
    },
    # OpenCV is never a hard dependency: on a Jetson, pip's opencv-python would shadow JetPack's
    # GStreamer-enabled OpenCV. Install the 'cpu' extra on laptops and CI, not on a board; a board
    # gets OpenCV from JetPack (sudo apt install nvidia-opencv) in a venv made with
    # --system-site-packages. PyYAML is a runtime dependency: edge.config reads YAML edge configs
    # (--config), and it is a small wheel that shadows nothing.
    install_requires=["numpy>=1.19", "onnx>=1.11", "pyyaml>=5.1", 'dataclasses; python_version < "3.7"'],
    extras_require={
        "cpu": ["onnxruntime>=1.10", "opencv-python>=4.1"],
        # For x86_64 / SBSA machines with an NVIDIA GPU; no OpenCV here (take it from 'cpu' on a PC,
        # from JetPack on a board). TensorRT is NOT listed: `pip install tensorrt` (and tensorrt-cu12)
        # on PyPI is a source stub that fetches the real wheels from NVIDIA's own package index at build
        # time, which fails where pip only knows PyPI, and nothing on pip fits a Jetson. Per platform:
        #   Jetson (JetPack 5/6): it comes with JetPack (sudo apt install nvidia-tensorrt; the Python module
        #     is python3-libnvinfer); make the venv with --system-site-packages so it is seen. Never pip it.
        #   x86_64 / SBSA Linux, Windows: pip install tensorrt-cu12 with NVIDIA's package index as an extra
        #     index (NVIDIA's TensorRT install guide; tensorrt-cu13 for a CUDA 13 driver), or NVIDIA's
        #     deb/rpm/tar packages with their Python wheel.
        # Also on a Jetson, onnxruntime-gpu comes from NVIDIA's Jetson wheels, not PyPI.
        "gpu": ["onnxruntime-gpu>=1.14", "pycuda>=2022.1"],
        # training-side conversions; torch itself is the user's own install (CPU or CUDA build)
        "export": [
            "tflite2onnx>=0.4.1",
            'keras>=3; python_version >= "3.9"',
            'ai-edge-litert; python_version >= "3.9" and platform_system == "Linux"',
            "onnxslim",
        ],
        "plots": ["matplotlib"],
        # --output mqtt://... (paho-mqtt 1.6 is the newest on Python 3.6; 2.x from 3.7)
        "mqtt": ["paho-mqtt>=1.6,<3"],
        # --backend triton over gRPC (HTTP needs nothing beyond the standard library)
        "triton": ["tritonclient[grpc]>=2.40"],
        # cuda-python + NVRTC compile and check the GPU preprocessing kernel without a GPU or driver
        # (tests/gpu). Same CUDA major for both: 13 where Python >= 3.10 (cuda-python 13 needs it, and
        # torch 2.14's cuda-bindings is 13), 12 on Python 3.9; none on 3.8 (those tests skip there).
        # kserve: the KServe v2 server the triton backend's tests start (Triton itself has no pip wheel)
        "test": ["pytest>=7", "ruff>=0.4", "vermin>=1.6", "scikit-learn", "jsonschema", "matplotlib", "pycocotools",
                 "paho-mqtt>=1.6,<3", "tritonclient[grpc]>=2.40", 'kserve>=0.21; python_version >= "3.9"',
                 'cuda-python>=13,<14; python_version >= "3.10" and sys_platform != "darwin"',
                 'nvidia-cuda-nvrtc>=13,<14; python_version >= "3.10" and sys_platform != "darwin"',
                 'cuda-python>=12.6,<13; python_version == "3.9" and sys_platform != "darwin"',
                 'nvidia-cuda-nvrtc-cu12; python_version == "3.9" and sys_platform != "darwin"'],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.6",
        "Programming Language :: Python :: 3.7",
        "Programming Language :: Python :: 3.8",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
