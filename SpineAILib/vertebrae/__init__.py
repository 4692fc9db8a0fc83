"""CT vertebra localisation and identification (McCouat & Glocker two-stage CNNs) -- building
blocks so far: centroid file formats, sparse-to-dense labels, dense-to-sparse centroids and the
patch tiling of the detection stage. The models and ``locate()`` are not implemented yet."""
