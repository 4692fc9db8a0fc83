"""Synthetic phantoms made by our own code, for tests and the demo (deterministic per seed).

* :func:`ct_spine_phantom`: CT volume in HU with vertebra labels, centroids and exact heights.
* :func:`ap_radiograph_phantom`: AP radiograph of T1-L5 with the 68 AASCE corner landmarks
  and the exact vertebra tilts (Cobb geometry).
* :func:`lateral_cervical_phantom`: lateral cervical radiograph with C1-C7 masks.
* :func:`lateral_spine_phantom`: whole-spine lateral radiograph with the endplate corners C2-S1.
"""

from SpineAILib.phantoms.ct_spine import CTPhantom, CTPhantomConfig, ct_spine_phantom  # noqa: F401
from SpineAILib.phantoms.xray_ap import APPhantom, APPhantomConfig, ap_radiograph_phantom  # noqa: F401
from SpineAILib.phantoms.xray_lateral import (  # noqa: F401
    CervicalPhantom,
    CervicalPhantomConfig,
    lateral_cervical_phantom,
)
from SpineAILib.phantoms.xray_spine_lateral import (  # noqa: F401
    LateralSpinePhantom,
    LateralSpinePhantomConfig,
    lateral_spine_phantom,
)
