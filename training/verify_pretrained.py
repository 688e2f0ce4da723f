"""Checks the Keras MobileNetV2 with converted weights against a pure-torch reference forward.

Needs torch (CPU) installed by hand; torch is NOT a project requirement and this script is not
imported by anything. Run::

    python -m training.verify_pretrained [--weights FILE.pth] [--rcc erase.rcc] [--images DIR]

It checks that

1. :func:`training.pretrained.read_torch_state_dict` (no torch) returns exactly what
   ``torch.load(weights_only=True)`` returns, for the legacy file and for a zip re-save of it;
2. the Keras backbone + ``GlobalAveragePooling2D`` + ``Dense(1000)`` gives the same ImageNet logits
   as a reference MobileNetV2 written with ``torch.nn.functional`` ops (max abs difference), on
   random inputs at several sizes, odd ones included;
3. natural photos get sensible ImageNet classes (photos cut out of Debian ``gcompris-qt-data``'s
   ``erase.rcc``, or any images in ``--images``);
4. how long one 224 px forward takes inside ``tf.function``.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from detector.core._keras import keras, tf
from detector.core.mobilenet_v2 import (
    INVERTED_RESIDUAL_SETTING,
    build_mobilenet_v2,
    imagenet_normalize,
)
from training.pretrained import (
    fetch_mobilenet_v2_weights,
    imagenet_classifier_weights,
    load_mobilenet_v2_imagenet,
    read_torch_state_dict,
)

_RCC_CANDIDATES = ("/usr/share/gcompris-qt/rcc/erase.rcc",)


def torch_reference_logits(state: dict, x_nchw):  # type: ignore[no-untyped-def]
    """torchvision's MobileNetV2 forward, written with torch.nn.functional only."""
    import torch
    import torch.nn.functional as F

    def bn(x, p):  # type: ignore[no-untyped-def]
        return F.batch_norm(
            x,
            state[f"{p}.running_mean"],
            state[f"{p}.running_var"],
            state[f"{p}.weight"],
            state[f"{p}.bias"],
            training=False,
            eps=1e-5,
        )

    def relu6(x):  # type: ignore[no-untyped-def]
        return F.hardtanh(x, 0.0, 6.0)

    x = relu6(
        bn(F.conv2d(x_nchw, state["features.0.0.weight"], stride=2, padding=1), "features.0.1")
    )
    index, in_ch = 1, 32
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{index}.conv"
            y = x
            j = 0
            if t != 1:
                y = relu6(bn(F.conv2d(y, state[f"{p}.0.0.weight"]), f"{p}.0.1"))
                j = 1
            hidden = y.shape[1]
            y = F.conv2d(y, state[f"{p}.{j}.0.weight"], stride=stride, padding=1, groups=hidden)
            y = relu6(bn(y, f"{p}.{j}.1"))
            y = bn(F.conv2d(y, state[f"{p}.{j + 1}.weight"]), f"{p}.{j + 2}")
            x = x + y if stride == 1 and in_ch == c else y
            in_ch = c
            index += 1
    x = relu6(bn(F.conv2d(x, state["features.18.0.weight"]), "features.18.1"))
    features = x
    pooled = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    logits = F.linear(pooled, state["classifier.1.weight"], state["classifier.1.bias"])
    return features, logits


def build_keras_classifier(size: tuple[int | None, int | None], state: dict) -> keras.Model:
    """Backbone + GAP + Dense(1000) with the ImageNet weights."""
    inputs = keras.Input((*size, 3))
    features = build_mobilenet_v2(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(1000, name="logits")(pooled)
    model = keras.Model(inputs, [features, logits])
    count = load_mobilenet_v2_imagenet(model, state_dict=state)
    model.get_layer("logits").set_weights(list(imagenet_classifier_weights(state_dict=state)))
    print(f"layers set: {count}")
    return model


def cut_images_from_rcc(path: Path) -> list[bytes]:
    """Cuts the JPEG/WebP files out of a Qt resource file (each follows a 4-byte length)."""
    from PIL import Image

    buf = path.read_bytes()
    found = []
    for match in re.finditer(rb"\xff\xd8\xff|RIFF....WEBP", buf, re.S):
        start = match.start()
        (length,) = struct.unpack(">I", buf[start - 4 : start])
        if 0 < length <= len(buf) - start:
            data = buf[start : start + length]
            try:
                Image.open(io.BytesIO(data)).verify()
            except Exception:
                continue
            found.append(data)
    return found


def preprocess(data: bytes) -> np.ndarray:
    """torchvision's eval transform: resize short side to 256, centre-crop 224, normalise."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    return imagenet_normalize(np.asarray(image))


def _labels() -> list[str]:
    try:
        import gradio

        path = Path(gradio.__file__).parent / "media_assets/data/imagenet_labels.json"
        return json.loads(path.read_text())
    except Exception:
        return [str(i) for i in range(1000)]


def main(argv: list[str] | None = None) -> int:
    """Runs the checks; returns 0 if the logits match to ``--tol``."""
    try:
        import torch
    except ImportError:
        print("this check needs torch (CPU): pip install torch; it is not a project requirement")
        return 2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rcc", type=Path, default=None)
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    path = fetch_mobilenet_v2_weights(weights_path=args.weights)
    t0 = time.perf_counter()
    state = read_torch_state_dict(path)
    print(f"read {len(state)} tensors without torch in {time.perf_counter() - t0:.2f} s")

    # 1. reader == torch.load, legacy and zip formats
    reference = torch.load(path, map_location="cpu", weights_only=True)
    assert list(reference) == list(state), "key order differs"
    for key, tensor in reference.items():
        assert state[key].dtype == tensor.numpy().dtype, key
        np.testing.assert_array_equal(state[key], tensor.numpy(), err_msg=key)
    with tempfile.TemporaryDirectory() as tmp:
        zipped = Path(tmp) / "resaved.pth"
        torch.save(reference, zipped)
        resaved = read_torch_state_dict(zipped)
        for key, tensor in reference.items():
            np.testing.assert_array_equal(resaved[key], tensor.numpy(), err_msg=key)
        # a non-contiguous tensor sharing a storage with another one
        base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
        torch.save({"t": base.t(), "v": base[1:, 2:4], "s": base[0, 0]}, zipped)
        shared = read_torch_state_dict(zipped)
        np.testing.assert_array_equal(shared["t"], base.t().numpy())
        np.testing.assert_array_equal(shared["v"], base[1:, 2:4].numpy())
        np.testing.assert_array_equal(shared["s"], base[0, 0].numpy())
    print("reader: identical to torch.load (legacy file, zip re-save, strided views)")

    torch_state = {k: torch.from_numpy(v) for k, v in state.items()}
    model = build_keras_classifier((None, None), state)
    worst = 0.0
    rng = np.random.default_rng(0)
    for h, w in [(224, 224), (128, 128), (225, 191), (97, 161)]:
        x = rng.standard_normal((4, h, w, 3)).astype(np.float32)
        with torch.no_grad():
            ref_feat, ref_logits = torch_reference_logits(
                torch_state, torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            )
        feat, logits = model(x, training=False)
        d_logits = float(np.max(np.abs(np.asarray(logits) - ref_logits.numpy())))
        d_feat = float(np.max(np.abs(np.asarray(feat) - ref_feat.numpy().transpose(0, 2, 3, 1))))
        scale = float(np.max(np.abs(ref_logits.numpy())))
        print(
            f"{h}x{w}: feature map {tuple(feat.shape)}, max|diff| features {d_feat:.2e}, "
            f"logits {d_logits:.2e} (max|logit| {scale:.1f})"
        )
        worst = max(worst, d_logits)

    labels = _labels()
    images: list[tuple[str, bytes]] = []
    if args.images is not None:
        images = [(p.name, p.read_bytes()) for p in sorted(args.images.iterdir()) if p.is_file()]
    else:
        rcc = args.rcc or next((Path(c) for c in _RCC_CANDIDATES if Path(c).is_file()), None)
        if rcc is not None:
            images = [(f"{rcc.name}#{i}", b) for i, b in enumerate(cut_images_from_rcc(rcc))]
    if images:
        batch = np.stack([preprocess(data) for _, data in images])
        _, logits = model(batch, training=False)
        probs = tf.nn.softmax(logits).numpy()
        with torch.no_grad():
            _, ref_logits = torch_reference_logits(
                torch_state, torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())
            )
        agree = int(np.sum(probs.argmax(1) == ref_logits.numpy().argmax(1)))
        print(f"photos: top-1 agrees with torch on {agree}/{len(images)}")
        for (name, _), p in zip(images, probs, strict=True):
            top = np.argsort(p)[::-1][:3]
            print(f"  {name}: " + ", ".join(f"{labels[i]} ({i}) {p[i]:.2f}" for i in top))
    else:
        print("photos: none found (pass --rcc or --images)")

    fixed = build_keras_classifier((224, 224), state)
    forward = tf.function(lambda x: fixed(x, training=False), reduce_retracing=True)
    x = tf.constant(rng.standard_normal((1, 224, 224, 3)).astype(np.float32))
    forward(x)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        forward(x)[1].numpy()
        times.append(time.perf_counter() - t0)
    print(f"tf.function forward, 1 x 224 px: median {1000 * np.median(times):.1f} ms")

    ok = worst <= args.tol
    print(f"max |logit diff| {worst:.2e} -> {'OK' if ok else 'FAIL'} (tol {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
