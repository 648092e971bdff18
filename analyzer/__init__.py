"""canaryd's service: everything with I/O, time or state around the pure judges."""

__version__ = "0.1.0"
