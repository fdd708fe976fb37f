"""Train the digits classifier and export it through edge's own toolchain.

    python models/digits/train.py            # train, export models/digits/digits.onnx, report accuracy

Data: scikit-learn's bundled handwritten digits (1,797 8x8 images, 16 grey levels; a copy of
the UCI ML hand-written digits test set, no download). Images are rendered the way a camera
frame reaches the model: white ink on black, 0..255, then preprocessed as the edge config says
(value = pixel / 255), so training sees exactly what the runtime feeds. The held-out quarter
(stratified, seed 0) is never trained on; its accuracy is measured twice: on the PyTorch model,
and through the full edge runtime on rendered 64x64 BGR images (image in, class out).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEED = 0


def split() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, held-out images, held-out labels); images are 8x8 uint8 0..255."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25,
                                                        random_state=SEED, stratify=digits.target)
    return x_train, y_train, x_test, y_test


def render(image_8x8: np.ndarray, size: int = 64) -> np.ndarray:
    """A digit as a camera-like BGR frame: each source pixel becomes a size/8 square."""
    block = np.kron(image_8x8, np.ones((size // 8, size // 8), np.uint8))
    return np.repeat(block[:, :, None], 3, axis=2)


def train(images: np.ndarray, labels: np.ndarray, epochs: int = 40):
    """Adam on the full training set in mini-batches, with small random shifts as augmentation."""
    import torch

    sys.path.insert(0, str(HERE))
    from model import build

    torch.manual_seed(SEED)
    generator = np.random.default_rng(SEED)
    model = build()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    y_all = torch.from_numpy(labels.astype(np.int64))
    for _ in range(epochs):
        order = torch.from_numpy(generator.permutation(len(x_all)))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            x = x_all[batch]
            shift = [int(v) for v in generator.integers(-1, 2, size=2)]
            x = torch.roll(x, shifts=shift, dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(x), y_all[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def torch_accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Held-out accuracy of the PyTorch model itself."""
    import torch

    with torch.no_grad():
        logits = model(torch.from_numpy(images.astype(np.float32) / 255.0)[:, None])
    return float((logits.argmax(1).numpy() == labels).mean())


def edge_accuracy(onnx_path: Path, images: np.ndarray, labels: np.ndarray, backend: str = "auto") -> float:
    """Held-out accuracy through the edge runtime: rendered BGR frame in, class out."""
    sys.path.insert(0, str(ROOT))
    import edge

    with edge.load_model(onnx_path, backend=backend) as model:
        predictions = [int(model(render(image)).class_ids[0]) for image in images]
    return float((np.asarray(predictions) == labels).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=HERE / "digits.onnx")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # same arithmetic order on every machine: reproducible weights
    x_train, y_train, x_test, y_test = split()
    start = time.perf_counter()
    model = train(x_train, y_train, args.epochs)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "digits.pt"
        torch.save(model.state_dict(), weights)
        command = [sys.executable, "-m", "export", "onnx", f"{HERE / 'model.py'}:build", "--weights", str(weights),
                   "--input-shape", "1,1,8,8", "--input-name", "image", "--output-names", "logits",
                   "--opset", "13", "--config", str(HERE / "edge_config.json"), "--output", str(args.output)]
        subprocess.run(command, check=True, cwd=ROOT)
    metrics = {
        "train_images": int(len(x_train)), "held_out_images": int(len(x_test)),
        "train_seconds": round(seconds, 1), "epochs": args.epochs,
        "held_out_accuracy_pytorch": round(torch_accuracy(model, x_test, y_test), 4),
        "held_out_accuracy_edge_runtime": round(edge_accuracy(args.output, x_test, y_test), 4),
    }
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
