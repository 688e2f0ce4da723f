"""Loading published checkpoints from the Hugging Face Hub into the recipes of `detector.core`.

It owns the Hub download (cache first, offline-aware), safe loading of ``.keras`` archives, and
the conversion of the published S1 ``.h5`` checkpoint into its recipe with a model card. It may
import `detector.core`. ``import detector`` does not load it: `detector.load_published_s1` and
the other Hub loaders import it on first use.
"""

from detector.hub.loader import (
    fetch_from_hub,
    load_keras_from_hub,
    load_published_s1,
    load_s1_h5,
)

__all__ = ["fetch_from_hub", "load_keras_from_hub", "load_published_s1", "load_s1_h5"]
