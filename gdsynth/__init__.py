"""gdsynth: virtual post-gadolinium T1w synthesis and enhancing MS lesion detection.

Importing the package is cheap: heavy dependencies (torch, SimpleITK) are imported by the
submodules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
