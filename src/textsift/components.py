"""Imports every module that registers a built-in component. Imported once by ``config.load_builtins``."""

import textsift.data.generators  # noqa: F401
import textsift.data.readers  # noqa: F401
import textsift.models.torch.bag  # noqa: F401
import textsift.models.torch.cnn  # noqa: F401
import textsift.models.torch.linear  # noqa: F401
import textsift.models.torch.rnn  # noqa: F401
import textsift.models.torch.transformer  # noqa: F401
import textsift.text.ngrams  # noqa: F401
import textsift.text.pretrained  # noqa: F401
import textsift.text.subword  # noqa: F401
import textsift.text.words  # noqa: F401
import textsift.training.callbacks  # noqa: F401
import textsift.training.losses  # noqa: F401
import textsift.training.schedulers  # noqa: F401
import textsift.workflow.builtin  # noqa: F401
