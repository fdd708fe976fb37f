"""edge: trained vision models on NVIDIA Jetson boards (and any CPU), with honest latency numbers."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

setup(
    name="edge",
    version="0.1.0",
    description="Run trained vision models on Jetson cameras with ONNX Runtime, TensorRT or OpenCV; CPU fallback",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.8",
    packages=find_packages(include=["edge", "edge.*", "export", "export.*", "benchmarks", "benchmarks.*"])
    + ["edge._zoo"],
    # The model zoo lives at the repository root (models/) and is installed as edge/_zoo, so the
    # default model is found wherever edge is installed.
    package_dir={"edge._zoo": "models"},
    package_data={
        "edge": ["data/samples/*.jpg", "data/samples/*.md"],
        "benchmarks": ["schema.json", "SCHEMA.md"],
        "edge._zoo": ["manifest.json", "*/*.onnx", "*/*.json", "*/README.md", "*/LICENSE"],
    },
    # OpenCV is never a hard dependency: on a Jetson, pip's opencv-python would shadow JetPack's
    # GStreamer-enabled OpenCV. Install the 'cpu' extra on laptops and CI, not on a board.
    install_requires=["numpy>=1.19", "onnx>=1.12"],
    extras_require={
        "cpu": ["onnxruntime>=1.12", "opencv-python>=4.5"],
        "gpu": ["onnxruntime-gpu>=1.14", "tensorrt>=8.5", "pycuda>=2022.1", "opencv-python>=4.5"],
        # training-side conversions; torch itself is the user's own install (CPU or CUDA build)
        "export": [
            "tflite2onnx>=0.4.1",
            'keras>=3; python_version >= "3.9"',
            'ai-edge-litert; python_version >= "3.9" and platform_system == "Linux"',
            "onnxslim",
            "pyyaml",
        ],
        "plots": ["matplotlib"],
        "test": ["pytest>=7", "ruff>=0.4", "vermin>=1.6", "scikit-learn", "jsonschema", "matplotlib"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.8",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
