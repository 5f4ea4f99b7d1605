"""llamavis: ask Llama 3.2 Vision about images."""

from .__about__ import __version__

__all__ = ["__version__"]
