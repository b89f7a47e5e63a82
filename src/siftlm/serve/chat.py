"""Chat messages to one prompt: the tokenizer's chat template, or a simple one.

The house models were pretrained on plain text and have no chat template. For them (and
any tokenizer without one) the messages are written as a transcript, one turn per
paragraph, ending with the assistant's turn open::

    System: You are terse.

    User: What is a prime number?

    Assistant:

and generation stops where the model starts the user's next turn ("\\n\\nUser:").
"""

from __future__ import annotations

from collections.abc import Sequence

ROLE_NAMES = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}
SIMPLE_STOP = ("\n\nUser:",)


def simple_template(messages: Sequence[tuple[str, str]]) -> str:
    """``(role, content)`` pairs as a transcript ending in ``"Assistant:"``."""
    turns = [f"{ROLE_NAMES[role]}: {content.strip()}" for role, content in messages]
    return "\n\n".join([*turns, "Assistant:"])


def render_chat(tokenizer, messages: Sequence[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
    """The prompt for ``messages`` and the stop strings its template needs.

    Uses ``tokenizer.chat_template`` where there is one (with the generation prompt
    added), else ``simple_template`` and ``SIMPLE_STOP``.
    """
    if getattr(tokenizer, "chat_template", None):
        conversation = [{"role": role, "content": content} for role, content in messages]
        prompt = tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        return prompt, ()
    return simple_template(messages), SIMPLE_STOP
