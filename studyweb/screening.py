"""Who can take a study, and the way out for those who cannot: the device check before consent
and the screen-out path.

Screen-out (Prolific's convention: a "screened out" completion code or URL, distinct from the
completion one, so a recruitment site pays a screen-out and never a completion). A participant
is screened out by `screen_out` when they fail the device check (or give up on it), the
comprehension check (`comprehension.max_attempts` rounds), the CodeCharts tutorial
(`studyweb.tasks.codecharts`) or too many catch trials (more than the design's
`catch.max_failures`, decided by `studyweb.tasks.questions.record_answers` at the answer that
passes the limit). They get
status 'screened_out', one of FINISHED_STATUSES: they stop counting as an observer at once
(`assignment.observer_counts` counts completed and active participants only, as for 'returned'
and 'timed_out'), so their images go to others. The QC decision is stored when it is made
(qc_status 'screened_out', qc_reason '<reason>: <detail>'), the experiment's screenout_code
becomes the code they are given, an event 'screened_out' says why, and the participant's page is
the screened-out page (`participant.screened_out`: that code, or a redirect to screenout_url).

Device check (setting `device`, from a design's `device` key; None: no check, as for
experiments made without a design and those stored before it existed):

    device:
      min_window: [1024, 640]    # CSS px of the browser window (innerWidth x innerHeight)
      phones: exclude            # exclude | allow: phones and tablets
      fullscreen: false          # true: task pages in full screen, a prompt when it is left

Defaults per task (`Task.device_defaults`): CodeCharts and BubbleView 1024 x 640 and no phones
(the images are shown large, and CodeCharts codes are typed); questionnaires 800 x 600 and phones
allowed. A CodeCharts window must also hold the largest image at its fixed display size plus the
task page's margins (`Task.needed_window`), whatever min_window says: the task page waits for
that size, so a participant who passed with less would be stuck there. Phones and tablets, where
allowed, cannot enlarge their window: they need only the smaller of min_window and
PHONE_MIN_WINDOW on each side.

The phone rule (`is_phone`; static/device_check.js `isPhone` is the same rule), a phone or
tablet being any of:
1. a user agent that names a mobile device (MOBILE_UA: Mobi, Android, iPhone, iPad, ...);
2. a Macintosh user agent with more than one touch point (iPadOS asks for the desktop site);
3. touch points but no fine pointer (no mouse or trackpad: CSS `any-pointer: fine` fails) on
   a screen whose short side is under TABLET_SHORT_SIDE CSS px.
A touch-screen laptop has a trackpad, so rule 3 leaves it a computer.

The browser measures (static/device_check.js) and shows what is needed, with a "Check again"
button and a way to end the study; the consent form carries its report, which the server
checks again (`device_problems`) and records (`record_device`: the participant's screen and
window size, an event 'device_check' with devicePixelRatio, pointer and verdict). A consent
without a report (a client without JavaScript, which cannot run a task page either) is taken
as it is.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyweb.db.schema import Event, Experiment, Participant, utcnow

log = logging.getLogger(__name__)

SCREEN_OUT_REASONS = ("device", "comprehension", "tutorial", "catch")
PHONES = ("exclude", "allow")
PHONE_MIN_WINDOW = (320, 480)  # CSS px: a small phone held upright, its browser's bars shown
TABLET_SHORT_SIDE = 768  # CSS px: a touch-only screen with a shorter short side is a phone or tablet
MOBILE_UA = re.compile(r"Mobi|Android|iPhone|iPad|iPod|Tablet|Silk|Kindle|PlayBook|BlackBerry|Opera Mini|IEMobile",
                       re.IGNORECASE)
MAX_PX = 100_000  # a reported size (CSS px) beyond this is not a size


def device_rule(session: Session, experiment: Experiment, task) -> dict[str, Any] | None:
    """What the consent page checks: the experiment's `device` setting over its task's defaults
    (`task`: the experiment's, `studyweb.tasks.task_named`), with min_window raised to what the
    task page needs (`Task.needed_window`: a CodeCharts page's); None when the experiment has no
    check."""
    device = experiment.settings.get("device")
    if not device:
        return None
    rule = {**task.default_device(), **device}
    min_w, min_h = rule["min_window"]
    needed = task.needed_window(session, experiment)
    if needed is not None:
        min_w, min_h = max(min_w, needed[0]), max(min_h, needed[1])
    rule["min_window"] = [int(min_w), int(min_h)]
    rule["phone_window"] = [min(int(min_w), PHONE_MIN_WINDOW[0]), min(int(min_h), PHONE_MIN_WINDOW[1])]
    return rule


def is_phone(user_agent: str | None, touch_points: int, fine_pointer: bool, screen_w: int, screen_h: int) -> bool:
    """Whether the browser is a phone or tablet by the module's rule (sizes in CSS px)."""
    agent = user_agent or ""
    if MOBILE_UA.search(agent):
        return True
    if "Macintosh" in agent and touch_points > 1:
        return True
    return touch_points > 0 and not fine_pointer and 0 < min(screen_w, screen_h) < TABLET_SHORT_SIDE


def device_report(form: Mapping[str, str]) -> dict[str, Any] | None:
    """The device check's report in a posted form: screen_w, screen_h, window_w, window_h (CSS
    px), dpr (devicePixelRatio), touch_points, fine_pointer and fullscreen_ok (0/1). None when
    the form carries no window size; a value that is not a number of its kind is left out."""
    report: dict[str, Any] = {}
    for field in ("screen_w", "screen_h", "window_w", "window_h", "touch_points"):
        value = form.get(field, "")
        # isascii: "\u00b2" (a superscript 2) passes isdigit() but not int()
        if value.isascii() and value.isdigit() and int(value) < MAX_PX:
            report[field] = int(value)
    try:
        dpr = float(form.get("dpr", ""))
    except ValueError:
        dpr = None
    if dpr is not None and 0.1 <= dpr <= 20:  # NaN fails both comparisons
        report["dpr"] = round(dpr, 4)
    for field in ("fine_pointer", "fullscreen_ok"):
        if form.get(field) in ("0", "1"):
            report[field] = form[field] == "1"
    if not report.get("window_w") or not report.get("window_h"):
        return None
    return report


def device_problems(rule: dict[str, Any], report: dict[str, Any], user_agent: str | None) -> list[str]:
    """What keeps this browser from the study by `rule` (`device_rule`), in words; [] when it
    passes. The window must hold min_window (phone_window for an allowed phone)."""
    phone = is_phone(user_agent, report.get("touch_points", 0), report.get("fine_pointer", True),
                     report.get("screen_w", 0), report.get("screen_h", 0))
    if phone and rule["phones"] == "exclude":
        return ["this study needs a computer (a laptop or desktop); it cannot be done on a phone or tablet"]
    problems = []
    need_w, need_h = rule["phone_window"] if phone else rule["min_window"]
    if report["window_w"] < need_w or report["window_h"] < need_h:
        problems.append(f"the browser window is {report['window_w']} x {report['window_h']} pixels; the study needs"
                        f" at least {need_w} x {need_h}")
    if rule.get("fullscreen") and report.get("fullscreen_ok") is False:
        problems.append("the study runs in full screen, which this browser does not allow")
    return problems


def record_device(session: Session, participant: Participant, report: dict[str, Any], problems: list[str]) -> None:
    """Keep the report: the participant's screen and window size (CSS px) and an event
    'device_check' with the whole report, whether it is a phone, and the verdict."""
    for field in ("screen_w", "screen_h", "window_w", "window_h"):
        if report.get(field):
            setattr(participant, field, report[field])
    phone = is_phone(participant.user_agent, report.get("touch_points", 0), report.get("fine_pointer", True),
                     report.get("screen_w", 0), report.get("screen_h", 0))
    session.add(Event(participant_id=participant.id, kind="device_check",
                      payload={**report, "phone": phone, "passed": not problems, "problems": problems}))


def screen_out(session: Session, participant: Participant, reason: str, detail: str) -> None:
    """End the participant's study as screened out (see the module doc); the caller commits.
    `reason` is one of SCREEN_OUT_REASONS, `detail` says what happened, in words."""
    if reason not in SCREEN_OUT_REASONS:
        raise ValueError(f"screen-out reason must be one of {SCREEN_OUT_REASONS}, got {reason!r}")
    now = utcnow()
    participant.status = "screened_out"
    participant.qc_status, participant.qc_reason, participant.qc_decided_at = "screened_out", f"{reason}: {detail}", now
    participant.completion_code = participant.experiment.settings.get("screenout_code")
    participant.last_seen_at = now
    session.add(Event(participant_id=participant.id, kind="screened_out", payload={"reason": reason, "detail": detail}))
    log.info("participant %d screened out (%s): %s", participant.id, reason, detail)


def screen_out_reason(session: Session, participant: Participant) -> str | None:
    """The reason the participant was screened out (SCREEN_OUT_REASONS), from their event."""
    payload = session.scalars(select(Event.payload).where(Event.participant_id == participant.id,
                                                          Event.kind == "screened_out")
                              .order_by(Event.id.desc()).limit(1)).first()
    return (payload or {}).get("reason")
