"""Self-play personas: the system prompt a persona plays by, and the history as the persona sees it."""

from __future__ import annotations

from typing import Any

from .spec import PersonaSpec
from .templating import render
from .types import Message

_SWAP = {"user": "assistant", "assistant": "user"}


def persona_system_prompt(persona: PersonaSpec, variables: dict[str, Any]) -> str:
    """`system_prompt` as written, or `system_template` rendered; goals, constraints and style appended."""
    defaults = persona.optional_vars if isinstance(persona.optional_vars, dict) else {}
    if persona.system_prompt:
        base = persona.system_prompt
    elif persona.system_template:
        base = render(persona.system_template, {**defaults, **variables})
    else:
        base = f"You are a user: {persona.description}"
    lines = [base]
    if persona.goals:
        lines.append("Your goals: " + "; ".join(persona.goals))
    if persona.constraints:
        lines.append("Constraints: " + "; ".join(persona.constraints))
    style = persona.style
    if style.verbosity or style.challenge_level:
        lines.append(f"Style: verbosity {style.verbosity or 'normal'}, challenge {style.challenge_level or 'normal'}")
    lines.append("Write only the user's next message. When your goals are met, end with [CONVERSATION_COMPLETE].")
    return "\n".join(lines)


def swap_roles(messages: list[Message]) -> list[Message]:
    """The persona model plays the user, so it sees user/assistant swapped and no tool traffic."""
    return [Message(_SWAP[m.role], m.content) for m in messages if m.role in _SWAP and m.content]
