"""siftlm inside lm-evaluation-harness: test-time fine-tuning as a model backend.

``siftlm.harness.model.SiftLM`` is the harness model ``siftlm`` (importing that module
registers it; it needs the optional extra ``siftlm[eval]``); ``siftlm eval`` runs the
harness with it. ``TASKS_DIR`` holds the shipped tasks: ``minipile_<domain>`` (bits per
byte, grouped as ``minipile``) and ``wordnet_define`` (multiple choice), for
``--include_path``.
"""

from siftlm.harness.tasks_data import TASKS_DIR

__all__ = ["TASKS_DIR"]
