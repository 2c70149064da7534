"""DICOM photographs in (pydicom); overlays out are model/data/dicom_out.py.

In: VL Photographic images (modality XC) and Dermoscopic Photography (DMS), one frame,
uncompressed (RGB, YBR, monochrome) or compressed with a transfer syntax that has a decoder
here (JPEG baseline and extended through Pillow; JPEG 2000 when Pillow has OpenJPEG).
Anything else is a DermsevError naming the file: a CT or other non-photograph, a structured
report (no pixels), a multi-frame cine, a transfer syntax without a decoder (JPEG-LS), or a
header whose declared size disagrees with its pixel data.

The header's age, sex and body part (`read_header`) are only *shown* to the clinician;
nothing here passes them to the model: what the clinician entered wins.

"""

from __future__ import annotations

import datetime as dt
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import DermsevError

PREAMBLE = 128  # a DICOM Part 10 file: 128-byte preamble, then b"DICM"
MAGIC = b"DICM"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
DERMOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.7"
PHOTO_CLASSES = {VL_PHOTOGRAPHIC: "VL Photographic", DERMOSCOPIC: "Dermoscopic Photography"}
PHOTO_MODALITIES = ("XC", "DMS")
READS = "dermsev reads VL Photographic (XC) and Dermoscopic Photography (DMS) images"
_AGE_UNITS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: b"DICM" after the 128-byte preamble."""
    return data[PREAMBLE : PREAMBLE + 4] == MAGIC


def read_bytes(source, label: str) -> bytes:
    """The bytes of a path, BytesIO or bytes."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DermsevError(f"{label}: file not found")
        return path.read_bytes()
    if isinstance(source, io.BytesIO):
        return source.getvalue()
    return bytes(source)


def open_dataset(data: bytes, label: str, pixels: bool = True):
    """A pydicom Dataset from Part 10 bytes (pixels=False: the header only); DermsevError naming
    `label` when it is not DICOM, unreadable or has no SOP Class UID."""
    from pydicom import dcmread

    if not is_dicom(data):
        raise DermsevError(f"{label}: not a DICOM file (no DICM marker after the 128-byte preamble)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about each odd element; we judge the whole
            ds = dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many types for a broken file
        msg = str(exc).split("\n")[0][:120]
        raise DermsevError(f"{label}: not a readable DICOM file ({msg})") from None
    if "SOPClassUID" not in ds:
        raise DermsevError(f"{label}: not a readable DICOM file (no SOP Class UID: truncated or corrupt)")
    return ds


def _kind(ds) -> str:
    """'CT Image Storage (CT)': what a DICOM file says it is, for messages."""
    from pydicom.uid import UID

    sop = str(ds.get("SOPClassUID", ""))
    name = UID(sop).name if sop else "unknown SOP class"
    modality = ds.get("Modality", "")
    return f"{name} ({modality})" if modality else name


def _check_photo(ds, label: str, max_pixels: int) -> None:
    """Refuse what is not a single-frame photograph we can decode, before decoding it."""
    from pydicom.pixels import get_decoder

    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")).upper()
    if "PixelData" not in ds:
        raise DermsevError(f"{label}: a DICOM {_kind(ds)} with no image (a report or document), "
                           f"not a photograph; {READS}")
    if sop not in PHOTO_CLASSES and modality not in PHOTO_MODALITIES:
        raise DermsevError(f"{label}: a DICOM {_kind(ds)}, not a photograph; {READS}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DermsevError(f"{label}: a multi-frame DICOM ({frames} frames: a cine or video), "
                           "not a single photograph; export one frame as a VL Photographic image")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols == 0:
        raise DermsevError(f"{label}: DICOM header gives no image size (Rows x Columns = {rows} x {cols})")
    if rows * cols > max_pixels:
        raise DermsevError(f"{label}: refused, the DICOM header declares {cols}x{rows} pixels "
                           f"(limit {max_pixels // 10**6} MP)")
    if int(ds.get("PixelRepresentation", 0) or 0) != 0:
        raise DermsevError(f"{label}: signed DICOM pixel data, not a photograph; {READS}")
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None:
        raise DermsevError(f"{label}: DICOM file has no transfer syntax in its file meta information")
    if not ts.is_compressed:
        spp, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.get("BitsAllocated", 8))
        expected = rows * cols * spp * ((bits + 7) // 8) if bits != 1 else (rows * cols + 7) // 8
        held = len(ds.PixelData)
        if not expected <= held <= expected + 1:  # one pad byte to an even length
            raise DermsevError(f"{label}: the DICOM header declares {cols}x{rows} pixels x {spp} samples "
                               f"({expected} bytes) but the file holds {held} bytes of pixel data")
        return
    try:
        available = get_decoder(ts).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise DermsevError(f"{label}: DICOM pixel data compressed as {ts.name} ({ts}), which cannot be "
                           "decoded here; export the photo uncompressed or as JPEG baseline")
    size = _frame_size(ds)
    if size is not None and size != (cols, rows):
        raise DermsevError(f"{label}: the DICOM header declares {cols}x{rows} pixels but its compressed "
                           f"image is {size[0]}x{size[1]}")


def _frame_size(ds) -> tuple[int, int] | None:
    """(width, height) of the first compressed frame from its own header (Pillow reads JPEG and
    JPEG 2000 headers without decoding), or None when that cannot be read here."""
    from PIL import Image
    from pydicom.encaps import get_frame

    try:
        with Image.open(io.BytesIO(get_frame(ds.PixelData, 0, number_of_frames=1))) as img:
            return img.size
    except Exception:  # not a format Pillow knows (RLE): the decoder checks the size
        return None


def _to_photo(ds, arr: np.ndarray, label: str) -> np.ndarray:
    """pixel_array output -> (H, W, C) uint8/uint16, as a viewer would show it."""
    from pydicom.pixels import apply_color_lut

    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    rows, cols = int(ds.Rows), int(ds.Columns)
    if arr.shape[:2] != (rows, cols):
        raise DermsevError(f"{label}: the DICOM header declares {cols}x{rows} pixels but the image "
                           f"decodes to {arr.shape[1]}x{arr.shape[0]}")
    bits = int(ds.get("BitsStored", 8) or 8)
    if arr.dtype.itemsize > 1:
        if bits <= 8:
            arr = arr.astype(np.uint8)
        else:  # 10-, 12- or 16-bit samples -> the uint16 range the model expects
            arr = (arr.astype(np.uint32) << (16 - min(bits, 16))).astype(np.uint16)
    if pi == "MONOCHROME1":  # 0 is white
        arr = np.iinfo(arr.dtype).max - arr
    return np.ascontiguousarray(arr)


def read_dicom(source, name: str | None = None, max_pixels: int = 100_000_000) -> np.ndarray:
    """A DICOM photograph (path or bytes) -> (H, W, C) uint8 or uint16, RGB or grey.

    Raises DermsevError naming the file for anything but a single-frame VL Photographic or
    Dermoscopic image with a decodable transfer syntax and a size that matches its pixels;
    a header declaring more than max_pixels is refused before anything is decoded.
    """
    from pydicom.pixels import pixel_array

    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    ds = open_dataset(read_bytes(source, label), label)
    _check_photo(ds, label, max_pixels)
    try:
        arr = pixel_array(ds)
    except DermsevError:
        raise
    except Exception as exc:
        ts = ds.file_meta.TransferSyntaxUID
        msg = str(exc).split("\n")[0][:120]
        raise DermsevError(f"{label}: DICOM pixel data cannot be decoded ({ts.name}: {msg})") from None
    return _to_photo(ds, arr, label)


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM photo's header says, to show the clinician (never used unconfirmed).

    age: years (from Patient's Age, else birth date and study date) or None; sex: "F", "M"
    or None (other values are not the model's); body_part: Body Part Examined, else the
    Anatomic Region's meaning, else None; the UIDs identify the photo for references.
    """

    age: float | None
    sex: str | None
    body_part: str | None
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str

    @property
    def summary(self) -> str:
        """'age 45 years, sex F, body part ARM' (the fields the header has)."""
        parts = [f"age {self.age:g} years" if self.age is not None else "",
                 f"sex {self.sex}" if self.sex else "", f"body part {self.body_part}" if self.body_part else ""]
        return ", ".join(p for p in parts if p) or "no age, sex or body part"


def _age(ds) -> float | None:
    text = str(ds.get("PatientAge", "") or "").strip().upper()
    m = re.fullmatch(r"(\d{1,3})([DWMY])", text)
    if m:
        return round(int(m.group(1)) * _AGE_UNITS[m.group(2)], 1)
    born, when = str(ds.get("PatientBirthDate", "") or ""), None
    for key in ("StudyDate", "ContentDate", "AcquisitionDate"):
        if ds.get(key):
            when = str(ds.get(key))
            break
    try:
        b, w = dt.datetime.strptime(born[:8], "%Y%m%d"), dt.datetime.strptime(str(when)[:8], "%Y%m%d")
    except ValueError:
        return None
    years = (w - b).days / 365.25
    return round(years, 1) if 0 <= years <= 150 else None


def _body_part(ds) -> str | None:
    part = str(ds.get("BodyPartExamined", "") or "").strip()
    if part:
        return part
    for item in ds.get("AnatomicRegionSequence", []) or []:
        meaning = str(item.get("CodeMeaning", "") or "").strip()
        if meaning:
            return meaning
    return None


def read_header(source, name: str | None = None) -> DicomHeader:
    """The header of a DICOM file (path or bytes), pixels not read; DermsevError if not DICOM."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    ds = open_dataset(read_bytes(source, label), label, pixels=False)
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    return DicomHeader(
        age=_age(ds), sex=sex if sex in ("F", "M") else None, body_part=_body_part(ds),
        modality=str(ds.get("Modality", "")), sop_class_uid=str(ds.get("SOPClassUID", "")),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
    )  # fmt: skip
