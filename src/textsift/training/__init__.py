"""Training: the loop, callbacks, losses, schedules, optimizers and checkpoints."""
