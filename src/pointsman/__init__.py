"""pointsman: a programmable traffic router.

The package is layered; imports only point downward:
``control -> serve -> routing / upstream / discovery -> wire``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pointsman")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0"

__all__ = ["__version__"]
