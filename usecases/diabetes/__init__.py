"""Diabetes progression: the regression use case, on scikit-learn's bundled diabetes dataset.

Kept import-free: the serving Bento ships `features.py` alone.
"""
