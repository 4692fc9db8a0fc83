"""Vertebral body segmentation (click to segment, Klein et al.) -- building blocks so far:
height measurement of a body mask in its own mid-sagittal plane. The segmentation model and
``segment()`` are not implemented yet."""
