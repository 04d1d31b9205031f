"""Saliency-guided editors, one file each, registered in `models.registry.EDITORS`.

`models.base.import_models()` imports every module here (and in `models.saliency`).
"""
