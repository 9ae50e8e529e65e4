"""Hyperparameter search (Optuna) and population-based training (Ray Tune) over dotted config paths."""
