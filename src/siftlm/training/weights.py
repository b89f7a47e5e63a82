"""Per-prompt isolation: which weights train, and how the base model comes back bitwise.

Both strategies have ``begin() -> trainable parameters`` (before a prompt's first step)
and ``restore()`` (after its last, also on error). The trainer holds one for its life.

- ``FullWeights``: every parameter trains; a CPU copy of every parameter and buffer,
  taken once, is copied back after each prompt.
- ``LoRAWeights``: a fresh LoRA adapter (peft) is injected per prompt with the base
  frozen, and unloaded afterwards, which puts the original modules back.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch import nn

from siftlm.training.config import LoRASettings


def named_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer (persistent or not) of ``model``, by name."""
    yield from model.named_parameters()
    yield from (("buffer:" + name, buffer) for name, buffer in model.named_buffers())


class _Weights:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}

    def _reset_flags(self) -> None:
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(self.requires_grad[name])
            parameter.grad = None


def _fingerprint(model: nn.Module) -> list[tuple[str, int, int, int]]:
    """Per tensor: name, identity, storage and in-place version counter. Any change of
    the weights by the caller (assignment, ``load_state_dict``, an optimizer step, ``.to``)
    changes it; reading them does not."""
    return [(name, id(t), t.data_ptr(), t._version) for name, t in named_tensors(model)]


class FullWeights(_Weights):
    """Full fine-tuning; restores from a CPU copy of the weights.

    Ownership rule: the base a prompt returns to is what the model holds when the prompt
    begins. The copy is taken at construction and taken again at the start of a prompt
    when the caller has changed the weights since the last restore (detected by the
    tensors' version counters, so an unchanged model costs no copy).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.saved: dict[str, torch.Tensor] = {}
        self._snapshot()

    def _snapshot(self) -> None:
        pin = torch.cuda.is_available() and any(t.is_cuda for _, t in named_tensors(self.model))
        self.saved = {}
        for name, tensor in named_tensors(self.model):
            copy = tensor.detach().to("cpu", copy=True)
            self.saved[name] = copy.pin_memory() if pin else copy
        self.requires_grad = {name: p.requires_grad for name, p in self.model.named_parameters()}
        self._seen = _fingerprint(self.model)

    def begin(self) -> list[nn.Parameter]:
        if _fingerprint(self.model) != self._seen:  # the caller changed the weights
            self._snapshot()
        parameters = list(self.model.parameters())
        for parameter in parameters:
            parameter.requires_grad_(True)
        return parameters

    def restore(self) -> None:
        with torch.no_grad():
            for name, tensor in named_tensors(self.model):
                tensor.copy_(self.saved[name])
        self._reset_flags()
        self._seen = _fingerprint(self.model)


class LoRAWeights(_Weights):
    """LoRA fine-tuning: a fresh adapter per prompt, the base frozen and never written."""

    def __init__(self, model: nn.Module, settings) -> None:
        """``settings``: a peft ``LoraConfig`` or ``LoRASettings``."""
        super().__init__(model)
        from transformers.pytorch_utils import Conv1D

        self.settings = settings
        # GPT-2 stores its projections transposed (Conv1D); peft must be told.
        self.fan_in_fan_out = any(isinstance(m, Conv1D) for m in model.modules())
        self.peft_model = None

    def begin(self) -> list[nn.Parameter]:
        from peft import get_peft_model

        config = self._lora_config()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations in peft
            self.peft_model = get_peft_model(self.model, config)
        return [p for p in self.model.parameters() if p.requires_grad]

    def _lora_config(self):
        import copy

        from peft import LoraConfig

        if not isinstance(self.settings, LoRASettings):  # the caller's LoraConfig
            config = copy.deepcopy(self.settings)
            config.fan_in_fan_out = self.fan_in_fan_out
            return config
        return LoraConfig(
            r=self.settings.r,
            lora_alpha=self.settings.alpha,
            lora_dropout=self.settings.dropout,
            target_modules=list(self.settings.target_modules)
            if self.settings.target_modules
            else None,
            fan_in_fan_out=self.fan_in_fan_out,
        )

    def restore(self) -> None:
        if self.peft_model is not None:
            self.peft_model.unload()  # removes the adapter, puts the base modules back
            self.peft_model = None
        self._reset_flags()


def make_weights(model: nn.Module, finetune: str, lora) -> FullWeights | LoRAWeights:
    return FullWeights(model) if finetune == "full" else LoRAWeights(model, lora)
