"""Saliency predictors, one file each, registered in `models.registry.PREDICTORS`.

Import a predictor's module to register it: `import models.saliency.center_bias`.
"""
