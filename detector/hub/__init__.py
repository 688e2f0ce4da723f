"""Loading published checkpoints from the Hugging Face Hub into the recipes of `detector.core`.

It owns the Hub download, cache first and offline-aware, and the safe loading of ``.keras``
archives (`download`), the copying of a legacy H5 checkpoint's weights into a recipe (`h5`), and
the published S1 checkpoint with its model card (`published`). It may import `detector.core`.
``import detector`` does not load it: `detector.load_published_s1` and the other Hub loaders
import it on first use.
"""

from detector.hub.download import PICKLE_SUFFIXES, fetch_from_hub, hub_offline, load_keras_from_hub
from detector.hub.h5 import IMAGENET_STDDEV_RGB
from detector.hub.published import S1_FILENAME, S1_REPO_ID, load_published_s1, load_s1_h5, s1_card

__all__ = [
    "IMAGENET_STDDEV_RGB",
    "PICKLE_SUFFIXES",
    "S1_FILENAME",
    "S1_REPO_ID",
    "fetch_from_hub",
    "hub_offline",
    "load_keras_from_hub",
    "load_published_s1",
    "load_s1_h5",
    "s1_card",
]
