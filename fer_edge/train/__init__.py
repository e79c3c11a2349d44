"""Training for fer-edge (the ``[train]`` extra): models, augmentation, loop, checkpoints.

Importing this package imports no torch. The face data readers live in :mod:`fer_edge.data`.
"""
