"""DICOM photographs in (every reader path: read_image decodes .dcm), overlays out, bad files."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from model.data.dicom import read_header
from model.data.dicom_out import SECONDARY_CAPTURE, secondary_capture
from model.data.io import read_image
from model.errors import DermsevError
from tests.dicom_files import DERMOSCOPIC, ct_bytes, dicom_bytes, photo, report_bytes


def test_uncompressed_rgb_photo_reads_exactly():
    pixels = photo()
    arr = read_image(dicom_bytes(pixels), name="a.dcm")
    assert arr.dtype == np.uint8 and arr.shape == (48, 64, 3)
    assert np.array_equal(arr, pixels)


def test_jpeg_baseline_ybr_reads_as_rgb():
    """YBR_FULL_422 JPEG (what cameras write) comes out RGB, close to the source pixels."""
    pixels = photo()
    arr = read_image(dicom_bytes(pixels, syntax="jpeg"), name="b.dcm")
    assert arr.shape == (48, 64, 3)
    err = np.abs(arr.astype(int) - pixels.astype(int)).mean(axis=(0, 1))
    assert (err < 4).all(), err  # a YBR image read as RGB would be off by ~100 in red and blue


def test_uncompressed_ybr_full_converted_to_rgb():
    from pydicom.pixels import convert_color_space

    pixels = photo()
    ybr = convert_color_space(pixels, "RGB", "YBR_FULL")
    arr = read_image(dicom_bytes(ybr, photometric="YBR_FULL"), name="c.dcm")
    assert np.abs(arr.astype(int) - pixels.astype(int)).max() <= 2


def test_dermoscopic_and_monochrome():
    grey = photo()[:, :, 0]
    arr = read_image(dicom_bytes(grey, sop_class=DERMOSCOPIC, modality="DMS"), name="d.dcm")
    assert arr.shape == (48, 64, 1) and np.array_equal(arr[:, :, 0], grey)
    inverted = read_image(dicom_bytes(grey, photometric="MONOCHROME1"), name="e.dcm")
    assert np.array_equal(inverted[:, :, 0], 255 - grey)


def test_sixteen_bit_stored_twelve_bits_scaled_to_full_range():
    pixels = (photo().astype(np.uint16) * 16)  # 12-bit values
    data = dicom_bytes(pixels, BitsStored=12, HighBit=11)
    arr = read_image(data, name="f.dcm")
    assert arr.dtype == np.uint16 and arr.max() == pixels.max() * 16


def test_header_age_sex_body_part():
    h = read_header(dicom_bytes(PatientAge="045Y", PatientSex="F", BodyPartExamined="ARM"), "g.dcm")
    assert (h.age, h.sex, h.body_part, h.modality) == (45.0, "F", "ARM", "XC")
    assert h.summary == "age 45 years, sex F, body part ARM"
    months = read_header(dicom_bytes(PatientAge="018M", PatientSex="O"), "h.dcm")
    assert months.age == 1.5 and months.sex is None and months.body_part is None
    born = read_header(dicom_bytes(PatientBirthDate="20000615", StudyDate="20260615"), "i.dcm")
    assert born.age == pytest.approx(26.0, abs=0.05)
    assert read_header(dicom_bytes(), "j.dcm").summary == "no age, sex or body part"


BAD = [
    (ct_bytes, r"^ct\.dcm: a DICOM CT Image Storage \(CT\), not a photograph"),
    (report_bytes, r"^sr\.dcm: a DICOM .* \(SR\) with no image .* not a photograph"),
    (lambda: dicom_bytes(frames=3), r"^cine\.dcm: a multi-frame DICOM \(3 frames: a cine or video\)"),
    (lambda: dicom_bytes(syntax="jpegls"), r"^ls\.dcm: DICOM pixel data compressed as JPEG-LS Lossless .* cannot be decoded"),
    (lambda: dicom_bytes(rows=4000), r"^big\.dcm: the DICOM header declares 64x4000 pixels x 3 samples \(768000 bytes\) but the file holds 9216"),
    (lambda: dicom_bytes(rows=20000, Columns=20000), r"^huge\.dcm: refused, the DICOM header declares 20000x20000 pixels"),
    (lambda: dicom_bytes(photo(), syntax="jpeg", rows=96), r"^jl\.dcm: the DICOM header declares 64x96 pixels but its compressed image is 64x48$"),
    (lambda: b"\0" * 128 + b"DICM" + b"\x02\x00garbage", r"^broken\.dcm: not a readable DICOM file"),
    (lambda: b"hello, not dicom at all" * 10, r"^plain\.dcm: not a DICOM file"),
]  # fmt: skip
NAMES = ["ct.dcm", "sr.dcm", "cine.dcm", "ls.dcm", "big.dcm", "huge.dcm", "jl.dcm", "broken.dcm", "plain.dcm"]


@pytest.mark.parametrize(("make", "message", "name"), [(*b, n) for b, n in zip(BAD, NAMES, strict=True)])
def test_bad_dicom_one_line_error_naming_the_file(make, message, name):
    with pytest.raises(DermsevError, match=message) as info:
        read_image(make(), name=name)
    assert "\n" not in str(info.value)


def test_dicom_detected_by_content_whatever_the_name(tmp_path):
    path = tmp_path / "photo.bin"
    path.write_bytes(dicom_bytes())
    assert read_image(path).shape == (48, 64, 3)
    ct = tmp_path / "scan"
    ct.write_bytes(ct_bytes())
    with pytest.raises(DermsevError, match=r"scan: a DICOM CT Image Storage"):
        read_image(ct)


def test_secondary_capture_round_trip_references_the_source():
    source = dicom_bytes(PatientAge="045Y", PatientSex="F", BodyPartExamined="ARM", StudyDate="20260101")
    src = pydicom.dcmread(io.BytesIO(source))
    overlay = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    series = "1.2.3.4.5"
    out = secondary_capture(overlay, source=source, description="dermsev erythema severity overlay",
                            comments="erythema 1.85 (moderate)", series_uid=series, instance_number=2)
    ds = pydicom.dcmread(io.BytesIO(out))
    assert ds.SOPClassUID == SECONDARY_CAPTURE and ds.file_meta.MediaStorageSOPClassUID == SECONDARY_CAPTURE
    assert np.array_equal(ds.pixel_array, overlay)  # the pixels intact
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.SeriesInstanceUID == series
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert (ds.PatientID, str(ds.PatientName), ds.PatientSex, ds.PatientAge) == ("HOSP-123", "Doe^Jane", "F", "045Y")
    ref = ds.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    assert ds.InstanceNumber == 2 and ds.ImageType == ["DERIVED", "SECONDARY"]
    assert ds.SeriesDescription == "dermsev erythema severity overlay"
    assert ds.ImageComments == "erythema 1.85 (moderate)" and ds.Modality == "XC"


def test_secondary_capture_without_source_is_a_new_study_under_the_pseudonym():
    out = secondary_capture(np.zeros((8, 8, 3), np.uint8), description="x", patient_id="PT-0042")
    ds = pydicom.dcmread(io.BytesIO(out))
    assert ds.PatientID == "PT-0042" and str(ds.PatientName) == "" and "SourceImageSequence" not in ds
    assert ds.StudyInstanceUID and ds.SeriesInstanceUID


def test_secondary_capture_ill_args():
    with pytest.raises(ValueError, match=r"rgb must be an \(H, W, 3\) uint8 array"):
        secondary_capture(np.zeros((8, 8), np.uint8), description="x")
    with pytest.raises(DermsevError, match=r"^source: not a DICOM file"):
        secondary_capture(np.zeros((8, 8, 3), np.uint8), source=b"x" * 200, description="x")
