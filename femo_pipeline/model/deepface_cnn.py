"""DeepFace's facial-expression CNN rebuilt in Keras 3 (layer for layer) and loaded from its published weights
file, so the DeepFace contender runs without the deepface package. Pure module (no Dagster)."""

from __future__ import annotations

from pathlib import Path

from femo_pipeline.model.config import N_CLASSES, keras_module


def deepface_emotion_model(weights_path: str | Path):
    """DeepFace's facial-expression CNN loaded from its published weights file (Keras 2 HDF5 layout). The deepface
    package itself is not needed (it pulls tf-keras and more)."""
    model = deepface_architecture()
    model.load_weights(str(weights_path))
    return model


def deepface_architecture():
    """DeepFace's facial-expression CNN (serengil/deepface, models/demography/Emotion.py: 48x48x1 grey input
    scaled to 0-1, labels angry, disgust, fear, happy, sad, surprise, neutral = the study's ids 0-6), rebuilt
    layer for layer in Keras 3, with fresh weights."""
    keras = keras_module()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        layers.Conv2D(64, (5, 5), activation="relu"),
        layers.MaxPooling2D(pool_size=(5, 5), strides=(2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(3, 3), strides=(2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(3, 3), strides=(2, 2)),
        layers.Flatten(),
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(N_CLASSES, activation="softmax"),
    ])
    return model
