"""Models: reference training jobs, the model registry with aliases, and trace of a model version."""
