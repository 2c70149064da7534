"""Severity overlays out as DICOM Secondary Capture (pydicom).

`secondary_capture` wraps an (H, W, 3) uint8 RGB picture (an overlay) as a Secondary Capture
image that, given the source photo, joins its patient and study and references it (Source
Image Sequence), so a PACS viewer shows it beside the photo.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np

from model.data.dicom import open_dataset, read_bytes

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


# Copied from the source photo so the overlay joins its patient and study in a PACS.
_PATIENT_STUDY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription", "BodyPartExamined", "ImageLaterality",
)  # fmt: skip


def new_uid() -> str:
    """A fresh DICOM UID (pydicom's root, random suffix)."""
    from pydicom.uid import generate_uid

    return str(generate_uid())


def secondary_capture(
    rgb: np.ndarray,
    *,
    source: bytes | str | Path | None = None,
    description: str,
    comments: str = "",
    series_uid: str | None = None,
    series_number: int = 901,
    instance_number: int = 1,
    patient_id: str | None = None,
    software: str = "dermsev",
) -> bytes:
    """An (H, W, 3) uint8 RGB picture as a DICOM Secondary Capture file (bytes, uncompressed).

    source: the photo it was derived from (DICOM bytes or path): its patient and study are
    copied and it is referenced (Source Image Sequence); without one (a JPEG upload) a new
    study is made and Patient ID is `patient_id` (a pseudonym). series_uid: pass the same UID
    for every overlay of one photo (one series, instance_number 1, 2, ...).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    ds = Dataset()
    src = None
    if source is not None:
        src = open_dataset(read_bytes(source, "source"), "source", pixels=False)
        for key in _PATIENT_STUDY:
            if key in src:
                setattr(ds, key, src.data_element(key).value)
        ref = Dataset()
        ref.ReferencedSOPClassUID = src.SOPClassUID
        ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
        ds.SourceImageSequence = [ref]
        ds.Modality = str(src.get("Modality", "") or "XC")
    else:
        ds.PatientName, ds.PatientID = "", patient_id or ""
        ds.PatientBirthDate = ds.PatientSex = ""
        ds.StudyInstanceUID = new_uid()
        ds.Modality = "XC"
    now = dt.datetime.now()
    for key, value in (("StudyDate", now.strftime("%Y%m%d")), ("StudyTime", now.strftime("%H%M%S")),
                       ("StudyID", ""), ("AccessionNumber", ""), ("ReferringPhysicianName", "")):
        if key not in ds:
            setattr(ds, key, value)
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = new_uid()
    ds.SeriesInstanceUID = series_uid or new_uid()
    ds.SeriesNumber, ds.InstanceNumber = series_number, instance_number
    ds.SeriesDescription = description[:64]
    ds.ConversionType = "WSD"  # made on a workstation
    ds.Manufacturer, ds.SoftwareVersions = "dermsev", software[:64]
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ds.ImageComments = comments[:10240]
    ds.BurnedInAnnotation = "NO"
    ds.PatientOrientation = ""
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = ds.ContentDate, ds.ContentTime
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = int(rgb.shape[0]), int(rgb.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
