"""Train the digit embedder on letters and symbols, export it, and measure open-set recognition of digits.

    python models/digit_embedder/train.py     # train, export models/digit_embedder/digit_embedder.onnx, report

The embedder never sees a digit in training (models/digit_embedder/crops.py: identities are letters
and symbols). It is then asked to recognise the digits 0-9 from a gallery of clean pictures
(one per Hershey font, 7 a digit): each held-out digit crop is matched to the gallery by cosine
similarity, as a face would be matched to a gallery of people who were not in the training data.
Unknown identities (held-out letter crops) must fall below the match threshold. Reported: the
rank-1 accuracy on digits, the accuracy and false-accept rate at the threshold written into the
edge config, and the same figures through the edge runtime (image in, embedding out).
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import crops  # noqa: E402

SEED = 0
PER_IDENTITY = 400
HELD_OUT = 1000
FONTS = 7


def preprocess(images) -> np.ndarray:
    """The model inputs exactly as the edge runtime makes them (edge.preprocess with this folder's config)."""
    from edge.config import InputSpec, PreprocessSpec
    from edge.preprocess import Preprocessor

    config = json.loads((HERE / "edge_config.json").read_text())
    spec = PreprocessSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["preprocess"].items()})
    preprocessor = Preprocessor(InputSpec(config["input"]["name"], tuple(config["input"]["shape"])), spec)
    return np.concatenate([preprocessor(image)[0].copy() for image in images])


def train(inputs: np.ndarray, labels: np.ndarray, classes: int, epochs: int):
    import torch
    from model import CosineHead, build

    torch.manual_seed(SEED)
    generator = np.random.default_rng(SEED)
    model, head = build(), CosineHead(classes)
    parameters = list(model.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=3e-3, weight_decay=1e-4)
    steps = epochs * math.ceil(len(inputs) / 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    x_all, y_all = torch.from_numpy(inputs), torch.from_numpy(labels)
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(generator.permutation(len(x_all)))
        for start in range(0, len(order), 128):
            batch = order[start:start + 128]
            x = x_all[batch]
            if generator.random() < 0.5:  # light polarity must not matter
                x = 1.0 - x
            loss = torch.nn.functional.cross_entropy(head(model(x), y_all[batch]), y_all[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def recognition(embed, threshold: float) -> dict:
    """Open-set figures for an ``embed(images) -> (N, D)`` function."""
    gallery_images = [crops.clean(digit, font) for digit in crops.DIGITS for font in range(FONTS)]
    gallery = normalise(embed(gallery_images))
    gallery_ids = np.repeat(np.arange(len(crops.DIGITS)), FONTS)
    digit_images, digit_ids = crops.batch(crops.DIGITS, "held_out", 0, HELD_OUT)
    letter_images, _ = crops.batch(crops.TRAIN_CHARS, "held_out", 0, HELD_OUT // 2)
    best = {}
    for name, images in (("digits", digit_images), ("unknown", letter_images)):
        similarity = normalise(embed(images)) @ gallery.T  # (N, gallery)
        per_identity = np.full((len(images), len(crops.DIGITS)), -1.0)
        for identity in range(len(crops.DIGITS)):
            per_identity[:, identity] = similarity[:, gallery_ids == identity].max(axis=1)
        best[name] = (per_identity.argmax(axis=1), per_identity.max(axis=1))
    predicted, score = best["digits"]
    return {
        "rank1_accuracy": round(float((predicted == digit_ids).mean()), 4),
        "accuracy_at_threshold": round(float(((predicted == digit_ids) & (score >= threshold)).mean()), 4),
        "unknown_accepted_at_threshold": round(float((best["unknown"][1] >= threshold).mean()), 4),
        "threshold": threshold,
        "digit_probes": len(digit_ids), "unknown_probes": len(letter_images), "gallery_images": len(gallery_ids),
    }


FONT_NAMES = ("simplex", "plain", "duplex", "complex", "triplex", "script_simplex", "script_complex")


def write_gallery(folder: Path) -> None:
    """The shipped gallery: one folder per digit, one clean picture per font (what a user would enrol)."""
    import cv2

    for digit in crops.DIGITS:
        (folder / digit).mkdir(parents=True, exist_ok=True)
        for font in range(FONTS):
            cv2.imwrite(str(folder / digit / f"{FONT_NAMES[font]}.png"), crops.gallery_picture(digit, font))


def choose_threshold(embed) -> float:
    """The similarity threshold at which at most 5 % of unknown identities are accepted (on held-out letters)."""
    letters, _ = crops.batch(crops.TRAIN_CHARS, "held_out", HELD_OUT // 2, HELD_OUT // 2)
    gallery = normalise(embed([crops.clean(d, f) for d in crops.DIGITS for f in range(FONTS)]))
    scores = (normalise(embed(letters)) @ gallery.T).max(axis=1)
    return round(float(np.quantile(scores, 0.95)), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=HERE / "digit_embedder.onnx")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--weights", type=Path, help="skip training: export these weights (a state dict)")
    parser.add_argument("--save-weights", type=Path, help="also keep the trained weights here")
    args = parser.parse_args()
    import torch
    from model import build

    torch.set_num_threads(1)  # same arithmetic order on every machine: reproducible weights
    start = time.perf_counter()
    if args.weights:
        model = build()
        model.load_state_dict(torch.load(args.weights))
        model.eval()
    else:
        images, labels = crops.batch(crops.TRAIN_CHARS, "train", 0, PER_IDENTITY * len(crops.TRAIN_CHARS))
        model = train(preprocess(images), labels, len(crops.TRAIN_CHARS), args.epochs)
    seconds = time.perf_counter() - start
    if args.save_weights:
        torch.save(model.state_dict(), args.save_weights)

    def torch_embed(images):
        with torch.no_grad():
            return model(torch.from_numpy(preprocess(images))).numpy()

    write_gallery(HERE / "gallery")
    threshold = choose_threshold(torch_embed)
    config_path = HERE / "edge_config.json"
    config = json.loads(config_path.read_text())
    if config["decoder"].get("match_threshold") != threshold:
        config["decoder"]["match_threshold"] = threshold
        print(f"match threshold (5 % of unknown identities accepted): {threshold}; edit edge_config.json to keep it")
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "digit_embedder.pt"
        torch.save(model.state_dict(), weights)
        edited = Path(scratch) / "edge_config.json"
        edited.write_text(json.dumps(config))
        command = [sys.executable, "-m", "export", "onnx", f"{HERE / 'model.py'}:build", "--weights", str(weights),
                   "--input-shape", "1,1,32,32", "--input-name", "image", "--output-names", "embedding",
                   "--opset", "13", "--config", str(edited), "--output", str(args.output)]
        subprocess.run(command, check=True, cwd=ROOT)
    import edge

    with edge.load_model(args.output) as runtime:
        def edge_embed(images):
            return np.stack([runtime(image).vectors[0] for image in images])

        metrics = {"train_seconds": round(seconds, 1), "epochs": args.epochs,
                   "train_identities": len(crops.TRAIN_CHARS), "train_crops": PER_IDENTITY * len(crops.TRAIN_CHARS),
                   "pytorch": recognition(torch_embed, threshold), "edge_runtime": recognition(edge_embed, threshold)}
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
