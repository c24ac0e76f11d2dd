"""tabresnet: residual networks for tabular regression."""

__version__ = "0.1.0"
