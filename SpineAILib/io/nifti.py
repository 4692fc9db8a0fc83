"""NIfTI-1 files checked as stored, before SimpleITK reads them.

Three things SimpleITK does not say about a NIfTI file: a file cut short is read with the
missing voxels as zeros; NaN voxels come back as 0; and direction cosines that are orthonormal
only to about 1e-4 (as TotalSegmentator and other tools write them) are refused as "no
orthonormal definition". :func:`check_nifti` reads the header and the data as stored and refuses
the first two with a message; :func:`orthonormalised_copy` writes a copy whose sform is the
nearest orthonormal frame (the polar decomposition of the stored one), with the same spacing and
origin, for SimpleITK to read.
"""

from __future__ import annotations

import contextlib
import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from SpineAILib.errors import InputError

HEADER_SIZE = 348
# NIfTI datatype codes of floating-point voxels -> numpy type
FLOAT_TYPES = {16: np.float32, 64: np.float64}


@dataclass(frozen=True)
class NiftiHeader:
    endian: str  # "<" or ">"
    dims: tuple[int, ...]  # the sizes of the used dimensions
    datatype: int
    bitpix: int
    vox_offset: int
    pixdim: tuple[float, ...]  # the spacing of the used dimensions
    qform_code: int
    sform_code: int
    srow: np.ndarray  # (3, 4): voxel (i, j, k, 1) -> RAS mm

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    @property
    def data_bytes(self) -> int:
        return self.n_voxels * self.bitpix // 8


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[BinaryIO]:
    """The file as a byte stream, decompressed for ``.gz``; a compressed stream that is cut short
    or not gzip at all is refused with a message."""
    try:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as f:
            yield f
    except gzip.BadGzipFile:
        raise InputError(f"Could not read {path.name}: the file is corrupt or not a valid .nii.gz image (its "
                         "content is not gzip-compressed).") from None
    except (EOFError, zlib.error) as exc:
        raise InputError(f"{path.name} is truncated or corrupt ({exc}): the compressed data ends early. "
                         "Expected a complete NIfTI file; copy or export it again.") from None


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed for ``.gz`` (a compressed stream cut short is refused)."""
    with _reading(path) as f:
        return f.read()


def parse_header(raw: bytes, name: str) -> NiftiHeader | None:
    """The header of a NIfTI-1 file; None for another header size (NIfTI-2 is left to SimpleITK)."""
    if len(raw) < HEADER_SIZE:
        raise InputError(f"{name} is too short for a NIfTI file ({len(raw)} bytes; the header alone has "
                         f"{HEADER_SIZE}). Expected a complete NIfTI image.")
    for endian in ("<", ">"):
        if struct.unpack(f"{endian}i", raw[:4])[0] == HEADER_SIZE:
            break
    else:
        return None
    dim = struct.unpack(f"{endian}8h", raw[40:56])
    n = dim[0]
    if not 1 <= n <= 7 or any(d < 0 for d in dim[1:n + 1]):
        raise InputError(f"{name} has an invalid NIfTI header (dimensions {list(dim)}).")
    datatype, bitpix = struct.unpack(f"{endian}2h", raw[70:74])
    pixdim = struct.unpack(f"{endian}8f", raw[76:108])
    vox_offset = int(struct.unpack(f"{endian}f", raw[108:112])[0])
    qform_code, sform_code = struct.unpack(f"{endian}2h", raw[252:256])
    srow = np.array(struct.unpack(f"{endian}12f", raw[280:328]), float).reshape(3, 4)
    return NiftiHeader(endian, tuple(int(d) for d in dim[1:n + 1]), int(datatype), int(bitpix), max(vox_offset, 352),
                       tuple(float(p) for p in pixdim[1:n + 1]), int(qform_code), int(sform_code), srow)


def check_nifti(path: Path, chunk_bytes: int = 1 << 24) -> NiftiHeader | None:
    """The header of a NIfTI file whose voxel data is all there and finite (None for a NIfTI-2
    header, left to SimpleITK); InputError otherwise. The data is streamed in chunks of
    ``chunk_bytes``, so checking costs one decompression and no copy of the volume."""
    with _reading(path) as f:
        head = f.read(HEADER_SIZE + 4)
        hdr = parse_header(head, path.name)
        if hdr is None:
            return None
        dtype = None
        if hdr.datatype in FLOAT_TYPES:
            dtype = np.dtype(FLOAT_TYPES[hdr.datatype]).newbyteorder(hdr.endian)
        skip = hdr.vox_offset - len(head)  # extensions between the header and the data
        size, bad, seen, carry = len(head), 0, 0, b""
        while chunk := f.read(chunk_bytes):
            size += len(chunk)
            if dtype is None:
                continue
            data = carry + chunk
            if skip > 0:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            usable = min(len(data) // dtype.itemsize, hdr.n_voxels - seen)  # whole voxels, data only
            values = np.frombuffer(data, dtype, count=usable)
            bad += int(np.count_nonzero(~np.isfinite(values)))
            seen += usable
            carry = data[usable * dtype.itemsize:] if seen < hdr.n_voxels else b""
    if size < hdr.vox_offset + hdr.data_bytes:
        raise InputError(f"{path.name} is truncated: its header announces {hdr.data_bytes:,} bytes of voxel data "
                         f"({' x '.join(map(str, hdr.dims))} voxels), the file holds "
                         f"{max(0, size - hdr.vox_offset):,}. Expected a complete NIfTI file; copy or export "
                         "it again.")
    if bad:
        what = "every voxel is" if bad == hdr.n_voxels else f"{bad:,} of {hdr.n_voxels:,} voxels are"
        raise InputError(f"{path.name}: {what} NaN or infinite (as stored; readers show them as 0). Expected "
                         "finite intensities: fix or mask them before running.")
    return hdr


def orthonormalised_copy(raw: bytes, hdr: NiftiHeader, target: Path, name: str) -> tuple[Path, float]:
    """Write ``raw`` to ``target`` (uncompressed NIfTI) with its sform (or, without one, nothing
    changed but the codes) replaced by the nearest orthonormal frame at the same spacing and
    origin (pixdim set to that spacing); the qform is switched off. Returns (path, largest
    deviation of the stored frame's axes from orthonormal)."""
    axes = hdr.srow[:, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if hdr.sform_code <= 0 or np.any(spacing == 0):
        raise InputError(f"{name}: the direction cosines are not orthonormal and the file has no usable "
                         "sform to repair them from. Expected a NIfTI image with a valid orientation.")
    direction = axes / spacing
    u, _, vt = np.linalg.svd(direction)
    ortho = u @ vt
    deviation = float(np.abs(direction.T @ direction - np.eye(3)).max())
    srow = np.concatenate([ortho * spacing, hdr.srow[:, 3:]], axis=1)
    head = bytearray(raw[:hdr.vox_offset])
    struct.pack_into(f"{hdr.endian}3f", head, 80, *spacing)  # pixdim[1:4]: the spacing the sform states
    struct.pack_into(f"{hdr.endian}2h", head, 252, 0, max(hdr.sform_code, 1))
    struct.pack_into(f"{hdr.endian}12f", head, 280, *srow.ravel())
    target.write_bytes(bytes(head) + raw[hdr.vox_offset:])
    return target, deviation
