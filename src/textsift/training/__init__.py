"""Training, backend-neutral: the run, callbacks, losses and schedules (settings both backends read), CV, auto.

The backends' own training code (step, loop, optimizers, checkpoint format, data parallelism) lives in
``textsift.backends.torch`` and ``textsift.backends.flax``.
"""
