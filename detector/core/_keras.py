"""The single place that imports TensorFlow and Keras, with quiet, offline-friendly settings."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras
import tensorflow as tf

__all__ = ["keras", "tf"]
