"""One module per ``fer-edge`` command: each has ``add_parser(sub)`` and the handler it sets as ``func``.

Handlers import their heavy dependencies (torch, OpenVINO, ...) when they run, not when the parser is built.
"""

COMMANDS = ("run", "models", "train", "evaluate", "export", "calibrate", "benchmark")
