"""Sample weights that balance content between the classes.

The wild pool's classes differ in content as well as in origin: fakes are 41 % portraits and
23 % art, reals 19 % and 4 %. Trained on the raw counts, a detector learns "painting or glamour
portrait = fake". :func:`sample_weights` gives every (group, content) cell equal real and fake
weight, so a real portrait weighs as much as a generated one, and fixes each group's share of the
whole: the package tiles (upscaler and style-transfer fakes), the wild pool, and the negative
controls (real images enlarged, shrunk or recompressed). Training batches are drawn with these
weights (``BatchSequence(weights=...)``), anew each epoch.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

#: Default share of the training weight per group (renormalised over the groups present).
GROUP_SHARES: dict[str, float] = {"package": 0.40, "wild": 0.45, "control": 0.15}


def _group(origin: str) -> str:
    return origin if origin in GROUP_SHARES else "package"


def sample_weights(
    labels: np.ndarray,
    origins: list[str],
    contents: list[str],
    shares: dict[str, float] | None = None,
) -> np.ndarray:
    """Per-item weights summing to ``len(labels)``.

    Within a group, each content tag gets weight in proportion to its number of items, split
    half real, half fake; a content tag present in one class only (e.g. 3-D renders, all
    generated) keeps half its share, so it cannot dominate the class it is in.
    """
    shares = shares or GROUP_SHARES
    labels = np.asarray(labels)
    n = len(labels)
    groups = [_group(o) for o in origins]
    present = {g for g in groups}
    total_share = sum(shares.get(g, 0.0) for g in present) or 1.0
    cells = Counter(zip(groups, contents, labels.tolist(), strict=True))
    per_content: dict[tuple[str, str], int] = defaultdict(int)
    for (g, c, _), k in cells.items():
        per_content[(g, c)] += k
    group_sizes = Counter(groups)
    w = np.zeros(n, dtype=np.float64)
    for i, key in enumerate(zip(groups, contents, labels.tolist(), strict=True)):
        g, c, _ = key
        # controls are real by construction: their content shares are not halved
        half = 1.0 if g == "control" else 0.5
        w[i] = per_content[(g, c)] / group_sizes[g] * half / cells[key]
    for g in present:  # each group gets exactly its share of the total
        in_group = np.array([x == g for x in groups])
        w[in_group] *= shares.get(g, 0.0) / total_share / w[in_group].sum()
    return w * (n / w.sum()) if w.sum() > 0 else np.ones(n)


def weight_table(
    labels: np.ndarray, origins: list[str], contents: list[str], weights: np.ndarray
) -> dict[str, dict[str, float]]:
    """Share of the total weight per (group/content) and class, for the model card."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    total = float(np.sum(weights)) or 1.0
    for g, c, y, wi in zip(
        (_group(o) for o in origins), contents, np.asarray(labels).tolist(), weights, strict=True
    ):
        key = f"{g}/{c}"
        name = "fake" if y == 1 else "real"
        out[key][name] = out[key].get(name, 0.0) + float(wi) / total
    return {k: {n: round(v, 4) for n, v in sorted(d.items())} for k, d in sorted(out.items())}
