"""Graph -> graph passes. Each is a plain function that leaves its input untouched."""

from .autodiff import grad_graph
from .fuse import FusionGroup, fuse
from .infer import infer
from .simplify import simplify
from .views import place_views
from .widen import widen_f16_gemms

PIPELINE = (
    ("infer", infer),
    ("widen", widen_f16_gemms),
    ("views", place_views),
    ("simplify", simplify),
)

__all__ = [
    "FusionGroup",
    "PIPELINE",
    "fuse",
    "grad_graph",
    "infer",
    "place_views",
    "simplify",
    "widen_f16_gemms",
]
