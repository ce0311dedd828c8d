"""DeepFace's emotion model as a reader, run by the `deepface` package itself. Pure module (no Dagster).

DeepFace keeps its weights in `$DEEPFACE_HOME/.deepface/weights/` (DEEPFACE_HOME defaults to the home folder) and
downloads them from GitHub the first time its model is built. Offline that download fails only after the
resolver or the connection gives up, which can take minutes, so `load` builds the model only when the weights
file is there already or a probe of DeepFace's own download addresses answers within a few seconds; otherwise it
says why the reader is not run. Nothing here ever stands in for DeepFace: no weights, no reader.

`probabilities` gives what `DeepFace.analyze(face, actions=["emotion"], detector_backend="skip")` gives for each
face (the test suite checks the two agree), in batches through DeepFace's own model object and resizing instead
of one analyze call per face, which costs about three times as much.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

WEIGHTS_FILE = "facial_expression_model_weights.h5"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # DeepFace's order = study ids 0-6
# variables `import deepface.DeepFace` sets for the whole process; put back afterwards (see _deepface_env)
_PROCESS_ENV = ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")


def weights_path() -> Path:
    """Where DeepFace reads its emotion weights (and downloads them to)."""
    home = os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")
    return Path(home) / ".deepface" / "weights" / WEIGHTS_FILE


def missing_package() -> str | None:
    """Why the deepface package cannot run here, or None."""
    for module, package in (("deepface", "deepface==0.0.103"), ("tf_keras", "tf-keras==2.21.0")):
        if importlib.util.find_spec(module) is None:
            return (f"the {package} package is not installed (a default dependency of femo: pip install -e . "
                    "-c constraints.txt)")
    return None


def reachable(url: str, timeout: float) -> bool:
    """Whether `url` answers a HEAD request (below 400, or 405 for servers that refuse HEAD) within `timeout`
    seconds, name resolution included: the request runs in a daemon thread that is waited for at most that long,
    since requests' own timeout does not cover a resolver that hangs."""
    import requests

    answer: list[bool] = []

    def probe() -> None:
        try:
            status = requests.head(url, allow_redirects=True, timeout=timeout).status_code
            answer.append(status < 400 or status == 405)
        except (requests.RequestException, OSError, ValueError):
            answer.append(False)

    thread = threading.Thread(target=probe, name="deepface-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


@contextlib.contextmanager
def _deepface_env():
    """Import and build DeepFace inside this block: its import sets TF_USE_LEGACY_KERAS and TF_CPP_MIN_LOG_LEVEL
    for the process, which are put back as they were when the block ends (the built model keeps what it
    resolved), so later code in the same process (femo's Keras 3 models, other assets of an in-process run) sees
    the environment it had."""
    before = {name: os.environ.get(name) for name in _PROCESS_ENV}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def download_urls() -> list[str]:
    """The addresses DeepFace downloads its emotion weights from, as the package lists them."""
    with _deepface_env():
        from deepface import DeepFace  # noqa: F401  (sets the Keras flavour before the model module loads)
        from deepface.models.demography.tf import Emotion

    urls = Emotion.WEIGHTS_URL
    return [urls] if isinstance(urls, str) else list(urls)


def load(download: bool = True, probe_timeout: float = 5.0):
    """(DeepFace's emotion model, "") or (None, the reason it is not run).

    With its weights file absent, DeepFace downloads it at first use: allowed when `download` is on and one of
    its addresses answers within `probe_timeout` seconds; otherwise the reason names the file and the folder."""
    why = missing_package()
    if why:
        return None, why
    path = weights_path()
    if not path.is_file():
        where = f"{WEIGHTS_FILE} is not in $DEEPFACE_HOME/.deepface/weights/ ({path.parent})"
        if not download:
            return None, f"its weights file {where}, and downloading it is turned off (deepface_download)"
        urls = download_urls()
        if not any(reachable(url, probe_timeout) for url in urls):
            return None, (f"offline: its weights file {where}, and DeepFace's download addresses did not answer "
                          f"within {probe_timeout:g} s ({', '.join(urls)}); put the file there or run online")
    try:
        with _deepface_env():
            from deepface import DeepFace

            client = DeepFace.build_model("Emotion", task="facial_attribute")
    except Exception as exc:  # a failed download or a damaged file: the reader is not run, with DeepFace's words
        return None, f"DeepFace could not load its emotion model: {type(exc).__name__}: {exc}"
    return client, ""


def _face(img: np.ndarray) -> np.ndarray:
    """One face as DeepFace.analyze hands it to the emotion model with detector_backend="skip": three channels,
    scaled to 0-1 when its values exceed 1, then padded and resized to 224 x 224 by DeepFace's own function."""
    from deepface.modules import preprocessing

    face = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    face = face / 255 if face.max() > 1 else face
    return preprocessing.resize_image(img=face, target_size=(224, 224))[0]


def probabilities(client, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """N x 7 probabilities (study order) of DeepFace's emotion model for N x H x W x 1 grey faces (0-255)."""
    out = np.zeros((len(x), len(LABELS)))
    for start in range(0, len(x), batch):
        faces = np.stack([_face(img) for img in x[start : start + batch]])
        out[start : start + len(faces)] = np.atleast_2d(np.asarray(client.predict(faces), np.float64))
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)  # as analyze: each row over its sum
