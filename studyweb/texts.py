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

ALLOWED_TAGS = {"p", "br", "h2", "h3", "h4", "strong", "em", "b", "i", "u", "small", "sub", "sup", "code",
                "ul", "ol", "li", "blockquote", "hr", "a"}
LINK_SCHEMES = ("https://", "mailto:")
TEXT_KEYS = ("consent", "instructions", "debrief", "screened_out")
TASK_WORDS = {
    "choose_best": "pick the image that fits the question best, by clicking on it",
    "rate": "rate how edited an image looks, on the scale shown under it",
    "pick_region": "click on the object in the image that the question asks for",
    "describe": "describe the image in your own words",
}
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
    settings, task = experiment.settings, experiment.task
    if task == "codecharts":
        what = (f"In this study you will look at {_about_images(settings)} for a few seconds each. After each image,"
                " a grid of short codes (a letter and two digits) flashes up, and you type the code you were"
                " looking at.")
        if (settings.get("codecharts") or {}).get("tutorial", True):
            what += " A short tutorial comes first; if its codes are not typed as asked, the study ends there."
        recorded = "the codes you type, when you type them"
    elif task == "questionnaire":
        tasks = [TASK_WORDS[t] for t in dict.fromkeys(b["task"] for b in settings["design"]["blocks"])]
        what = f"In this study you will answer questions about images: {_joined(tasks)}."
        recorded = "your answers and how long each took"
    else:
        seconds = settings.get("time_limit_s")
        limit = f" for {seconds:g} seconds" if seconds else ""
        what = (f"In this study you will see {_about_images(settings)}, each blurred{limit}. Clicking on an image"
                " shows a small part of it sharply.")
        if settings.get("mode") == "describe":
            what += " After each image you describe it in a few words."
        recorded = "where and when you click on the images" + (
            " and what you write" if settings.get("mode") == "describe" else "")
    return render(f"{what}\n\n**What we record:** {recorded}; {RECORDED}\n\n"
                  "Taking part is voluntary. You may stop at any time by closing this page.")


def instruction_pages(experiment: Experiment, participant: Participant) -> list[Markup]:
    """The instructions, one entry per page: the design's, or the task's default for the
    participant's assigned trials."""
    own = _own(experiment, "instructions")
    if own is not None:
        return [render(page) for page in ([own] if isinstance(own, str) else own)]
    counts = assigned_counts(participant)
    settings, task = experiment.settings, experiment.task
    if task == "codecharts":
        tutorial = ""
        if counts["practice"]:
            tutorial = (f", after a short tutorial of {counts['practice']} screens that tells you after each one"
                        " how it went (if the tutorial codes are not typed as asked, the study ends there, with"
                        " our thanks)")
        text = ("Each image is shown for a few seconds after a cross in the middle of the screen: look at the"
                " cross, then look at the image freely. Then a grid of codes (a letter and two digits, like"
                " **B47**) flashes for a moment. Type the code you were looking at last.\n\n"
                "Sometimes there is no image, only a red dot: look at the dot and type the code you see closest"
                " to it.\n\n"
                f"You will see {_count(counts['images'], 'image')} and {_count(counts['sentinels'], 'red-dot screen')}"
                f"{tutorial}. Please make your browser window large, or full screen.")
    elif task == "questionnaire":
        text = _questionnaire_instructions(settings["design"], counts)
    else:
        seconds = float(settings.get("time_limit_s", 10.0))
        if settings.get("mode") == "describe":
            text = ("Each image is shown blurred. Click anywhere on it to see that region sharply, then describe"
                    " the image in the text box and press *Done*.")
        else:
            text = (f"Each image is shown blurred for {seconds:g} seconds. Click anywhere on it to see that region"
                    " sharply. Look at whatever you find interesting.")
        practice = ", after one practice image" if counts["practice"] else ""
        text += f"\n\nYou will see {_count(counts['images'], 'image')}{practice}."
    return [render(text)]


def debrief_html(experiment: Experiment) -> Markup:
    """What the study was about: the design's debrief, or the task's default."""
    own = _own(experiment, "debrief")
    if own is not None:
        return render(own)
    if experiment.task == "codecharts":
        text = ("This study measures where people look in images. The code you typed after each image tells us"
                " where you were looking when it ended; your codes will be combined with other people's into"
                " maps of where people look.")
    elif experiment.task == "questionnaire":
        text = ("This study compares images made by different computer methods for editing images. You were not"
                " told which method made which image, so that your answers would not depend on it. Your answers"
                " will be combined with other people's to find which methods work best.")
    else:
        text = ("This study measures which parts of an image people look at first. Your clicks will be combined"
                " with other people's into maps of attention.")
    return render(text)


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


def _questionnaire_instructions(design: dict, counts: dict) -> str:
    n, per_screen = counts["screens"], counts["per_screen"]
    if per_screen:
        text = (f"You will see {_count(n, 'screen')} of images; on each, answer {_count(per_screen, 'question')}"
                + (f" ({counts['answers']} answers in all)." if n > 1 and per_screen > 1 else "."))
    else:
        text = f"You will see {_count(n, 'screen')} of images and answer {counts['answers']} questions in all."
    tasks = list(dict.fromkeys(b["task"] for b in design["blocks"]))
    if len(tasks) == 1:
        text += f" Each screen asks you to {TASK_WORDS[tasks[0]]}."
    else:
        text += " The screens ask you to:\n\n" + "\n".join(f"- {TASK_WORDS[t]};" for t in tasks)[:-1] + "."
    if any(b.get("follow_up") for b in design["blocks"]):
        text += " Some ask a short question about your answer afterwards."
    text += "\n\nThere are no right or wrong answers"
    n_catch = counts["catch"]
    if n_catch:
        text += (f", except on {_count(n_catch, 'check screen')} that {'shows' if n_catch == 1 else 'show'} whether"
                 " the task is being read carefully")
        allowed = int((design.get("catch") or {}).get("max_failures", 0))
        if allowed < n_catch:  # questionnaire_study screens out past the limit
            wrongly = "it" if n_catch == 1 else "one of them" if allowed == 0 else f"more than {allowed} of them"
            text += f": answering {wrongly} wrongly ends the study early"
    return text + "."


def _own(experiment: Experiment, key: str):
    """The design's text for `key`, or None."""
    return (experiment.settings.get("texts") or {}).get(key)


def _about_images(settings: dict) -> str:
    versions = len((settings.get("conditions") or {}).get("versions") or [None])
    n = int(settings.get("per_participant") or 0) * versions
    return f"about {_count(n, 'image')}" if n else "a few images"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "; ".join(items[:-1]) + "; or " + items[-1]


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
