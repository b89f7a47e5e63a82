"""Loaders and metrics of siftlm's harness tasks (referenced by ``!function`` in the
YAML files of this folder; the code lives in ``siftlm.harness.tasks_data``)."""

from siftlm.harness.tasks_data import minipile_documents, process_rolling, wordnet_define

__all__ = ["minipile_documents", "process_rolling", "wordnet_define"]
