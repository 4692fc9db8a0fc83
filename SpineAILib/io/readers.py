"""Reading and writing images with SimpleITK.

Supported: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), a DICOM
series folder, single DICOM files (.dcm), and radiograph formats PNG/JPEG/TIFF/BMP. Colour
radiographs are converted to grayscale (ITU-R BT.601 luma) rather than rejected.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from SpineAILib.errors import InputError, InputWarning
from SpineAILib.io.image import Image
from SpineAILib.io.nifti import check_nifti, orthonormalised_copy, read_bytes

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
RADIOGRAPH_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
SUPPORTED_SUFFIXES = VOLUME_SUFFIXES + RADIOGRAPH_SUFFIXES + DICOM_SUFFIXES
WRITE_SUFFIXES = VOLUME_SUFFIXES + (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _to_grayscale(img):
    """Vector (RGB/RGBA) pixels -> scalar float luma; scalar images pass through."""
    import SimpleITK as sitk

    n = img.GetNumberOfComponentsPerPixel()
    if n == 1:
        return img, None
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    if n >= 3:
        gray = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
    else:  # gray + alpha
        gray = arr[..., 0]
    out = sitk.GetImageFromArray(gray)
    out.CopyInformation(img)
    return out, f"{n}-component colour image converted to grayscale"


def dicom_series_in(folder: Path) -> dict[str, int]:
    """{series instance UID: number of files} of the DICOM series in a folder (not recursive)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    with native_output():  # GDCM warns on stdout where it finds no series
        ids = reader.GetGDCMSeriesIDs(str(folder))
        return {i: len(reader.GetGDCMSeriesFileNames(str(folder), i)) for i in ids}


def _read_dicom_folder(folder: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    with native_output():  # GDCM warns on stdout where it finds no series; the message below says so
        ids = reader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise InputError(
            f"Folder {folder} contains no DICOM series. Expected a folder of DICOM slices, or give "
            f"a single file ({', '.join(SUPPORTED_SUFFIXES)})."
        )
    # The series with most slices is the one a user means when pointing at a folder.
    best = max(ids, key=lambda i: len(reader.GetGDCMSeriesFileNames(str(folder), i)))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), best))
    return reader.Execute(), {"dicom_series_uid": best, "n_series_in_folder": len(ids)}


@contextlib.contextmanager
def native_output() -> Iterator[list[str]]:
    """Capture what C libraries (libjpeg, ITK, GDCM, MetaIO) print to stdout/stderr during the
    block; the captured text is appended to the yielded list when it ends. Their messages then
    reach the user as SpineAI's own (an error or a warning), not as raw lines in the output."""
    for stream in (sys.stdout, sys.stderr):  # Slicer's console streams may lack flush or be None
        with contextlib.suppress(Exception):
            stream.flush()
    captured: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield captured
        finally:
            with contextlib.suppress(Exception):  # C stdio buffers what it wrote to a file: flush it here
                ctypes.CDLL(None).fflush(None)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))


def _sitk_read(p: Path, suffix: str, name: str | None = None):
    import SimpleITK as sitk

    name = name or p.name
    try:
        with native_output() as said:
            img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise InputError(f"Could not read {name}: the file is corrupt or not a valid {suffix} image ({first}).") \
            from None
    text = " ".join(line.strip() for line in "".join(said).splitlines() if line.strip())
    if "Premature end of JPEG file" in text:
        raise InputError(f"{name} is truncated (premature end of the JPEG data): the image is incomplete. Expected "
                         "a complete radiograph; copy or export it again.")
    if text:
        warnings.warn(f"{name}: {text}", InputWarning, stacklevel=3)
    return img


def _read_file(p: Path, suffix: str, meta: dict):
    """One image file. NIfTI is checked as stored first (truncated data, NaN voxels) and read
    with orthonormalised direction cosines where SimpleITK refuses them as not orthonormal."""
    if suffix not in (".nii", ".nii.gz"):
        return _sitk_read(p, suffix)
    hdr = check_nifti(p)
    try:
        return _sitk_read(p, suffix)
    except InputError as exc:
        if hdr is None or "orthonormal" not in str(exc):
            raise
    with tempfile.TemporaryDirectory(prefix="spineai-nifti-") as tmp:
        fixed, deviation = orthonormalised_copy(read_bytes(p), hdr, Path(tmp) / "orthonormalised.nii", p.name)
        img = _sitk_read(fixed, suffix, p.name)
    note = (f"{p.name}: direction cosines off orthonormal by up to {deviation:.1e}; read with the nearest "
            "orthonormal directions (same spacing and origin).")
    meta["orthonormalised"] = note
    warnings.warn(note, InputWarning, stacklevel=3)
    return img


def read_image(path: str | os.PathLike, expect_ndim: int | None = None) -> Image:
    """Read a volume or radiograph into an :class:`Image` (LPS geometry).

    Args:
        path: a file in a supported format or a folder holding a DICOM series.
        expect_ndim: 2 to get a radiograph (single-slice volumes are squeezed, real volumes
            rejected), 3 to require a volume, None to return what the file holds.
    Raises:
        InputError: missing or unreadable path, unsupported format, wrong dimensionality.
    """

    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"File not found: {p}. Expected an image file or a DICOM folder.")
    meta: dict = {"source": str(p)}
    if p.is_dir():
        img, extra = _read_dicom_folder(p)
        meta.update(extra)
    else:
        suffix = _suffix(p)
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(
                f"Unsupported file format '{suffix or p.name}' for {p.name}. Supported: "
                f"{', '.join(SUPPORTED_SUFFIXES)} or a DICOM series folder."
            )
        img = _read_file(p, suffix, meta)
        if suffix in RADIOGRAPH_SUFFIXES:
            # These formats hold no physical pixel size; SimpleITK reports 1 mm.
            meta["spacing_known"] = False
    img, note = _to_grayscale(img)
    if note:
        meta["converted"] = note
    if img.GetDimension() not in (2, 3):
        raise InputError(f"{p.name} has {img.GetDimension()} dimensions; expected a 2D radiograph or a 3D volume.")
    image = Image.from_sitk(img, meta)
    if expect_ndim == 2:
        image = image.as_2d(task=f"Reading {p.name} as a radiograph")
    elif expect_ndim == 3 and (image.is_2d or min(image.size) == 1):
        raise InputError(
            f"{p.name} is a 2D image of size {image.size}; this task expects a 3D volume (CT). "
            "Load a CT series or a NIfTI/NRRD volume."
        )
    return image


def write_image(image: Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write an :class:`Image` with its geometry. The format follows the file extension."""
    import SimpleITK as sitk

    p = Path(path)
    suffix = _suffix(p)
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"Cannot write '{suffix}' files; use one of {', '.join(WRITE_SUFFIXES)}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image.to_sitk(), str(p), compress and suffix not in RADIOGRAPH_SUFFIXES)
    return p


# What a folder of radiographs may hold, one image per file (the CLI's and the trainers' listing).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nrrd", ".nii", ".nii.gz", ".mha")


def list_images(path: str | os.PathLike) -> list[Path]:
    """A single image, or every image file in a folder (sorted, not recursive)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(f"Not found: {p}. Give a radiograph file or a folder of radiographs.")
    # radiographs are one image per file; a DICOM series of slices is a volume. GDCM reads every
    # file's header, so only folders holding files that may be DICOM (not PNG, JPEG, NIfTI ...) ask.
    others = tuple(s for s in IMAGE_SUFFIXES if s not in DICOM_SUFFIXES)
    dicom_like = [f for f in p.iterdir() if f.is_file() and not f.name.lower().endswith(others)]
    slices = max(dicom_series_in(p).values(), default=0) if len(dicom_like) >= 3 else 0
    if slices >= 3:
        raise InputError(f"Folder {p} holds a DICOM series of {slices} slices: a volume such as a CT, not "
                         "radiographs. Expected AP spine radiographs, one image per file (PNG, JPEG, DICOM).")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise InputError(f"Folder {p} holds no radiographs ({', '.join(IMAGE_SUFFIXES)}).")
    return files
