"""``python -m textsift`` (and ``torchrun -m textsift``) runs the command-line interface."""

from textsift.cli import main

main()
