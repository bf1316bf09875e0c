"""Graph -> graph passes. Each is a plain function that leaves its input untouched.

PIPELINE is what `compile_graphs` runs on each lowered graph, every stage on
the graph the one before returned, which nothing else holds: so its stages
may change their input and return it (a copy of a 40,000-node graph per stage
cost a tenth of checking 10,000 statements).
"""

from .autodiff import grad_graph
from .fuse import FusionGroup, fuse
from .infer import infer, infer_in_place
from .simplify import simplify, simplify_in_place
from .views import materialize_view_outputs, place_views
from .widen import widen_f16_gemms

PIPELINE = (
    ("infer", infer_in_place),
    ("widen", widen_f16_gemms),
    ("views", place_views),
    ("simplify", simplify_in_place),
    ("outputs", materialize_view_outputs),
)

__all__ = [
    "FusionGroup",
    "PIPELINE",
    "fuse",
    "grad_graph",
    "infer",
    "infer_in_place",
    "materialize_view_outputs",
    "place_views",
    "simplify",
    "simplify_in_place",
    "widen_f16_gemms",
]
