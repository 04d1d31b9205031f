"""Paired synthetic datasets: scene model, edits, rendering (datagen.blender), photo import."""
