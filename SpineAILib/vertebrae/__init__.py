"""CT vertebra localisation and identification (McCouat & Glocker two-stage CNNs): labelled
centroids C1..L5/S1 and vertebra segments.

    from SpineAILib import vertebrae
    result = vertebrae.locate("ct.nii.gz")     # or a SpineAILib Image
    result.centroids                            # {VerSe label: LPS mm}; result.centroids_ras()
    result.confidence, result.labels, result.warnings
"""

from SpineAILib.vertebrae.predict import VertebraResult, locate, segments_from_centroids, shift_labels  # noqa: F401
