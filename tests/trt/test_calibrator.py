"""edge.tensorrt.calibrator: INT8 calibration batches are the model's own CPU preprocessing of the images,
delivered through FakeCudaLayer device memory; the cache is keyed by images, preprocessing and batch size."""

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from fake_tensorrt import install_fake
from tiny_models import colour_classifier_config, make_colour_classifier

from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.preprocess import Preprocessor
from edge.tensorrt.builder import BuildOptions, Calibration, build_engine
from edge.tensorrt.calibrator import calibration_cache_key, calibration_images, make_calibrator

WEAK = ["8.2", "8.5", "10.3"]
CONFIG = EdgeConfig.from_dict(colour_classifier_config())


@pytest.fixture()
def images(tmp_path) -> Path:
    """Five images of different sizes and colours, named so natural order differs from string order."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 60), (32, 32), (90, 50), (64, 48), (20, 100)]):
        cv2.imwrite(str(folder / f"img{i * 5}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def expected(folder: Path, config: EdgeConfig = CONFIG) -> np.ndarray:
    """The CPU preprocessing of every image, in the order the calibrator reads them."""
    preprocess = Preprocessor.from_config(config)
    return np.concatenate([preprocess(cv2.imread(str(p)))[0].copy() for p in calibration_images(folder)])


def dynamic_colour(path: Path) -> Path:
    model = onnx.load(str(make_colour_classifier(path)))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("version", WEAK)
def test_build_calibrates_with_the_cpu_preprocessing_of_the_images(monkeypatch, tmp_path, images, version):
    fake = install_fake(monkeypatch, version)
    cuda = fake.cuda_layer()
    calibration = Calibration(images=images, cache_dir=tmp_path / "calib", cuda=cuda)  # config: embedded in ONNX
    result = build_engine(make_colour_classifier(tmp_path / "c.onnx"), BuildOptions(precision="int8",
                          calibration=calibration), report=lambda line: None)
    batches = [b["image"] for b in fake.builds[-1]["calibration_batches"]]
    assert len(batches) == 5 and np.array_equal(np.concatenate(batches), expected(images))
    assert fake.builds[-1]["calibration_batch_size"] == 1 and result.precision_obtained == "int8"
    assert [c.split("(")[0] for c in cuda.calls[:4]] == ["alloc_host", "alloc_device", "stream", "copy_to_device"]
    assert cuda.calls.count("copy_to_device(12288)") == 5
    cache = list((tmp_path / "calib").iterdir())
    assert len(cache) == 1 and cache[0].read_bytes().startswith(b"TRT-")

    again = install_fake(monkeypatch, version)  # same images and settings: the cache is read, no batches
    build_engine(make_colour_classifier(tmp_path / "c.onnx"), BuildOptions(precision="int8", calibration=Calibration(
        images=images, cache_dir=tmp_path / "calib", cuda=again.cuda_layer())), report=lambda line: None)
    assert again.builds[-1]["calibration_cache_read"] and "calibration_batches" not in again.builds[-1]


@pytest.mark.parametrize("version", WEAK)
def test_dynamic_network_calibrates_at_the_profile_opt_batch(monkeypatch, tmp_path, images, version):
    fake = install_fake(monkeypatch, version)
    profile = ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))
    build_engine(dynamic_colour(tmp_path / "d.onnx"), BuildOptions(precision="int8", profiles={"image": profile},
                 calibration=Calibration(images=images, config=CONFIG, cache_dir=tmp_path, cuda=fake.cuda_layer())),
                 report=lambda line: None)
    batches = [b["image"] for b in fake.builds[-1]["calibration_batches"]]
    assert [b.shape for b in batches] == [(2, 3, 32, 32)] * 2  # 5 images: the incomplete last batch is dropped
    assert np.array_equal(np.concatenate(batches), expected(images)[:4])
    assert "IBuilderConfig.set_calibration_profile(<IOptimizationProfile>)" in fake.calls


@pytest.mark.parametrize("version", WEAK)
def test_calibrator_protocol(monkeypatch, tmp_path, images, version):
    fake = install_fake(monkeypatch, version)
    trt, cuda = fake.module, fake.cuda_layer()
    blocks = set(fake.memory.blocks)
    calibrator = make_calibrator(trt, cuda, images, CONFIG, tmp_path / "calib", batch_size=2)
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2) and calibrator.get_batch_size() == 2
    assert calibrator.read_calibration_cache() is None
    want = expected(images)
    for start in (0, 2):  # called outside any activate(): the calibrator makes its context current itself
        (pointer,) = calibrator.get_batch(["image"])
        got = fake.memory.view(pointer, want[:2].nbytes).view(np.float32).reshape(2, 3, 32, 32)
        assert np.array_equal(got, want[start:start + 2])
    assert calibrator.get_batch(["image"]) is None and calibrator.error is None
    calibrator.write_calibration_cache(memoryview(b"TRT-8502-EntropyCalibration2\nimage: 3c010204\n"))
    key = calibration_cache_key(calibration_images(images), CONFIG, 2)
    assert calibrator.cache_file == tmp_path / "calib" / f"int8-calibration-{key}.cache"
    assert calibrator.read_calibration_cache().startswith(b"TRT-8502")
    calibrator.close()
    assert set(fake.memory.blocks) - blocks == {s for s in fake.memory.streams} - blocks  # buffers freed


def test_multi_input_models_are_refused_inside_the_callback(monkeypatch, tmp_path, images):
    fake = install_fake(monkeypatch, "10.3")
    calibrator = make_calibrator(fake.module, fake.cuda_layer(), images, CONFIG, tmp_path)
    assert calibrator.get_batch(["image", "mask"]) is None
    assert isinstance(calibrator.error, EdgeError) and "calibrator factory" in str(calibrator.error)


def _key(folder, config=CONFIG, batch=1):
    return calibration_cache_key(calibration_images(folder), config, batch)


def test_cache_key_changes_with_images_config_and_batch(images):
    key = _key(images)
    assert key == _key(images) and len(key) == 64
    assert _key(images, batch=2) != key
    assert _key(images, EdgeConfig.from_dict(colour_classifier_config(size=64))) != key
    scaled = colour_classifier_config()
    scaled["preprocess"]["scale"] = 1.0
    assert _key(images, EdgeConfig.from_dict(scaled)) != key
    renamed = colour_classifier_config()
    renamed["labels"] = ["r", "g", "b"]  # labels do not change the input: same key
    assert _key(images, EdgeConfig.from_dict(renamed)) == key
    image = cv2.imread(str(images / "img5.png"))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(images / "img5.png"), image)
    assert _key(images) != key


def test_calibration_images_natural_order_and_limit(images):
    assert [p.name for p in calibration_images(images)] == ["img0.png", "img5.png", "img10.png", "img15.png",
                                                             "img20.png"]
    assert len(calibration_images(images, max_images=3)) == 3


@pytest.mark.parametrize("content", ["empty", "text only", "missing"])
def test_folder_without_images(monkeypatch, tmp_path, content):
    fake = install_fake(monkeypatch, "10.3")
    folder = tmp_path / "images"
    if content != "missing":
        folder.mkdir()
    if content == "text only":
        (folder / "readme.txt").write_text("x")
    with pytest.raises(EdgeError) as err:
        make_calibrator(fake.module, fake.cuda_layer(), folder, CONFIG, tmp_path)
    assert ("not found" if content == "missing" else "no images") in str(err.value) and "Fix:" in str(err.value)


def test_fewer_images_than_one_batch(monkeypatch, tmp_path, images):
    fake = install_fake(monkeypatch, "10.3")
    with pytest.raises(EdgeError, match="5 calibration images, fewer than one batch of 8"):
        make_calibrator(fake.module, fake.cuda_layer(), images, CONFIG, tmp_path, batch_size=8)


def test_tensorrt_11_has_no_calibrators(monkeypatch, tmp_path, images):
    fake = install_fake(monkeypatch, "11.1")
    with pytest.raises(EdgeError, match="no INT8 calibrators"):
        make_calibrator(fake.module, fake.cuda_layer(), images, CONFIG, tmp_path)


def test_builder_opens_and_closes_a_cuda_layer_when_none_is_given(monkeypatch, tmp_path, images):
    import edge.cuda

    fake = install_fake(monkeypatch, "10.3")
    layer = fake.cuda_layer()
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda: layer)
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "edge-cache"))
    build_engine(make_colour_classifier(tmp_path / "c.onnx"), BuildOptions(precision="int8",
                 calibration=Calibration(images=images)), report=lambda line: None)
    assert layer.closed and len(fake.builds[-1]["calibration_batches"]) == 5
    assert len(list((tmp_path / "edge-cache" / "calibration").glob("int8-calibration-*.cache"))) == 1
