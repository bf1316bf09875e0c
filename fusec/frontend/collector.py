"""CPython's cycle collector, paused while a text becomes graphs.

Compiling allocates millions of small dicts, tuples and AST nodes that all
live until the graphs are done. The collector walks each of them at least
twice on the way to the old generation, and the old generation again and
again as it grows: a third of the time checking 10,000 statements took
(still a sixth with collections 70 times rarer). Nothing the front end
makes needs collecting mid-way, so the collector waits until it is done, as
mypy raises its threshold for the same reason. Reference counting frees
everything as usual; what is cyclic (a networkx graph that cached a view of
itself) is freed by the first collection after. Compiling is bounded
(MAX_GRAPH_NODES, MAX_TOKENS), so is what waits.

A collector the user turned off stays off. Calls are thread-safe: the first
thread in pauses the collector, the last one out resumes it.
"""

from __future__ import annotations

import contextlib
import gc
import threading

_lock = threading.Lock()
_inside = 0  # threads inside `collections_paused`
_resume = False  # whether the collector ran when the first of them came in


@contextlib.contextmanager
def collections_paused():
    global _inside, _resume
    with _lock:
        if _inside == 0:
            _resume = gc.isenabled()
            gc.disable()
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _resume:
                gc.enable()
