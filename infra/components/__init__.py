"""Pieces more than one platform builds from: generated secrets, identities, the MLflow auth plugin.

A platform package may import from here; nothing here imports a platform.
"""
