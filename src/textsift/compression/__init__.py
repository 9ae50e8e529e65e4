"""Making a trained model smaller and faster: distillation into a student, structured pruning of a transformer.

Each result is a normal model directory (evaluate, predict, inspect and export work on it unchanged).
"""
