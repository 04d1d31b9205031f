"""Checks of the JSON the browser sends; each failure is an ApiError saying what was wrong.

Coordinates are image pixels at the stimulus' natural size (x in [0, width), y in [0, height));
t_ms are milliseconds since the trial started; display_w/h are CSS pixels.

Every body is read the same way first (`parse_json_object`): at most MAX_JSON_DEPTH (32) levels
of nested objects and lists, the body itself the first (422 above it: an event's data starts at
the 4th level, everything else a page sends is shallower), and every number one a float can
hold (422 for 1e999, which JSON parses as infinity, and for integers beyond ±1.8e308: nothing
JavaScript sends). Nothing after that check recurses deeper or meets a number that overflows.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any

from studyweb.codecharts import normalise_code

MAX_T_MS = 3_600_000  # one hour: anything later is not a real trial
MAX_CLICKS_PER_SAVE = 2000
MAX_EVENTS_PER_SAVE = 500
MAX_TEXT = 5000
MAX_DISPLAY_PX = 100_000
REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")  # json joins valid pairs: any surrogate left is lone
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EVENT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SAVE_FIELDS = {"idempotency_key", "clicks", "display_w", "display_h", "done", "events", "response_text", "elapsed_ms"}
EVENTS_FIELDS = {"idempotency_key", "events", "trial_id"}
ANSWER_FIELDS = {"idempotency_key", "code", "rt_ms", "events"}
ANSWERS_FIELDS = {"idempotency_key", "answers", "rt_ms", "shown_order", "events"}
MAX_ANSWERS = 20
MAX_CODE_TEXT = 32
MAX_JSON_DEPTH = 32  # levels of objects and lists, the body included (see the module docstring)
MAX_QUESTION = 64  # a question id: the design's identifiers, the responses table's String(64)
MAX_CHOICE = 64  # a choice: a candidate's label or a follow-up choice (responses.choice, String(64))
MAX_RATING = 1e6  # |a rating|: the design's MAX_SCORE
MAX_IMAGE_PX = 100_000  # |x|, |y| of a picked point, image px: no stimulus is larger
ANSWER_ITEM_FIELDS = {"question", "choice", "rating", "text", "x", "y", "rt_ms"}
_FLOAT_MAX = sys.float_info.max
_CLICK_FIELDS = {"x", "y", "t_ms"}
_NUMBERS = {int, float}  # what the JSON decoder makes of a number (bool is another type)


class ApiError(Exception):
    """A refused request: HTTP `status` and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (400 if it is not one; NaN/Infinity refused).

    Text no database can store is replaced, never refused: a lone UTF-16 surrogate (JSON
    "\\ud800", which UTF-8 cannot encode) and NUL ("\\u0000", which PostgreSQL text cannot hold)
    become U+FFFD in every string of the body, keys included, so a participant's odd text is
    stored with that character replaced instead of failing the save."""
    if not raw:
        raise ApiError(400, "the request body is empty; expected a JSON object")
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except RecursionError:  # the decoder's own limit (about 1000 levels), far past ours
        raise ApiError(422, _TOO_DEEP) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"expected a JSON object, got {type(value).__name__}")
    check_depth_and_numbers(value)
    return clean_strings(value) if b"\\u" in raw else value  # both come only from \\u escapes


def check_depth_and_numbers(value: dict[str, Any]) -> None:
    """422 unless parsed JSON `value` nests at most MAX_JSON_DEPTH levels (itself the first) and
    every number in it fits a float. Walked with a stack, never recursively: the decoder accepts
    about 1000 levels, more than Python's recursion limit allows a recursive walk."""
    stack = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(422, _TOO_DEEP)
        for item in container.values() if type(container) is dict else container:
            kind = type(item)  # the decoder makes exactly these types
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif (kind is float or kind is int) and not -_FLOAT_MAX <= item <= _FLOAT_MAX:
                raise ApiError(422, f"every number must be finite and fit a float (at most 1.8e308 in size),"
                                    f" got {str(item)[:40]}")


def clean_strings(value: Any) -> Any:
    """`value` (parsed JSON, nested at most MAX_JSON_DEPTH levels: `check_depth_and_numbers`) with
    lone surrogates and NUL replaced by U+FFFD in every string."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {clean_strings(k): clean_strings(v) for k, v in value.items()}
    return value


def check_save(body: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """A trial save, checked against an image of natural size (width, height) in pixels.

    Returns {idempotency_key, clicks: [(x, y, t_ms)], display_w, display_h, done, events,
    response_text, elapsed_ms}."""
    _no_unknown(body, SAVE_FIELDS)
    clicks_in = body.get("clicks", [])
    if not isinstance(clicks_in, list):
        raise ApiError(422, f"clicks must be a list, got {type(clicks_in).__name__}")
    if len(clicks_in) > MAX_CLICKS_PER_SAVE:
        raise ApiError(422, f"at most {MAX_CLICKS_PER_SAVE} clicks per save, got {len(clicks_in)}")
    clicks = []
    for i, click in enumerate(clicks_in):
        if type(click) is dict and click.keys() <= _CLICK_FIELDS:  # the usual click, checked without messages
            x, y, t_ms = click.get("x"), click.get("y"), click.get("t_ms")
            if type(x) in _NUMBERS and type(y) in _NUMBERS and type(t_ms) in _NUMBERS \
                    and 0 <= x < width and 0 <= y < height and 0 <= t_ms <= MAX_T_MS:
                clicks.append((float(x), float(y), float(t_ms)))
                continue
        if not isinstance(click, dict) or set(click) - _CLICK_FIELDS:
            raise ApiError(422, f"clicks[{i}] must be an object with x, y, t_ms")
        x = _number(click.get("x"), f"clicks[{i}].x")
        y = _number(click.get("y"), f"clicks[{i}].y")
        t_ms = _t_ms(click.get("t_ms"), f"clicks[{i}].t_ms")
        if not (0 <= x < width and 0 <= y < height):
            raise ApiError(422, f"clicks[{i}] at ({x}, {y}) is outside the {width}x{height} image (image pixels)")
        clicks.append((x, y, t_ms))
    display = {}
    for key in ("display_w", "display_h"):
        value = body.get(key)
        if value is None:
            if clicks:
                raise ApiError(422, f"{key} (the displayed image size in CSS px) is required with clicks")
            display[key] = None
            continue
        value = _number(value, key)
        if not 0 < value <= MAX_DISPLAY_PX:
            raise ApiError(422, f"{key} must be in (0, {MAX_DISPLAY_PX}] CSS px, got {value}")
        display[key] = value
    done = body.get("done", False)
    if not isinstance(done, bool):
        raise ApiError(422, f"done must be true or false, got {done!r:.40}")
    text = body.get("response_text")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT or "\x00" in text):
        raise ApiError(422, f"response_text must be a string of at most {MAX_TEXT} characters, without NUL")
    elapsed = body.get("elapsed_ms")
    elapsed = None if elapsed is None else _t_ms(elapsed, "elapsed_ms")
    return {
        "idempotency_key": check_key(body.get("idempotency_key")), "clicks": clicks, **display,
        "done": done, "events": check_events(body.get("events", [])), "response_text": text,
        "elapsed_ms": elapsed,
    }


def check_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A CodeCharts answer: {idempotency_key, code (the text typed: a letter and two digits, e.g.
    "B47"; case and spaces do not matter), rt_ms (ms from the answer box appearing), events}.
    A code of another shape is refused (422), so nothing is stored for a typo the page let by."""
    _no_unknown(body, ANSWER_FIELDS)
    code = body.get("code")
    if not isinstance(code, str) or len(code) > MAX_CODE_TEXT or normalise_code(code) is None:
        raise ApiError(422, f"code must be a letter and two digits, like B47; got {str(code)[:MAX_CODE_TEXT]!r}")
    rt = body.get("rt_ms")
    return {"idempotency_key": check_key(body.get("idempotency_key")), "code": code.strip(),
            "rt_ms": None if rt is None else _t_ms(rt, "rt_ms"), "events": check_events(body.get("events", []))}


def check_answers(body: dict[str, Any]) -> dict[str, Any]:
    """A questionnaire answer: {idempotency_key, answers: [{question, choice | rating | text |
    x, y, rt_ms (optional: ms from that question appearing to its answer)}], rt_ms (the whole
    trial's), shown_order: [candidate labels as displayed], events}. The shape and each field's
    type and range are checked here (`_check_answer_fields`); what fits the trial is checked by
    the trial's task (`studyweb.tasks.questions.record_answers`)."""
    _no_unknown(body, ANSWERS_FIELDS)
    answers = body.get("answers")
    if not isinstance(answers, list) or not 0 < len(answers) <= MAX_ANSWERS:
        raise ApiError(422, f"answers must be a list of 1 to {MAX_ANSWERS} answers, got {str(answers)[:60]}")
    for i, item in enumerate(answers):
        _check_answer_fields(item, f"answers[{i}]")
    order = body.get("shown_order") or []
    if not isinstance(order, list) or len(order) > 26 or not all(isinstance(label, str) for label in order):
        raise ApiError(422, "shown_order must be the candidates' labels in display order")
    rt = body.get("rt_ms")
    return {"idempotency_key": check_key(body.get("idempotency_key")), "answers": answers,
            "rt_ms": None if rt is None else _t_ms(rt, "rt_ms"), "shown_order": order,
            "events": check_events(body.get("events", []))}


ANSWER_CHECKS = {"code": check_answer, "answers": check_answers}  # by `Task.answer_shape`


def check_answer_body(body: dict[str, Any], shape: str) -> dict[str, Any]:
    """An answer in the body `shape` names (ANSWER_CHECKS: a task's `answer_shape`)."""
    return ANSWER_CHECKS[shape](body)


def check_events_body(body: dict[str, Any]) -> dict[str, Any]:
    """POST /events: {idempotency_key, events: [...], trial_id: int | null}."""
    _no_unknown(body, EVENTS_FIELDS)
    trial_id = body.get("trial_id")
    if trial_id is not None and (not isinstance(trial_id, int) or isinstance(trial_id, bool)
                                 or not 0 < trial_id < 2**31):
        raise ApiError(422, f"trial_id must be a positive 32-bit integer or null, got {trial_id!r:.40}")
    return {"idempotency_key": check_key(body.get("idempotency_key")), "trial_id": trial_id,
            "events": check_events(body.get("events", []))}


def check_events(events: Any) -> list[dict[str, Any]]:
    """A list of {type, t_ms (ms, optional), data (object, optional)}."""
    if not isinstance(events, list):
        raise ApiError(422, f"events must be a list, got {type(events).__name__}")
    if len(events) > MAX_EVENTS_PER_SAVE:
        raise ApiError(422, f"at most {MAX_EVENTS_PER_SAVE} events per request, got {len(events)}")
    out = []
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or set(ev) - {"type", "t_ms", "data"}:
            raise ApiError(422, f"events[{i}] must be an object with type, t_ms, data")
        kind = ev.get("type")
        if not isinstance(kind, str) or not EVENT_KIND.match(kind):
            raise ApiError(422, f"events[{i}].type must be a short snake_case name, got {kind!r:.40}")
        t_ms = ev.get("t_ms")
        data = ev.get("data")
        if data is not None and not isinstance(data, dict):
            raise ApiError(422, f"events[{i}].data must be an object or null")
        out.append({"kind": kind, "t_ms": None if t_ms is None else _t_ms(t_ms, f"events[{i}].t_ms"),
                    "payload": data})
    return out


def check_key(key: Any) -> str:
    """An idempotency key: 1-64 characters of A-Z a-z 0-9 _ . : - (a UUID fits)."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ApiError(422, "idempotency_key must be a string of 1-64 characters A-Z a-z 0-9 _ . : - (e.g. a UUID)")
    return key


def _check_answer_fields(item: Any, name: str) -> None:
    """One questionnaire answer's fields by type and range, so that the question tasks meet only
    values they can compare and compute with: question and choice short texts, rating and x, y
    finite numbers in range, text at most MAX_TEXT characters, rt_ms as `_t_ms`; null counts as
    absent. Whether they fit the trial (a candidate's label, a score of the scale, a point on an
    object) is `tasks.questions.record_answers`' to say."""
    if not isinstance(item, dict) or set(item) - ANSWER_ITEM_FIELDS:
        raise ApiError(422, f"{name} must be an object with question and choice, rating, text or x, y;"
                            f" got {str(item)[:60]}")
    _text(item.get("question"), f"{name}.question", MAX_QUESTION)
    if item.get("choice") is not None:
        _text(item["choice"], f"{name}.choice", MAX_CHOICE)
    if item.get("text") is not None:
        _text(item["text"], f"{name}.text", MAX_TEXT)
    if item.get("rating") is not None:
        _bounded(item["rating"], f"{name}.rating", MAX_RATING, "")
    for axis in ("x", "y"):
        if item.get(axis) is not None:
            _bounded(item[axis], f"{name}.{axis}", MAX_IMAGE_PX, " image px")
    if item.get("rt_ms") is not None:
        _t_ms(item["rt_ms"], f"{name}.rt_ms")


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        got = f"{len(value)} characters" if isinstance(value, str) else f"{value!r:.40}"
        raise ApiError(422, f"{name} must be a text of at most {limit} characters, got {got}")
    return value


def _bounded(value: Any, name: str, limit: float, unit: str) -> float:
    number = _number(value, name)
    if not -limit <= number <= limit:
        raise ApiError(422, f"{name} must be between {-limit:g} and {limit:g}{unit}, got {number:g}")
    return number


def _number(value: Any, name: str) -> float:
    """`value` as a float: a JSON number, not a boolean, finite and small enough for a float
    (NaN fails the comparison; an integer of 400 digits fails it instead of overflowing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -_FLOAT_MAX <= value <= _FLOAT_MAX:
        raise ApiError(422, f"{name} must be a finite number, got {value!r:.40}")
    return float(value)


def _t_ms(value: Any, name: str) -> float:
    t = _number(value, name)
    if not 0 <= t <= MAX_T_MS:
        raise ApiError(422, f"{name} must be between 0 and {MAX_T_MS} ms (one hour), got {t}")
    return t


def _no_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(422, f"unknown fields {[k[:40] for k in unknown[:5]]}; expected some of {sorted(allowed)}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # what json.loads would build per call
_TOO_DEEP = f"the JSON body nests more than {MAX_JSON_DEPTH} levels of objects and lists (the body is the first)"
