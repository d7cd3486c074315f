"""Which device a run trains on, and whether bfloat16 pays on it.

Both trainers ask these (`numbre.training.loop` for digits, `numbre.training.lines` for
lines), so they live here rather than inside either one: the line trainer needs no part of the
digit trainer to learn what the hardware does.
"""

from __future__ import annotations

from pathlib import Path

import torch

from numbre.errors import TrainingError


def pick_device(name: str) -> torch.device:
    """CUDA or MPS when present and asked for by `auto`, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"--device {name!r} is not a device; use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is available here; use --device cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise TrainingError("--device mps: no Apple GPU (MPS) is available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"--device {name!r}: numbre trains on cpu, cuda or mps; use one of those")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """bfloat16 autocast only where the hardware computes it natively; elsewhere it is slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False
