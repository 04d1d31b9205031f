"""Words the tasks' default texts share (`Task.consent_text`, `instructions_text`; rendered by
`studyweb.texts`): Markdown, plain English, counts spelled with their nouns."""
from __future__ import annotations


def count(n: int, noun: str) -> str:
    """'1 image', '3 images'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def about_images(settings: dict) -> str:
    """How many images a participant sees, roughly: K per condition."""
    versions = len((settings.get("conditions") or {}).get("versions") or [None])
    n = int(settings.get("per_participant") or 0) * versions
    return f"about {count(n, 'image')}" if n else "a few images"


def joined(items: list[str]) -> str:
    """'a', 'a; or b', 'a; b; or c'."""
    return items[0] if len(items) == 1 else "; ".join(items[:-1]) + "; or " + items[-1]
