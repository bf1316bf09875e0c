"""The PyTorch front end: `torch.compile(model, backend="fusec")`,
`fusec.torch.function(graph)` and `fusec.torch.explain(fn, *args)`.

Importing this module imports torch; `import fusec` does not."""

from .compiler import backend
from .explain import explain
from .function import function

__all__ = ["backend", "explain", "function"]
