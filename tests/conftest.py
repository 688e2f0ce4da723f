"""Shared fixtures: tiny models of every recipe, generated images, a folder of trained models."""

from __future__ import annotations

import importlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.core.card import ModelCard
from detector.core.recipes import recipes

RECIPE_NAMES = sorted(recipes())


def make_image(height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """A deterministic, textured RGB uint8 test image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / 7.0 + seed), np.cos(yy / 5.0), np.sin((xx + yy) / 11.0)], axis=-1)
    noise = rng.normal(0, 0.15, size=(height, width, 3))
    return np.clip((base * 0.4 + 0.5 + noise) * 255, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@contextmanager
def no_toast(match: str) -> Iterator[None]:
    """The app shows an error once, in the page: no Gradio toast repeats it.

    Outside a request, Gradio's ``gr.Warning`` / ``gr.Info`` toasts are ``UserWarning``s; none
    whose message matches ``match`` may be raised inside the block.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    toasts = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and re.search(match, str(w.message))
    ]
    assert not toasts, f"the error was also shown as a toast: {toasts}"


def tiny_card(name: str, recipe: str, **fields) -> ModelCard:
    spec = recipes()[recipe].spec(**recipes()[recipe].tiny)
    return ModelCard(name=name, spec=spec, sha256="", **fields)


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """A models folder with a tiny 'trained' simple_cnn and a tiny attention model."""
    from detector.core.models import export_model

    root = tmp_path_factory.mktemp("models")
    for name, recipe, auc in (
        ("tiny_cnn", "simple_cnn", 0.7),
        ("tiny_attention", "efficientnet_b7_attention", 0.9),
    ):
        card = tiny_card(
            name,
            recipe,
            threshold=0.5,
            uncertain_band=(0.4, 0.6),
            title=f"Tiny {recipe}",
            metrics={"test": {"roc_auc": auc}},
        )
        model = recipes()[recipe].build(card.spec)
        export_model(model, root / name, card)
    return root


@pytest.fixture(scope="module")
def app():
    """The Gradio app module (``app.py``), imported once per test module."""
    return importlib.import_module("app")


@pytest.fixture
def models(trained_dir, monkeypatch):
    """`trained_dir`, made the models folder through ``FAKEDETECT_MODELS_DIR``."""
    monkeypatch.setenv("FAKEDETECT_MODELS_DIR", str(trained_dir))
    return trained_dir
