"""Study designs in YAML: one file sets up a study of the papers (`gazelab study create-experiment
--from DESIGN.yaml`, `gazelab study pilot DESIGN.yaml`). Examples: `studyweb/examples/`.

    title: Which edit works best?            # shown to participants (default: the name)
    description: ...                         # shown on the consent page
    methods:                                 # name: folder of its outputs, <pair_id>.png (as
      salggan: runs/salggan/edits            #   `gazelab edit` writes them); relative to the
      hag: runs/hag/edits                    #   design file; --methods NAME=DIR overrides (DIR
                                             #   relative to the current directory)
    stimuli:
      split: test                            # only pairs of this split (default: all)
      pairs: 24                              # at most this many (in pair id order), or a list of ids
      side: x                                # the side that is "the input" (default x)
    per_participant: 10                      # source images per block and participant, the same
                                             #   for everyone (at most the pairs: `studyweb.workload`)
    observers: 20                            # participants wanted per shown image (and block)
    catch: {every: 8, max_failures: 0}       # one catch trial in `every`; failing more than
                                             #   max_failures (default 0) screens out, QC drops
    break_after: 20                          # a break screen every 20 trials (Continue to go on)
    between_blocks: Part done. Next, ...     # a screen between blocks (or conditions' blocks)
    iti_ms: 2000                             # a mid-grey inter-trial screen (Gatys et al.: 2 s)
    pilot: {catch_failure_rate: 0.05}        # simulated failure rates (`studyweb.pilot`)
    completion_code: ABC123                  # or completion_url: https://app.prolific.com/...
    screenout_code: SCR123                   # or screenout_url: the screened-out code or link
    consent: |                               # texts (Markdown or HTML, sanitised: studyweb.texts);
      Your IRB's wording ...                 #   default: the task's, with its counts
    instructions: [page 1 ..., page 2 ...]   # one text or a list of pages
    debrief: ...                             # and screened_out: the screened-out page's message
    comprehension:                           # asked after the instructions; a wrong answer shows
      max_attempts: 3                        #   them again; max_attempts wrong rounds screen out
      questions:
        - {text: What do you type?, choices: [the code I saw last, any code], answer: the code I saw last}
    device: {min_window: [1024, 640], phones: exclude, fullscreen: false}   # checked before consent
                                             #   (studyweb.screening: defaults per task; false: no check)
    exclude_workers_of: [sgit_pilot]         # experiments of the same study: their workers are refused
    conditions: [original, increase]         # attention designs: one block per condition, each
    counterbalance: blocked                  #   image once per block; block order by a Williams
    blocks:                                  #   Latin square (blocked | mixed: studyweb.counterbalance)
      - name: preference
        task: choose_best                    # choose_best | rate | pick_region | describe
        questions:                           #   | codecharts | bubbleview
          - {id: realism, text: Which generated image is most realistic?}
        candidates: [salggan, hag]           # default: every method
        reference: {input: true, target_map: true}

Block keys by task (every block: name, task, questions or question):
- choose_best: candidates (methods, in random order per trial, methods hidden), reference
  {input, target_map} (the input image; the target map, the pair's y_map, over it);
- rate: image (a method, or 'original'; default every method, one trial each), scale
  ('fidelity' | 'realism' | {labels, scores}; GazeShiftNet's scales, scores 3..0 as the paper
  assigns them), reference {input} (show the original beside: the fidelity study);
- pick_region: image ('original' or a method), follow_up {id, text, choices} (SaGIM's yes/no);
  the objects to pick come from the pair's mask;
- describe: image, max_chars;
- codecharts / bubbleview: a design of that one block makes a study of that task (image:
  'original'; its other keys are the task's settings, e.g. codecharts: {image_ms: [2000]}, and
  display_width_px / max_upscale: how large images are shown).
Catch trials have a known answer: choose_best shows the input among the candidates and asks
which one is identical to it; rate (fidelity) rates the original against itself (top score).

Every error names the file, the line and the key, and what was expected (DesignError). YAML
is read safely (`studyweb.design_yaml`): plain values only (a `!!python/...` or any other tag is
an error), at most 1 MiB, 100,000 values once aliases are expanded and 32 levels deep; every number is finite and
within its range (MAX_* below: e.g. observers and per_participant at most 10,000), every text
of bounded length, so nothing a design holds can put NaN or Infinity in the pages' JSON.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studyweb.design_yaml import DesignError, design_error, read_yaml  # DesignError: this module's error too
log = logging.getLogger(__name__)

QUESTIONNAIRE_TASKS = ("choose_best", "rate", "pick_region", "describe")
ATTENTION_TASKS = ("codecharts", "bubbleview")
SCALES = {
    # GazeShiftNet (papers/004…, §4.3): fidelity against the original, realism alone; scores as assigned there.
    "fidelity": {"question": "Compared with the original, how much was this image edited?",
                 "labels": ["not edited", "slightly edited", "moderately edited", "definitely edited"],
                 "scores": [3, 2, 1, 0]},
    "realism": {"question": "Was this image edited?",
                "labels": ["definitely not edited", "probably not edited", "probably edited", "definitely edited"],
                "scores": [3, 2, 1, 0]},
}
TOP_KEYS = {"title", "description", "methods", "stimuli", "per_participant", "observers", "catch", "completion_code",
            "completion_url", "blocks", "conditions", "counterbalance", "screenout_code", "screenout_url",
            "consent", "instructions", "debrief", "screened_out", "comprehension", "device",
            "exclude_workers_of",
            "break_after", "between_blocks", "iti_ms", "pilot"}  # pacing and pilot: `studyweb.workload`, `.pilot`
BLOCK_KEYS = {
    "choose_best": {"name", "task", "questions", "question", "candidates", "reference"},
    "rate": {"name", "task", "questions", "question", "image", "scale", "reference"},
    "pick_region": {"name", "task", "questions", "question", "image", "follow_up"},
    "describe": {"name", "task", "questions", "question", "image", "max_chars"},
    "codecharts": {"name", "task", "image", "codecharts", "display_width_px", "max_upscale"},
    "bubbleview": {"name", "task", "image", "mode", "time_limit_s", "max_clicks", "blur_sigma_frac",
                   "bubble_radius_frac", "display_width_px", "max_upscale"},
}
CATCH_QUESTION = "catch"
# Ranges of the values; every number must also be finite (no .nan/.inf reaches the JSON pages are sent).
MAX_COUNT = 10_000  # observers, per_participant, catch.every and .max_failures, max_clicks, sentinel_every
MAX_PAIRS = 1_000_000  # stimuli.pairs (a number or a list of ids)
MAX_METHODS, MAX_BLOCKS, MAX_QUESTIONS, MAX_CHOICES = 50, 50, 20, 20
MAX_SCORE = 1e6  # |a rating scale's score|
MAX_MS = 60_000  # a CodeCharts screen
MAX_SECONDS = 3600.0  # a BubbleView trial's time limit
MAX_DISPLAY_PX, MAX_UPSCALE = 4000.0, 10.0  # an attention block's display_width_px and max_upscale
MAX_CHARS = {"id": 64, "choice": 64, "label": 200, "title": 200, "text": 2000, "description": 20_000, "path": 4096,
             "page": 50_000}  # page: a consent form, a page of instructions, a debrief
MAX_PAGES = 20  # of instructions
MAX_WINDOW_PX = 10_000  # device.min_window, CSS px


@dataclass(frozen=True)
class Design:
    """A checked design: `values` (the YAML as plain data, methods' folders resolved) and where
    it came from."""

    values: dict[str, Any]
    source: str

    @property
    def task(self) -> str:
        """'questionnaire', or the one attention task of a single-block design."""
        tasks = {block["task"] for block in self.values["blocks"]}
        return tasks.pop() if tasks <= set(ATTENTION_TASKS) else "questionnaire"


def load_design(source, methods: dict[str, str] | None = None) -> Design:
    """Read and check a design: a path to a YAML file, YAML text, or a dict. `methods`
    ({name: folder}) add to or override the design's methods. DesignError on any problem,
    hostile YAML included (`studyweb.design_yaml`)."""
    if isinstance(source, dict):
        checker, values, base = _Checker("<design>", {}), source, Path.cwd()
    else:
        values, name, base, lines = read_yaml(source)
        checker = _Checker(name, lines)
    return Design(checker.design(values, base, methods or {}), checker.name)


class _Checker:
    """Checks a design's plain data; `fail(path, message)` raises a DesignError with the line."""

    def __init__(self, name: str, lines: dict):
        self.name, self.lines = name, lines

    def fail(self, path: tuple, message: str):
        raise design_error(self.name, self.lines, path, message)

    def integer(self, path: tuple, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(path, f"expected an integer in [{low}, {high}], got {value!r}")
        return value

    def number(self, path: tuple, value: Any, low: float, high: float, *, above: bool = False) -> float:
        """A finite number in [low, high], or (low, high] with `above`; NaN and ±inf fail both."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (low < value if above else low <= value) or not value <= high:
            self.fail(path, f"expected a finite number in {'(' if above else '['}{low:g}, {high:g}], got {value!r}")
        return value

    def text(self, path: tuple, value: Any, kind: str = "text", *, empty: bool = False) -> str:
        """A text of at most MAX_CHARS[kind] characters (not blank unless `empty`)."""
        limit = MAX_CHARS[kind]
        if not isinstance(value, str) or len(value) > limit or not (empty or value.strip()):
            got = f"{len(value)} characters" if isinstance(value, str) and len(value) > limit else repr(value)
            hint = " (quote it in YAML)" if isinstance(value, (bool, int, float)) else ""
            self.fail(path, f"expected a{'' if empty else ' non-empty'} text of at most {limit} characters,"
                            f" got {got}{hint}")
        return value

    def label(self, path: tuple, value: Any, kind: str = "label") -> str:
        """A label or choice: a text, or a number written as one (1..7 scales); yes/no must be
        quoted. kind "choice": a follow-up's answer, stored as given (responses.choice, 64 chars)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(self.number(path, value, -MAX_SCORE, MAX_SCORE))
        return self.text(path, value, kind)

    def listed(self, path: tuple, value: Any, low: int, high: int, what: str) -> list:
        if not isinstance(value, list) or not low <= len(value) <= high:
            got = f"{len(value)} of them" if isinstance(value, list) else repr(value)
            self.fail(path, f"expected a list of {low} to {high} {what}, got {got}")
        return value

    def design(self, values: Any, base: Path, extra_methods: dict[str, str]) -> dict:
        if not isinstance(values, dict):
            self.fail((), f"expected a mapping of keys ({', '.join(sorted(TOP_KEYS))}), got {type(values).__name__}")
        self.known(values, TOP_KEYS, ())
        out = dict(values)
        for key, kind in (("title", "title"), ("description", "description"), ("completion_code", "id"),
                          ("screenout_code", "id")):
            if values.get(key) is not None:
                self.text((key,), values[key], kind, empty=True)
        for key in ("completion_url", "screenout_url"):
            url = values.get(key)
            if url is not None and self.text((key,), url, "path", empty=True) \
                    and not url.startswith(("https://", "http://")):
                self.fail((key,), f"expected a link starting with https:// or http://, got {url!r}")
        out["methods"] = self.methods(values.get("methods"), base, extra_methods)
        out["stimuli"] = self.stimuli({} if values.get("stimuli") is None else values["stimuli"])
        per_participant = values.get("per_participant")
        if per_participant is not None and per_participant != "all":
            self.integer(("per_participant",), per_participant, 1, MAX_COUNT)
        out["per_participant"] = per_participant
        out["observers"] = self.integer(("observers",), values.get("observers", 10), 1, MAX_COUNT)
        out["catch"] = self.catch(values.get("catch"))
        blocks = self.listed(("blocks",), values.get("blocks"), 1, MAX_BLOCKS, "blocks")
        out["blocks"] = [self.block(block, i, out["methods"]) for i, block in enumerate(blocks)]
        names = [b["name"] for b in out["blocks"]]
        if len(set(names)) != len(names):
            self.fail(("blocks",), f"block names must be distinct, got {names}")
        attention = [b["task"] for b in out["blocks"] if b["task"] in ATTENTION_TASKS]
        if attention and len(out["blocks"]) > 1:
            self.fail(("blocks",), f"a {attention[0]} block must be the design's only block (a study of that task);"
                                   " run questionnaires as another experiment")
        out["conditions"] = self.conditions(values, out["methods"], bool(attention))
        out.update(self.pacing(values, out))
        out["pilot"] = self.pilot(values.get("pilot"))
        self.workload(out)
        out["exclude_workers_of"] = self.exclude_workers_of(values.get("exclude_workers_of"))
        out["texts"] = self.texts(values)
        for key in ("consent", "instructions", "debrief", "screened_out"):  # kept once, checked, in out["texts"]
            out.pop(key, None)
        out["comprehension"] = self.comprehension(values.get("comprehension"))
        out["device"] = self.device(values.get("device"), attention[0] if attention else "questionnaire")
        try:  # every value is checked above; this keeps a key added later from sending NaN to the pages
            json.dumps(out, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.fail((), f"cannot be stored as JSON: {exc}")
        return out

    def methods(self, values: Any, base: Path, extra_methods: dict[str, str]) -> dict:
        if values is not None and not isinstance(values, dict):
            self.fail(("methods",), f"expected a mapping of method name: folder of its outputs, got {values!r}")
        methods = {**(values or {}), **extra_methods}
        if len(methods) > MAX_METHODS:
            self.fail(("methods",), f"expected at most {MAX_METHODS} methods, got {len(methods)}")
        out = {}
        for name, folder in methods.items():
            if not isinstance(name, str) or not name or len(name) > MAX_CHARS["id"] or name == "original" \
                    or not name.replace("_", "").isalnum():
                self.fail(("methods", name), f"method names are letters, digits and _ (not 'original', at most"
                                             f" {MAX_CHARS['id']}); got {name!r}")
            if name not in extra_methods:
                self.text(("methods", name), folder, "path")
            folder_path = Path(str(folder)).expanduser()  # a command line's folder: from the current directory
            folder_path = folder_path if folder_path.is_absolute() else \
                (Path.cwd() if name in extra_methods else base) / folder_path
            if name not in extra_methods and not folder_path.is_dir():
                self.fail(("methods", name), f"folder {folder_path} does not exist")
            if name in extra_methods and not folder_path.is_dir():
                raise DesignError(f"--methods {name}={folder}: folder {folder_path} does not exist")
            out[name] = str(folder_path.resolve())
        return out

    def exclude_workers_of(self, value: Any) -> list[str]:
        """Experiment names (`studyweb.experiments.related_experiments`); [] when not given."""
        from studyweb.experiments import experiment_names

        try:
            return experiment_names("exclude_workers_of", [] if value is None else value)
        except ValueError as exc:
            self.fail(("exclude_workers_of",), str(exc))

    def conditions(self, values: dict, methods: dict, attention: bool) -> dict | None:
        conditions, layout = values.get("conditions"), values.get("counterbalance", "blocked")
        if conditions is None:
            if "counterbalance" in values:
                self.fail(("counterbalance",), "counterbalancing needs conditions: [original, a method, ...]")
            return None
        if not attention:
            self.fail(("conditions",), "conditions are for codecharts and bubbleview designs (blocks of one"
                                       " version each); questionnaires compare methods within their blocks")
        versions = ["original", *methods]
        if not isinstance(conditions, list) or len(conditions) < 2 or len(set(map(str, conditions))) != len(conditions):
            self.fail(("conditions",), f"expected 2 or more distinct versions ({', '.join(versions)}), got {conditions!r}")
        for k, condition in enumerate(conditions):
            if condition not in versions:
                self.fail(("conditions", k), f"{condition!r} is not 'original' nor a method of this design")
        if layout not in ("blocked", "mixed"):
            self.fail(("counterbalance",), f"expected blocked or mixed, got {layout!r}")
        return {"versions": list(conditions), "layout": layout}

    def known(self, values: dict, allowed: set, path: tuple) -> None:
        for key in values:
            if key not in allowed:
                self.fail(path + (key,), f"unknown key {key!r}; expected one of {sorted(allowed)}")

    def stimuli(self, values: Any) -> dict:
        if not isinstance(values, dict):
            self.fail(("stimuli",), "expected a mapping with split, pairs, side")
        self.known(values, {"split", "pairs", "side"}, ("stimuli",))
        side = values.get("side", "x")
        if side not in ("x", "y"):
            self.fail(("stimuli", "side"), f"expected x or y, got {side!r}")
        pairs = values.get("pairs")
        if isinstance(pairs, list):
            self.listed(("stimuli", "pairs"), pairs, 1, MAX_PAIRS, "pair ids")
            for k, pair in enumerate(pairs):
                if isinstance(pair, bool) or not isinstance(pair, (str, int)) or len(str(pair)) > MAX_CHARS["id"]:
                    self.fail(("stimuli", "pairs", k), f"expected a pair id (a text or an integer), got {pair!r}")
        elif pairs is not None:
            if isinstance(pairs, bool) or not isinstance(pairs, int):
                self.fail(("stimuli", "pairs"), f"expected a number >= 1 or a list of pair ids, got {pairs!r}")
            self.integer(("stimuli", "pairs"), pairs, 1, MAX_PAIRS)
        split = values.get("split")
        if split is not None and split not in ("train", "val", "test"):
            self.fail(("stimuli", "split"), f"expected train, val or test, got {split!r}")
        return {"split": split, "pairs": [str(p) for p in pairs] if isinstance(pairs, list) else pairs, "side": side}

    def catch(self, values: Any) -> dict | None:
        if values is None:
            return None
        if not isinstance(values, dict):
            self.fail(("catch",), "expected a mapping {every, max_failures}")
        self.known(values, {"every", "max_failures"}, ("catch",))
        return {"every": self.integer(("catch", "every"), values.get("every"), 2, MAX_COUNT),
                "max_failures": self.integer(("catch", "max_failures"), values.get("max_failures", 0), 0, MAX_COUNT)}

    def texts(self, values: dict) -> dict | None:
        """The design's own texts (`studyweb.texts`): consent, debrief, screened_out, and
        instructions as a list of pages; None when it gives none (the task's defaults)."""
        out = {}
        for key in ("consent", "debrief", "screened_out"):
            if values.get(key) is not None:
                out[key] = self.text((key,), values[key], "page")
        pages = values.get("instructions")
        if isinstance(pages, list):
            self.listed(("instructions",), pages, 1, MAX_PAGES, "pages (texts)")
            out["instructions"] = [self.text(("instructions", k), page, "page") for k, page in enumerate(pages)]
        elif pages is not None:
            out["instructions"] = [self.text(("instructions",), pages, "page")]
        return out or None

    def comprehension(self, values: Any) -> dict | None:
        """{questions: [{text, choices, answer}], max_attempts} (default 3), or None."""
        if values is None:
            return None
        path = ("comprehension",)
        if not isinstance(values, dict):
            self.fail(path, "expected a mapping {questions: [{text, choices, answer}], max_attempts},"
                            f" got {values!r}")
        self.known(values, {"questions", "max_attempts"}, path)
        questions = self.listed(path + ("questions",), values.get("questions"), 1, MAX_QUESTIONS,
                                "questions {text, choices, answer}")
        out = []
        for k, question in enumerate(questions):
            where = path + ("questions", k)
            if not isinstance(question, dict):
                self.fail(where, f"expected {{text, choices, answer}}, got {question!r}")
            self.known(question, {"text", "choices", "answer"}, where)
            choices = self.listed(where + ("choices",), question.get("choices"), 2, MAX_CHOICES, "choices")
            choices = [self.label(where + ("choices", j), choice, "choice") for j, choice in enumerate(choices)]
            if len(set(choices)) != len(choices):
                self.fail(where + ("choices",), f"choices must be distinct, got {choices}")
            answer = self.label(where + ("answer",), question.get("answer"), "choice")
            if answer not in choices:
                self.fail(where + ("answer",), f"expected one of the choices {choices}, got {answer!r}")
            out.append({"text": self.text(where + ("text",), question.get("text")), "choices": choices,
                        "answer": answer})
        return {"questions": out,
                "max_attempts": self.integer(path + ("max_attempts",), values.get("max_attempts", 3), 1, 100)}

    def device(self, value: Any, task: str) -> dict | None:
        """The device check (`studyweb.screening`): the task's defaults updated with `value`;
        None for `device: false` (no check)."""
        from studyweb.screening import PHONES, device_defaults

        rule, path = device_defaults(task), ("device",)
        if value is False:
            return None
        if value is None:
            return rule
        if not isinstance(value, dict):
            self.fail(path, "expected {min_window: [width, height], phones: exclude | allow, fullscreen: true | false},"
                            f" or false for no check; got {value!r}")
        self.known(value, set(rule), path)
        if "min_window" in value:
            size = self.listed(path + ("min_window",), value["min_window"], 2, 2, "sizes [width, height] in CSS px")
            rule["min_window"] = [self.integer(path + ("min_window", k), v, 1, MAX_WINDOW_PX)
                                  for k, v in enumerate(size)]
        if "phones" in value:
            if value["phones"] not in PHONES:
                self.fail(path + ("phones",), f"expected one of {list(PHONES)}, got {value['phones']!r}")
            rule["phones"] = value["phones"]
        if "fullscreen" in value:
            if not isinstance(value["fullscreen"], bool):
                self.fail(path + ("fullscreen",), f"expected true or false, got {value['fullscreen']!r}")
            rule["fullscreen"] = value["fullscreen"]
        return rule

    def pacing(self, values: dict, out: dict) -> dict:
        """break_after (trials), between_blocks (a text) and iti_ms, None where not given
        (`studyweb.workload.pace_trials`)."""
        pacing = {"break_after": None, "between_blocks": None, "iti_ms": None}
        if values.get("break_after") is not None:
            pacing["break_after"] = self.integer(("break_after",), values["break_after"], 1, MAX_COUNT)
        if values.get("iti_ms") is not None:
            pacing["iti_ms"] = self.integer(("iti_ms",), values["iti_ms"], 0, MAX_MS)
        if values.get("between_blocks") is not None:
            pacing["between_blocks"] = self.text(("between_blocks",), values["between_blocks"]).strip()
            n_blocks = len(out["conditions"]["versions"]) if out["conditions"] else len(out["blocks"])
            if n_blocks < 2:
                self.fail(("between_blocks",), "this design has one block, so nothing is between blocks"
                                               " (add blocks, or conditions to an attention design)")
        return pacing

    def pilot(self, values: Any) -> dict:
        """The simulated participants' failure rates in [0, 1] (`studyweb.pilot.FAILURE_RATES`)."""
        from studyweb.pilot import FAILURE_RATES

        if values is None:
            return {}
        if not isinstance(values, dict):
            self.fail(("pilot",), f"expected a mapping of {sorted(FAILURE_RATES)} to rates in [0, 1], got {values!r}")
        self.known(values, set(FAILURE_RATES), ("pilot",))
        return {key: self.number(("pilot", key), value, 0, 1) for key, value in values.items()}

    def workload(self, out: dict) -> None:
        """per_participant against a fixed number of pairs (stimuli.pairs); against the
        dataset's pairs when the experiment is made (`studyweb.workload.check_workload`)."""
        pairs, k = out["stimuli"]["pairs"], out["per_participant"]
        n_pairs = len(pairs) if isinstance(pairs, list) else pairs
        if isinstance(k, int) and n_pairs is not None and k > n_pairs:
            self.fail(("per_participant",), f"{k} images per block and participant, but stimuli.pairs selects at most"
                                            f" {n_pairs} and a participant sees at most one version of a pair per"
                                            f" block; set per_participant to at most {n_pairs}")

    def block(self, block: Any, i: int, methods: dict) -> dict:
        path = ("blocks", i)
        if not isinstance(block, dict):
            self.fail(path, "expected a mapping with at least name and task")
        task = block.get("task")
        if not isinstance(task, str) or task not in BLOCK_KEYS:
            self.fail(path + ("task",), f"expected one of {sorted(BLOCK_KEYS)}, got {task!r}")
        self.known(block, BLOCK_KEYS[task], path)
        out = {k: v for k, v in block.items() if k not in ("questions", "question")}
        out["name"] = self.text(path + ("name",), block.get("name", f"block{i + 1}"), "id")
        if task in ATTENTION_TASKS:
            if block.get("image", "original") != "original":
                self.fail(path + ("image",), "attention studies run on the dataset's own images ('original')")
            return {**out, **self.display(block, path),
                    **(self.bubbleview(block, path) if task == "bubbleview" else self.codecharts(block, path))}
        out["questions"] = self.questions(block, path, task)
        versions = ["original", *methods]
        if task == "choose_best":
            candidates = self.listed(path + ("candidates",), block.get("candidates", list(methods)), 2,
                                     MAX_METHODS + 1, "methods")
            for k, candidate in enumerate(candidates):
                if not isinstance(candidate, str) or candidate not in versions:
                    self.fail(path + ("candidates", k), f"{candidate!r} is not a method of this design"
                                                        f" ({', '.join(methods) or 'none'}) nor 'original'")
            if len(set(candidates)) != len(candidates):
                self.fail(path + ("candidates",), f"candidates must be distinct, got {candidates}")
            out["candidates"] = list(candidates)
            out["reference"] = self.reference(block.get("reference", {"input": True, "target_map": True}), path,
                                              {"input", "target_map"})
        else:
            image = block.get("image", "methods" if task == "rate" else "original")
            if not isinstance(image, str) or image != "methods" and image not in versions:
                self.fail(path + ("image",), f"expected 'original', 'methods' or one of the methods"
                                             f" ({', '.join(methods) or 'none'}), got {image!r}")
            if image == "methods" and not methods:
                self.fail(path + ("image",), "'methods' needs methods in the design (methods: name: folder)")
            out["image"] = image
        if task == "rate":
            out["scale"] = self.scale(block.get("scale", "fidelity"), path)
            default_reference = {"input": block.get("scale", "fidelity") == "fidelity"}
            out["reference"] = self.reference(block.get("reference", default_reference), path, {"input"})
        if task == "pick_region":
            out["follow_up"] = self.follow_up(block.get("follow_up"), path + ("follow_up",))
        if task == "describe":
            out["max_chars"] = self.integer(path + ("max_chars",), block.get("max_chars", 1000), 1, 5000)
        return out

    def questions(self, block: dict, path: tuple, task: str) -> list[dict]:
        if "questions" in block and "question" in block:
            self.fail(path, "give either question (one text) or questions (a list), not both")
        if "question" in block:
            raw = [{"id": task, "text": self.text(path + ("question",), block["question"])}]
        elif "questions" in block:
            raw = self.listed(path + ("questions",), block["questions"], 1, MAX_QUESTIONS, "{id, text}")
        elif task == "rate":
            raw = [{"id": "score", "text": self.scale(block.get("scale", "fidelity"), path)["question"]}]
        elif task == "pick_region":
            raw = [{"id": "most_salient", "text": "Click on the object that stands out most."}]
        else:
            self.fail(path + ("questions",), "expected the questions to ask: a list of {id, text}")
        out = []
        for k, question in enumerate(raw):
            if not isinstance(question, dict):
                self.fail(path + ("questions", k), f"expected {{id, text}}, got {question!r}")
            self.known(question, {"id", "text"}, path + ("questions", k))
            out.append({"id": self.identifier(path + ("questions", k, "id"), question.get("id")),
                        "text": self.text(path + ("questions", k, "text"), question.get("text"))})
        ids = [q["id"] for q in out]
        if len(set(ids)) != len(ids) or CATCH_QUESTION in ids:
            self.fail(path + ("questions",), f"question ids must be distinct and not {CATCH_QUESTION!r}, got {ids}")
        if task in ("pick_region",) and len(out) != 1:
            self.fail(path + ("questions",), "pick_region asks one question (the follow_up asks the second)")
        return out

    def identifier(self, path: tuple, value: Any) -> str:
        """A question id: a text or an integer (written as text)."""
        return self.text(path, str(value) if isinstance(value, int) and not isinstance(value, bool) else value, "id")

    def scale(self, scale: Any, path: tuple) -> dict:
        if isinstance(scale, str):
            if scale not in SCALES:
                self.fail(path + ("scale",), f"expected one of {sorted(SCALES)} or {{labels, scores}}, got {scale!r}")
            return {"name": scale, **SCALES[scale]}
        if not isinstance(scale, dict):
            self.fail(path + ("scale",), f"expected one of {sorted(SCALES)} or {{labels, scores}}, got {scale!r}")
        path = path + ("scale",)
        self.known(scale, {"labels", "scores", "question"}, path)
        labels = self.listed(path + ("labels",), scale.get("labels"), 2, MAX_CHOICES, "labels")
        scores = self.listed(path + ("scores",), scale.get("scores"), 2, MAX_CHOICES, "scores (a number per label)")
        if len(labels) != len(scores):
            self.fail(path, f"expected a score per label, got {len(labels)} labels and {len(scores)} scores")
        question = self.text(path + ("question",), scale.get("question", "How would you rate this image?"))
        return {"name": "custom", "question": question,
                "labels": [self.label(path + ("labels", k), label) for k, label in enumerate(labels)],
                "scores": [self.number(path + ("scores", k), score, -MAX_SCORE, MAX_SCORE)
                           for k, score in enumerate(scores)]}

    def follow_up(self, follow: Any, path: tuple) -> dict | None:
        if follow is None:
            return None
        if not isinstance(follow, dict):
            self.fail(path, f"expected {{id, text, choices: [yes, no]}}, got {follow!r}")
        self.known(follow, {"id", "text", "choices"}, path)
        choices = self.listed(path + ("choices",), follow.get("choices", ["yes", "no"]), 2, MAX_CHOICES, "choices")
        choices = [self.label(path + ("choices", k), choice, "choice") for k, choice in enumerate(choices)]
        if len(set(choices)) != len(choices):
            self.fail(path + ("choices",), f"choices must be distinct, got {choices}")
        return {"id": self.identifier(path + ("id",), follow.get("id", "follow_up")),
                "text": self.text(path + ("text",), follow.get("text")), "choices": choices}

    def reference(self, reference: Any, path: tuple, allowed: set) -> dict:
        if not isinstance(reference, dict) or not all(isinstance(v, bool) for v in reference.values()):
            self.fail(path + ("reference",), f"expected a mapping of {sorted(allowed)} to true/false")
        self.known(reference, allowed, path + ("reference",))
        return {key: bool(reference.get(key, False)) for key in sorted(allowed)}

    def display(self, block: dict, path: tuple) -> dict:
        """An attention block's display size: display_width_px (CSS px an image is shown at) and
        max_upscale (the most it is enlarged: CodeCharts needs room for codes MIN_CODE_PX high,
        so 320x240 images need max_upscale 2.3 or more); studyweb.experiments' defaults otherwise."""
        out = {}
        if "display_width_px" in block:
            out["display_width_px"] = self.number(path + ("display_width_px",), block["display_width_px"], 0,
                                                  MAX_DISPLAY_PX, above=True)
        if "max_upscale" in block:
            out["max_upscale"] = self.number(path + ("max_upscale",), block["max_upscale"], 1, MAX_UPSCALE)
        return out

    def bubbleview(self, block: dict, path: tuple) -> dict:
        """The block's BubbleView settings, checked (studyweb.experiments repeats the checks)."""
        from studyweb.experiments import MODES

        out = {}
        if "mode" in block and block["mode"] not in MODES:
            self.fail(path + ("mode",), f"expected one of {list(MODES)}, got {block['mode']!r}")
        if "time_limit_s" in block:
            out["time_limit_s"] = self.number(path + ("time_limit_s",), block["time_limit_s"], 0, MAX_SECONDS,
                                              above=True)
        if block.get("max_clicks") is not None:
            out["max_clicks"] = self.integer(path + ("max_clicks",), block["max_clicks"], 1, MAX_COUNT)
        for key in ("blur_sigma_frac", "bubble_radius_frac"):  # fractions of the image width
            if key in block:
                out[key] = self.number(path + (key,), block[key], 0, 1, above=True)
        return out

    def codecharts(self, block: dict, path: tuple) -> dict:
        """The block's `codecharts` settings, checked (studyweb.codecharts_study fills the defaults)."""
        from studyweb.codecharts_study import DEFAULTS

        settings, path = block.get("codecharts"), path + ("codecharts",)
        if settings is None:
            return {}
        if not isinstance(settings, dict):
            self.fail(path, f"expected a mapping of {sorted(DEFAULTS)}, got {settings!r}")
        self.known(settings, set(DEFAULTS), path)
        for key in ("fixation_ms", "chart_ms"):
            if key in settings:
                self.integer(path + (key,), settings[key], 1, MAX_MS)
        if isinstance(settings.get("image_ms"), list):  # one drawn per trial
            durations = self.listed(path + ("image_ms",), settings["image_ms"], 1, MAX_CHOICES, "durations in ms")
            for k, ms in enumerate(durations):
                self.integer(path + ("image_ms", k), ms, 1, MAX_MS)
        elif "image_ms" in settings:
            self.integer(path + ("image_ms",), settings["image_ms"], 1, MAX_MS)
        if "sentinel_every" in settings:
            self.integer(path + ("sentinel_every",), settings["sentinel_every"], 2, MAX_COUNT)
        if "tutorial" in settings and not isinstance(settings["tutorial"], bool):
            self.fail(path + ("tutorial",), f"expected true or false, got {settings['tutorial']!r}")
        if "sentinel_radius_px" in settings:  # display pixels
            self.number(path + ("sentinel_radius_px",), settings["sentinel_radius_px"], 0, 1000, above=True)
        return {"codecharts": settings}


def create_from_design(session, source, dataset_dir, name: str, methods: dict[str, str] | None = None):
    """The experiment a design describes, on the dataset at `dataset_dir` (flushed, not
    committed). A questionnaire design gets a stimulus per selected pair and version (the input
    and each method's output); a single codecharts or bubbleview block makes a study of that task
    on the selected pairs' input images. DesignError/ValueError for a design that cannot run
    (an unknown key, a missing method output, ...)."""
    from datagen.dataset import Dataset
    from studyweb.experiments import create_experiment, fill_codes, image_size, validate_settings
    from studyweb.workload import check_workload, workload_warnings

    design = source if isinstance(source, Design) else load_design(source, methods)
    values = design.values
    dataset = Dataset.open(Path(dataset_dir).expanduser().resolve())
    pair_ids = select_pairs(dataset, values["stimuli"], design.source)
    check_workload(values, len(pair_ids), design.source)  # per_participant never silently reduced
    for warning in workload_warnings(values, len(pair_ids)):
        log.warning("%s: %s", design.source, warning)
    common = {key: values[key] for key in ("observers", "completion_code", "completion_url", "exclude_workers_of",
                                           "screenout_code", "screenout_url", "texts", "comprehension", "device")
              if values.get(key)}
    title, description = values.get("title") or "", values.get("description") or ""
    if design.task != "questionnaire":
        block = values["blocks"][0]
        settings = {k: v for k, v in block.items() if k not in ("name", "task", "image")}
        settings["per_participant"] = len(pair_ids) if values.get("per_participant") in (None, "all") \
            else values["per_participant"]
        if values["conditions"]:
            settings["conditions"] = values["conditions"]
        settings["design"] = values  # its pacing (`workload.pace_trials`) and pilot rates
        experiment = create_experiment(session, dataset.path, name, design.task, title=title, description=description,
                                       sides=[values["stimuli"]["side"]], pair_ids=pair_ids, **common, **settings)
        if values["conditions"]:
            _add_method_stimuli(session, experiment, design, [m for m in values["conditions"]["versions"]
                                                              if m != "original"])
        return experiment

    from studyweb.db.schema import Experiment, Stimulus
    from studyweb.experiments import check_name

    check_name(session, name)
    side = values["stimuli"]["side"]
    per_participant = values["per_participant"]
    settings = validate_settings({**common, "sides": [side],
                                  "per_participant": len(pair_ids) if per_participant in (None, "all")
                                  else per_participant, "design": values})
    fill_codes(settings)
    experiment = Experiment(name=name, title=title or name, description=description, task="questionnaire",
                            dataset_path=str(dataset.path), settings=settings, status="open")
    session.add(experiment)
    session.flush()
    rows = dataset.pairs.set_index("pair_id")
    stimuli = []
    for pair_id in pair_ids:
        relative = rows.at[pair_id, f"{side}_image"]
        versions = [("", dataset.path / relative)] + [
            (method, Path(folder) / f"{pair_id}.png") for method, folder in values["methods"].items()]
        for method, path in versions:
            if not path.is_file():
                raise DesignError(f"{design.source}: method {method!r} has no output for pair {pair_id}:"
                                  f" expected {path}")
            width, height = image_size(path)
            stimuli.append(Stimulus(experiment_id=experiment.id, image_path=str(relative if not method else path),
                                    pair_id=pair_id, side=side, method=method, width=width, height=height))
    if any(block["task"] == "pick_region" for block in values["blocks"]):
        missing = [p for p in pair_ids if not (dataset.path / "masks" / f"{p}_{side}.png").is_file()]
        if missing:
            raise DesignError(f"{design.source}: pick_region needs each pair's mask; missing for {missing[:5]}")
    if any(block.get("reference", {}).get("target_map") for block in values["blocks"]):
        missing = [p for p in pair_ids if not _target_map_path(dataset, p)]
        if missing:
            raise DesignError(f"{design.source}: reference.target_map needs each pair's y_map; missing for"
                              f" {missing[:5]} (set reference: {{target_map: false}} or add the maps)")
    session.add_all(stimuli)
    session.flush()
    log.info("questionnaire %s: %d pairs x %d versions from %s", name, len(pair_ids), 1 + len(values["methods"]),
             dataset.path)
    return experiment


def _add_method_stimuli(session, experiment, design: Design, methods: list[str]) -> None:
    """A stimulus for each method's output of each of the experiment's pairs (DesignError when one is missing)."""
    from studyweb.db.schema import Stimulus
    from studyweb.experiments import image_size

    originals = [s for s in experiment.stimuli if not s.method]
    for method in methods:
        folder = Path(design.values["methods"][method])
        for source in originals:
            path = folder / f"{source.pair_id}.png"
            if not path.is_file():
                raise DesignError(f"{design.source}: method {method!r} has no output for pair {source.pair_id}:"
                                  f" expected {path}")
            width, height = image_size(path)
            session.add(Stimulus(experiment_id=experiment.id, image_path=str(path), pair_id=source.pair_id,
                                 side=source.side, method=method, width=width, height=height))
    session.flush()
    if experiment.task == "codecharts":
        from studyweb.codecharts_study import check_stimuli

        check_stimuli(list(experiment.stimuli), experiment.settings)


def select_pairs(dataset, stimuli: dict, source: str = "<design>") -> list[str]:
    """The pair ids a design's `stimuli` selects (split, then the listed ids or the first N), in
    pair id order; DesignError when none (or a listed id is unknown)."""
    pairs = dataset.pairs
    side = stimuli["side"]
    pairs = pairs[pairs[f"{side}_image"].fillna("").astype(str) != ""]
    if stimuli["split"]:
        pairs = pairs[pairs["split"] == stimuli["split"]]
    ids = sorted(str(p) for p in pairs["pair_id"])
    wanted = stimuli["pairs"]
    if isinstance(wanted, list):
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise DesignError(f"{source}: stimuli.pairs: {unknown[:5]} are not pairs of {dataset.path}"
                              f"{' in split ' + stimuli['split'] if stimuli['split'] else ''} with a {side} image")
        ids = [p for p in ids if p in set(wanted)]
    elif isinstance(wanted, int):
        ids = ids[:wanted]
    if not ids:
        raise DesignError(f"{source}: stimuli selects no pair of {dataset.path} (split {stimuli['split']!r},"
                          f" side {side})")
    return ids


def target_map_path(dataset_path, pair_id: str) -> Path | None:
    """The pair's y_map (.npy density) in the dataset, if it has one."""
    from datagen.dataset import Dataset

    return _target_map_path(Dataset.open(Path(dataset_path)), pair_id)


def _target_map_path(dataset, pair_id: str) -> Path | None:
    row = dataset.pairs[dataset.pairs["pair_id"] == pair_id]
    if row.empty:
        return None
    value = row.iloc[0].get("y_map")
    if not isinstance(value, str) or not value:
        return None
    path = dataset.path / value
    return path if path.is_file() else None
