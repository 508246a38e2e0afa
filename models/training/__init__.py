"""SIC-lite: training, export and evaluation of the learned progressive image codec.

Run from the ``models/`` folder: ``python -m training --help``.
The contract with the Rust codec is ``docs/model.md``.
"""

__all__ = ["config", "layers", "entropy", "model", "export"]
