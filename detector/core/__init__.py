"""The model core: everything that knows what a model is and how it scores an image.

It owns the recipe registry (`detector.core.recipes`, one module per recipe), the preprocessing
spec and the model cards that carry it, the custom layers and offline backbones (MobileNetV2,
EfficientNet-Lite0), the bundled-models registry and the one model-name resolver (`models`), the
`Detector` runtime (`runtime`, with batch-norm folding in `folding`), image decoding and its
limits (`images`, `containers`), patch scoring (`patches`), heatmaps and overlays (`heatmaps`),
the domain warnings a prediction carries (`domain`, reading the JPEG quality and EXIF camera
fields in `jpeg` and `exif`), the result types and the typed errors. It imports nothing else
from `detector`: every other layer builds on it, and Keras is imported in one place (`_keras`).
"""
