"""softdistill: dataset distillation with learned soft labels, for images and text."""

__version__ = "0.1.0"
