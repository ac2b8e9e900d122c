"""wssweep: sweeps for warm-start studies.

When a model is retrained as data arrives, can it continue from yesterday's weights instead of
starting over, with which settings, and what does it save? See README.md.
"""

__version__ = "0.1.0"
