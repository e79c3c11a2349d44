"""Training for fer-edge (the ``[train]`` extra): data readers, models, augmentation, loop, checkpoints.

Importing this package imports no torch; ``data`` is numpy/OpenCV only (evaluation of ONNX/IR uses it).
"""
