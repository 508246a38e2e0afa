"""Rate-distortion-perception evaluation of SIC against classical codecs, run through
GStreamer. Run from the ``models/`` folder: ``python -m evaluation --help``;
the one command for everything is ``scripts/rd-eval.sh [--quick]``."""
