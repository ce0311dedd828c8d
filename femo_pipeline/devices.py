"""What a computation really ran on: the GPUs the Keras backend sees (name and count) or the CPU (model and the
cores this process may use). Every record of a training or benchmark run names its device from here, never an
assumed one. Pure module (no Dagster, no Keras import of its own: it asks the backend already in use).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def cpu_cores() -> int:
    """Cores this process may run on (its affinity; the machine's count where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_device() -> dict:
    return {"kind": "CPU", "name": cpu_model(), "count": cpu_cores()}


def _backend_gpus(backend: str) -> list[str]:
    """Names of the GPUs the given Keras backend computes on ([] for none). Only a backend module that is already
    imported is asked, so this never loads a framework."""
    if backend == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif backend == "jax" and "jax" in sys.modules:
        jax = sys.modules["jax"]
        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    elif backend == "tensorflow" and "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        return [tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
                for gpu in tf.config.list_physical_devices("GPU")]
    return []


def training_device(backend: str | None = None) -> dict:
    """{"kind": "GPU" or "CPU", "name", "count", "backend"} for the device the Keras backend trains on."""
    if backend is None:
        from femo_pipeline.model.config import keras_module

        backend = keras_module().backend.backend()
    gpus = _backend_gpus(backend)
    if gpus:
        device = {"kind": "GPU", "name": gpus[0], "count": len(gpus)}
    else:
        device = cpu_device()
    return {**device, "backend": backend}


def describe(device: dict) -> str:
    """One line: "1 x NVIDIA H200 (GPU)" or "2 cores of AMD EPYC 7B13 (CPU)"."""
    if device.get("kind") == "GPU":
        return f"{device.get('count', 1)} x {device.get('name', 'GPU')} (GPU)"
    count = device.get("count", 1)
    return f"{count} core{'s' if count != 1 else ''} of {device.get('name', 'unknown CPU')} (CPU)"


def visible_gpus() -> list[str]:
    """GPU names nvidia-smi lists on this machine ([] without nvidia-smi or GPUs); used by the benchmarks'
    machine description, which must not start a framework to find out."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
