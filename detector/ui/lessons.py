"""The classroom's lessons: how a score is made, what a heatmap shows and where it misleads.

Markdown texts for the Streamlit classroom page, and the two built from a model's own numbers
(`lesson_pipeline`, `lesson_mislead`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector.core.patches import MAX_PATCHES
from detector.core.spec import Preprocessing
from detector.ui.texts import percent

if TYPE_CHECKING:
    from detector.ui.classroom import ModelInput

LESSON_INTRO = """A detector is a neural network trained on thousands of images labelled *real*
or *AI-generated*. It never "understands" a picture: it learns statistical traces (textures,
noise, colour patterns, the fingerprints that image generators leave) that separated the two
kinds of images **in its training data**. This page lets you see what that means, live, on any
image: pick one of the examples or upload your own."""
LESSON_PIPELINE = """**How a score is made.** {reads} The network turns those pixels into one
number, a *calibrated probability* that the image is AI-generated. Above the
threshold ({threshold}) the verdict is *AI-generated*, below it *real*; scores close to the
threshold are reported as *uncertain* rather than forced into a guess. A probability of 80%
means: among images that got this score during testing, about 8 in 10 were AI-generated. It is
evidence, not proof."""
#: How each preprocessing mode (`detector.core.spec.Preprocessing.resize`) reads an image.
PIPELINE_READS = {
    "resize": "The image is first shrunk (squashed) to the model's small square input, here "
    "**{size} x {size} pixels**: everything finer is gone before the model even looks.",
    "center_crop": "The image is first resized so that its shorter side is **{size} pixels**, "
    "and the central **{size} x {size} pixels** square is cropped: the edges are cut off and "
    "everything finer than that size is gone before the model even looks.",
    "native_crop": "The image is **not shrunk**: the model reads squares of **{size} x {size} "
    "pixels** cut out of it at its own resolution, so the finest pixel-level traces survive. "
    "A large image is scored on up to {patches} such patches spread over it and their scores "
    "are combined into one; an image smaller than {size} pixels is enlarged to fit. Below is "
    "the central patch.",
}
#: Added for a ``native_crop`` model that also scores the whole picture (``whole_view``).
PIPELINE_WHOLE_VIEW = (
    " The whole picture, shrunk to {size} x {size} pixels, is scored as one more view."
)
#: Added for a ``native_crop`` model that also scores a scene view (``scene_side``).
PIPELINE_SCENE_VIEW = (
    " A picture larger than that is also shrunk until its shorter side is {scene} pixels, the "
    "scale the model learnt whole scenes at, and its central {size} x {size} square is scored "
    "as one more view, which counts for half of the verdict."
)
LESSON_HEATMAP = """A heatmap tries to answer "where did the model look?". **Grad-CAM**
follows the score back into the network's last layer of image features and colours the places
whose features raised the *AI-generated* score the most. **Grad-CAM++** weighs those features
differently, so several separate areas can light up. Models with an **attention layer** also
show where that layer chose to look before deciding."""
LESSON_MISLEAD = """**Where heatmaps mislead.** The blocky map is what the model really
computed: a grid of only **{rows} x {cols}** blocks over its {size} px input. The smooth map is
the same grid, blurred for display: its soft edges are decoration, not precision. The colours
are relative to this image only (the hottest spot is always red, even when the score is low),
and two methods can disagree about the same image (see their overlap above). A hot area is
never proof that this part of the image was generated."""
LESSON_COMPRESSION = """Detectors learn from tiny pixel-level traces, and those are exactly what
**JPEG compression** and **downsizing** throw away. Every time an image is shared on social
media or a messenger, it is usually compressed and resized again. Move the slider: the image is
re-encoded (or shrunk) in memory and scored again, live. Watch the curve: if the score slides
towards the threshold, the model's evidence is disappearing with the pixels. A model trained
without compressed images can even flip its verdict."""
LESSON_LIMITS = """These numbers come from each model's card: they were measured once, on a
held-out test set of images the model never saw during training. They only hold for images
**like the training data**: a new image generator, a screenshot, a heavily edited photo or a
very small image can be scored badly while the model still sounds confident."""
QUIZ_INTRO = """Can you tell? Look at each image, make your guess, then reveal what the models
say and the true answer. Your score and the models' are kept for this session."""
NO_EXAMPLES = """The quiz needs example images with known answers. Add image files and an
`examples.json` listing them (`file`, `label` = `fake` or `real`, `source`, `generator`,
`licence`, `author`) to `assets/examples/`, or point `FAKEDETECT_EXAMPLES_DIR` at such a
folder, then reload this page."""


def lesson_pipeline(preprocessing: Preprocessing | int, threshold: float) -> str:
    """`LESSON_PIPELINE` filled in for one model, from its card's preprocessing.

    What the text says the model does to an image follows the card's ``resize`` mode (a bare
    input size stands for the ``resize`` mode).
    """
    prep = preprocessing if isinstance(preprocessing, Preprocessing) else None
    size = prep.size if prep else int(preprocessing)  # type: ignore[arg-type]
    mode = prep.resize if prep else "resize"
    reads = PIPELINE_READS[mode].format(size=size, patches=MAX_PATCHES)
    if prep is not None and mode == "native_crop" and prep.whole_view:
        reads += PIPELINE_WHOLE_VIEW.format(size=size)
    if prep is not None and prep.scene_side is not None:  # native_crop only (Preprocessing)
        reads += PIPELINE_SCENE_VIEW.format(size=size, scene=prep.scene_side)
    return LESSON_PIPELINE.format(reads=reads, threshold=percent(threshold))


def lesson_mislead(view: ModelInput) -> str:
    """`LESSON_MISLEAD` filled in for one model's input."""
    rows, cols = view.grid
    return LESSON_MISLEAD.format(rows=rows, cols=cols, size=view.size)
