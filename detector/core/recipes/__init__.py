"""The registry of model recipes.

A recipe declares how to build a Keras model and how to serve it (input size, preprocessing,
output convention, the layer Grad-CAM explains, the attention layer if any). Every module in this
package that calls `register` is discovered automatically: adding a recipe means adding one module
here and, once trained, its weights folder under ``assets/models/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from detector.core.errors import ModelNotFoundError
from detector.core.spec import ModelSpec

#: Name prefixes of the layers a recipe adds around its backbone; everything else is backbone.
HEAD_PREFIXES: tuple[str, ...] = (
    "input",
    "scale",
    "head_",
    "attn_",
    "attention",
    "logits",
    "probs",
)


@dataclass(frozen=True)
class Recipe:
    """A model recipe.

    Attributes:
        name: Registry name.
        summary: One line saying what it is.
        reference: The published system it reproduces, and what differs.
        defaults: Default recipe parameters (e.g. ``input_size``, ``backbone``).
        make_spec: Resolves parameters into a `ModelSpec`.
        make_model: Builds the Keras model for a spec; ``weights`` is passed to the backbone.
        tiny: Parameters that make a tiny version for fast tests (the registry-wide tests build
            every recipe with them).
    """

    name: str
    summary: str
    reference: str
    defaults: Mapping[str, Any]
    make_spec: Callable[[dict[str, Any]], ModelSpec]
    make_model: Callable[[ModelSpec, str | None], Any] = field(repr=False)
    tiny: Mapping[str, Any] = field(default_factory=dict)

    def params(self, **overrides: Any) -> dict[str, Any]:
        """The recipe's parameters with ``overrides`` applied; unknown names are an error."""
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"recipe {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.defaults)}"
            )
        return {**self.defaults, **{k: v for k, v in overrides.items() if v is not None}}

    def spec(self, **overrides: Any) -> ModelSpec:
        """Resolve the serving spec for the given parameters."""
        return self.make_spec(self.params(**overrides))

    def build(self, spec: ModelSpec | None = None, *, weights: str | None = None, **overrides):
        """Build the Keras model (untrained unless ``weights`` names backbone weights).

        Args:
            spec: A resolved spec; by default ``self.spec(**overrides)``.
            weights: Backbone weights: None, or ``"imagenet"`` for keras.applications backbones
                (needs internet the first time).
            **overrides: Recipe parameters, used when ``spec`` is None.

        Returns:
            A flat functional ``keras.Model`` ending in layers ``logits`` and ``probs``.
        """
        spec = spec or self.spec(**overrides)
        return self.make_model(spec, weights)


_REGISTRY: dict[str, Recipe] = {}
_DISCOVERED = False


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry (called by recipe modules at import)."""
    if recipe.name in _REGISTRY and _REGISTRY[recipe.name] is not recipe:
        raise ValueError(f"recipe {recipe.name!r} registered twice")
    _REGISTRY[recipe.name] = recipe
    return recipe


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _DISCOVERED = True


def recipes() -> Mapping[str, Recipe]:
    """All registered recipes, by name."""
    _discover()
    return MappingProxyType(dict(sorted(_REGISTRY.items())))


def get_recipe(name: str) -> Recipe:
    """Look a recipe up by name.

    Raises:
        ModelNotFoundError: listing the known recipe names.
    """
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelNotFoundError(f"unknown recipe {name!r}; known recipes: {known}") from None


def is_head_layer(layer_name: str) -> bool:
    """True for layers a recipe adds around its backbone (trainable when the backbone is frozen)."""
    return layer_name.startswith(HEAD_PREFIXES)
