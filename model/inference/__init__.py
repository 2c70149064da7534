"""The one prediction path: load a MODEL_DIR and score photos.

    from model.inference import load_model
    predictor = load_model()                    # the bundled demo model
    result = predictor.predict("photo.jpg", age=40, sex="F")
"""

from model.data.colour import METHODS as WHITE_BALANCES
from model.data.io import resize, resize_mask
from model.data.patient import MAX_AGE, SEXES, check_age, check_sex
from model.inference.predictor import Prediction, Predictor, load_model

__all__ = ["MAX_AGE", "SEXES", "WHITE_BALANCES", "Prediction", "Predictor", "check_age", "check_sex", "load_model",
           "resize", "resize_mask"]
