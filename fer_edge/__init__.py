"""fer-edge: facial emotion recognition on the edge."""

__version__ = "0.1.0"
