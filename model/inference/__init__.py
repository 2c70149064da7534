"""The one prediction path: load a MODEL_DIR and score photos.

    from model.inference import load_model
    predictor = load_model()                    # the bundled demo model
    result = predictor.predict("photo.jpg", age=40, sex="F")
"""

from model.inference.predictor import Prediction, Predictor, load_model

__all__ = ["Prediction", "Predictor", "load_model"]
