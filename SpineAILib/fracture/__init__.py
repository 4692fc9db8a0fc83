"""Vertebral fracture assessment -- building blocks so far: Genant semi-quantitative grading from
heights and the dual-pathway 3D CNN of Nicolaes et al. (architecture only; not trained yet)."""
