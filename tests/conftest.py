"""Settings for the whole suite: offline, and one thread per test process.

Tests use tiny models, for which torch's thread pool costs more than it gives, and they
must behave the same on a loaded 2-core machine as on an idle one. This is the one place
that sets the thread count: torch's here, and ``SIFTLM_THREADS`` for the command-line
entry points that the tests call (``siftlm.defaults.configure_threads``).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["SIFTLM_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)
