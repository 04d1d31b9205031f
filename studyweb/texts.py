"""The words participants read: the consent form, the instructions (one page or several), the
debrief and the screened-out message. A design's own text (keys consent, instructions — a text
or a list of pages —, debrief and screened_out, kept in the experiment's `texts` setting) or
else the task's default, which says what the task is and, once trials are assigned, how many
screens and answers there are (`assigned_counts`).

A text is Markdown (Python-Markdown; HTML written into it passes through) made safe by nh3
with an allow-list (`render`): paragraphs, headings h2-h4, emphasis, lists, block quotes, rules
and links to https: or mailto: only, opened in a new tab; anything else (scripts, styles,
images, event handlers, other links) is removed. The defaults are Markdown too and take the
same road.
"""
from __future__ import annotations

import functools
from typing import Any

from markupsafe import Markup

from studyweb.db.schema import Experiment, Participant
from studyweb.tasks import task_named

ALLOWED_TAGS = {"p", "br", "h2", "h3", "h4", "strong", "em", "b", "i", "u", "small", "sub", "sup", "code",
                "ul", "ol", "li", "blockquote", "hr", "a"}
LINK_SCHEMES = ("https://", "mailto:")
TEXT_KEYS = ("consent", "instructions", "debrief", "screened_out")
SCREENED_OUT = {
    "device": "This study needs a device and a browser window that this one cannot provide, so it ends here.",
    "comprehension": "The questions about the instructions were not answered correctly, so the study ends here.",
    "tutorial": "The codes of the tutorial were not typed as asked, so the study ends here.",
    "catch": "Too many of the check questions were not answered as they asked, so the study ends here.",
}
RECORDED = ("the size of your screen and browser window, and whether you leave the page. We do not record your"
            " name. If you came from a recruitment site (such as Prolific), we keep its participant id so that"
            " you can be paid.")


def render(text: str) -> Markup:
    """`text` (Markdown, HTML allowed) as safe HTML by the module's allow-list."""
    return Markup(_render(text))


def consent_html(experiment: Experiment) -> Markup:
    """The consent form's text: the design's, or the task's default."""
    own = _own(experiment, "consent")
    if own is not None:
        return render(own)
    what, recorded = task_named(experiment.task).consent_text(experiment.settings)
    return render(f"{what}\n\n**What we record:** {recorded}; {RECORDED}\n\n"
                  "Taking part is voluntary. You may stop at any time by closing this page.")


def instruction_pages(experiment: Experiment, participant: Participant) -> list[Markup]:
    """The instructions, one entry per page: the design's, or the task's default for the
    participant's assigned trials."""
    own = _own(experiment, "instructions")
    if own is not None:
        return [render(page) for page in ([own] if isinstance(own, str) else own)]
    counts = assigned_counts(participant)
    return [render(task_named(experiment.task).instructions_text(experiment.settings, counts))]


def debrief_html(experiment: Experiment) -> Markup:
    """What the study was about: the design's debrief, or the task's default."""
    own = _own(experiment, "debrief")
    if own is not None:
        return render(own)
    return render(task_named(experiment.task).debrief_text(experiment.settings))


def screened_out_html(experiment: Experiment, reason: str | None) -> Markup:
    """The screened-out page's message: the design's, or the default for `reason`."""
    own = _own(experiment, "screened_out")
    if own is not None:
        return render(own)
    return render(f"{SCREENED_OUT.get(reason or '', 'The study ends here for you.')} Thank you for your time!")


def assigned_counts(participant: Participant) -> dict[str, Any]:
    """What the participant's assigned trials ask: practice (practice or tutorial trials),
    screens (main trials), images and sentinels (CodeCharts: image and red-dot trials; other
    tasks: every main trial is an image), catch (check trials), answers (questions and
    follow-ups over the main trials) and per_screen (answers on each screen, when every screen
    asks as many; else None)."""
    main = [t for t in participant.trials if not t.is_practice]
    kinds = [(t.spec or {}).get("kind", "image") for t in main]
    asked = [len((t.spec or {}).get("questions") or []) + bool((t.spec or {}).get("follow_up")) for t in main]
    return {"practice": sum(t.is_practice for t in participant.trials), "screens": len(main),
            "images": kinds.count("image"), "sentinels": kinds.count("sentinel"),
            "catch": sum(bool((t.spec or {}).get("catch")) for t in main), "answers": sum(asked),
            "per_screen": asked[0] if asked and len(set(asked)) == 1 else None}


def _own(experiment: Experiment, key: str):
    """The design's text for `key`, or None."""
    return (experiment.settings.get("texts") or {}).get(key)


@functools.lru_cache(maxsize=256)
def _render(text: str) -> str:
    import markdown
    import nh3

    html = markdown.markdown(text, extensions=["sane_lists"], output_format="html")
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}}, attribute_filter=_safe_link,
                     link_rel="noopener noreferrer", set_tag_attribute_values={"a": {"target": "_blank"}})


def _safe_link(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: an href only to https: or mailto: (no relative, http: or script links)."""
    if attribute == "href" and not value.strip().lower().startswith(LINK_SCHEMES):
        return None
    return value
