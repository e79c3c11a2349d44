"""What every fer-edge command shares: exit codes, argument types and the one-line-error parser."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def positive_int(s: str) -> int:
    """argparse type for counts such as --threads: an integer of at least 1."""
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s} is not a positive integer")
    return v


def camera_arg(s: str) -> int | str:
    """argparse type for --camera: an index, or 'picam' (the Raspberry Pi camera through picamera2)."""
    if s.strip().lower() == "picam":
        return "picam"
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is neither a camera index nor 'picam'")


def detect_size(s: str) -> int:
    """argparse type for --detect-size: 0 (full size, within the detector's pixel budget) or at least 32."""
    v = int(s)
    if v != 0 and v < 32:
        raise argparse.ArgumentTypeError(f"{s} is neither 0 (full size) nor a side of at least 32 pixels")
    return v


class CliParser(argparse.ArgumentParser):
    """argparse with fer-edge's error style: one line, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"fer-edge: error: {message} (see '{self.prog} --help')\n")
