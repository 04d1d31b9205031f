"""What the attention tasks (BubbleView, CodeCharts) share. A design block of one is the
design's only block (a study of that task) and runs on the dataset's own images, shown at a
display size; their trials give gaze points, image px of the natural size, that make fixation
maps; every stimulus wants its observers (none of them is counted per block)."""
from __future__ import annotations

from studyweb.design_checks import MAX_DISPLAY_PX, MAX_UPSCALE
from studyweb.tasks.registry import Task


class AttentionTask(Task):
    """An attention task: its own study (`study` = `name`), making maps."""

    makes_maps = True

    def check_block(self, checker, block: dict, out: dict, path: tuple, methods: dict) -> dict:
        if block.get("image", "original") != "original":
            checker.fail(path + ("image",), "attention studies run on the dataset's own images ('original')")
        return {**out, **self.check_display(checker, block, path), **self.check_settings(checker, block, path)}

    def check_settings(self, checker, block: dict, path: tuple) -> dict:
        """The block's own settings of this task, checked (the experiment's settings)."""
        return {}

    @staticmethod
    def check_display(checker, block: dict, path: tuple) -> dict:
        """An attention block's display size: display_width_px (CSS px an image is shown at) and
        max_upscale (the most it is enlarged: CodeCharts needs room for codes MIN_CODE_PX high,
        so 320x240 images need max_upscale 2.3 or more); `studyweb.settings`' defaults otherwise."""
        out = {}
        if "display_width_px" in block:
            out["display_width_px"] = checker.number(path + ("display_width_px",), block["display_width_px"], 0,
                                                     MAX_DISPLAY_PX, above=True)
        if "max_upscale" in block:
            out["max_upscale"] = checker.number(path + ("max_upscale",), block["max_upscale"], 1, MAX_UPSCALE)
        return out
