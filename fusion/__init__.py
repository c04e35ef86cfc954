"""Fusion: a dataset from a feature-store join, the fusion model, training, runs and metrics.

Submodules are imported directly (`from fusion.train import train`) so that
`import fusion` stays cheap and never loads torch by itself.
"""
