"""The one prediction path: load a MODEL_DIR and score photos.

    from model.inference import load_model
    predictor = load_model()                    # the bundled demo model
    result = predictor.predict("photo.jpg", age=40, sex="F")
"""

from model.data.colour import METHODS as WHITE_BALANCES
from model.data.dicom import DicomHeader, is_dicom, read_header
from model.data.dicom_out import new_uid, secondary_capture
from model.data.io import check_header, resize, resize_mask
from model.data.patient import MAX_AGE, SEXES, check_age, check_sex
from model.inference.onnx import file_sha256
from model.inference.predictor import Prediction, Predictor, load_model
from model.scoring import fhir

__all__ = ["MAX_AGE", "SEXES", "WHITE_BALANCES", "DicomHeader", "Prediction", "Predictor", "check_age", "check_header",
           "check_sex", "fhir", "file_sha256", "is_dicom", "load_model", "new_uid", "read_header", "resize",
           "resize_mask", "secondary_capture"]
