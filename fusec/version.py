"""fusec's version: the installed distribution's, or the source tree's."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fusec")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"
