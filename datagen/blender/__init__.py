"""The only package that imports bpy. Import it lazily: `from datagen.blender import renderer`."""
