"""DICOM test files made with pydicom in the tests (no binary datasets in the repository)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    generate_uid,
)

from model.data.dicom import DERMOSCOPIC, VL_PHOTOGRAPHIC


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8: a smooth skin-coloured gradient with some noise (JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([180 + 40 * x / w, 120 + 30 * y / h, 100 + 0 * x], axis=2)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def dicom_bytes(
    pixels: np.ndarray | None = None,
    *,
    sop_class: str = VL_PHOTOGRAPHIC,
    modality: str = "XC",
    syntax: str = "native",
    photometric: str | None = None,
    frames: int = 1,
    rows: int | None = None,
    pixel_data: bytes | None = None,
    **header,
) -> bytes:
    """A DICOM Part 10 file. syntax: "native" (explicit VR little endian), "jpeg" (JPEG
    baseline by Pillow, YBR_FULL_422) or "jpegls" (declared JPEG-LS, bytes not decodable).
    rows: a Rows value that lies about the pixels; pixel_data: raw bytes instead of pixels;
    header: any further attributes (PatientAge="045Y", PatientSex="F", ...)."""
    pixels = photo() if pixels is None else pixels
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = modality, "HOSP-123", "Doe^Jane"
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    ds.Rows, ds.Columns = rows or h, w
    ds.SamplesPerPixel = channels
    ds.BitsAllocated = ds.BitsStored = 8 * pixels.dtype.itemsize
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    if channels == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    meta = FileMetaDataset()
    if syntax == "native":
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PhotometricInterpretation = photometric or ("RGB" if channels == 3 else "MONOCHROME2")
        ds.PixelData = pixel_data if pixel_data is not None else np.ascontiguousarray(
            np.concatenate([pixels.ravel()] * frames)).tobytes()
    else:
        meta.TransferSyntaxUID = JPEGBaseline8Bit if syntax == "jpeg" else JPEGLSLossless
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
        ds.PhotometricInterpretation = photometric or "YBR_FULL_422"
        ds.PixelData = encapsulate([buf.getvalue() if syntax == "jpeg" else b"\xff\xd8not-jpeg-ls\xff\xd9"])
        ds["PixelData"].VR = "OB"
    for key, value in header.items():
        setattr(ds, key, value)
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ct_bytes() -> bytes:
    return dicom_bytes(np.zeros((64, 64), np.uint8), sop_class=CTImageStorage, modality="CT")


def report_bytes() -> bytes:
    """A structured report: no pixels."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.33", generate_uid()
    ds.Modality, ds.StudyInstanceUID = "SR", generate_uid()
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


__all__ = ["DERMOSCOPIC", "VL_PHOTOGRAPHIC", "ct_bytes", "dicom_bytes", "photo", "report_bytes"]
