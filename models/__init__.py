"""Saliency predictors and saliency-guided editors on torch. Filled by a later issue."""
