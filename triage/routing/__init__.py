"""Routing: labelled mail for training, and the offline commands (`train`, `evaluate`, `suggest`).

The model itself lives in `classifiers/`; this package connects it to the desk's mail.
"""
