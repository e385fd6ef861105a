"""Model training: the scikit-learn pipeline, evaluation and the `train` task."""
