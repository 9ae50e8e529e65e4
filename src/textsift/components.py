"""Imports every module that registers a built-in component. Imported once by ``config.load_builtins``."""

import textsift.data.generators  # noqa: F401
import textsift.data.readers  # noqa: F401
import textsift.backends.torch.networks.bag  # noqa: F401
import textsift.backends.torch.networks.cnn  # noqa: F401
import textsift.backends.torch.networks.linear  # noqa: F401
import textsift.backends.torch.networks.linear_bag  # noqa: F401
import textsift.backends.torch.networks.rnn  # noqa: F401
import textsift.backends.torch.networks.transformer  # noqa: F401
import textsift.text.ngrams  # noqa: F401
import textsift.text.pretrained  # noqa: F401
import textsift.text.subword  # noqa: F401
import textsift.text.tiktoken_bpe  # noqa: F401
import textsift.text.words  # noqa: F401
import textsift.training.callbacks  # noqa: F401
import textsift.training.losses  # noqa: F401
import textsift.training.schedulers  # noqa: F401
import textsift.workflow.builtin  # noqa: F401
