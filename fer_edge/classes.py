"""Shared definitions: the FER2013 emotion classes and their label codes."""

# ImageFolder (alphabetical) order, the order every fer-edge model outputs.
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Kaggle fer2013.csv 'emotion' codes.
FER2013_CSV_CODES = {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
