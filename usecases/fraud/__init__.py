"""Card-fraud detection: the first use case (usecase.yml declares it; params.yaml holds its knobs).

Kept import-free: the serving Bento ships `features.py` alone.
"""
