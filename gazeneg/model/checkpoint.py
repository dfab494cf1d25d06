"""Self-describing checkpoints, written atomically and loaded as data (weights_only=True)."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
import torch

from gazeneg import grid
from gazeneg.data.dataset import FACE_FEATURES
from gazeneg.errors import GazenegError
from gazeneg.files import atomic_write_bytes
from gazeneg.model.networks import GazeModel, create_model

CHECKPOINT_VERSION = 1
# A model whose prediction for a plain grey strip lies further than this from the screen's centre (in cells;
# the screen's diagonal is 18) has damaged weights: a flipped exponent bit gave 1.8e35 cells.
ABSURD_CELLS = 100.0


class CheckpointError(GazenegError, ValueError):
    """A checkpoint is missing, unreadable, of another format, or would hold non-finite weights."""


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all().item() for v in state.values()
               if torch.is_tensor(v) and v.is_floating_point())


def weights_digest(state: dict) -> str:
    """sha256 of a state_dict's names, dtypes, shapes and bytes, in name order: stored with the weights by
    save_checkpoint and checked by read_checkpoint, so a bit changed on disk is found before it is used."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        if not torch.is_tensor(v):
            continue
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(v.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path, model: GazeModel, *, model_name: str, model_kwargs: dict, config: dict,
                    epoch: int, optimizer=None, extra: dict | None = None) -> None:
    """Write a checkpoint via temp file + os.replace. Refuses non-finite weights: a diverged model
    must never overwrite a good checkpoint."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not all_finite(state):
        raise CheckpointError(f"{path}: refusing to save non-finite weights (epoch {epoch})")
    payload = {
        "format_version": CHECKPOINT_VERSION,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "state_dict": state,
        "weights_sha256": weights_digest(state),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "config": _plain(config),
        "extra": _plain(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _plain(obj):
    """Reduce to types torch.load(weights_only=True) accepts (no custom classes)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {(k if isinstance(k, (int, str)) else str(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def read_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: cannot be read as a gazeneg checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a gazeneg checkpoint (no format_version/state_dict)")
    version = ckpt["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: format_version must be an integer, not {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this gazeneg ({CHECKPOINT_VERSION})")
    for key, typ in (("model_name", str), ("model_kwargs", dict), ("state_dict", dict), ("epoch", int)):
        if key not in ckpt:
            raise CheckpointError(f"{path}: not a complete gazeneg checkpoint (no {key!r})")
        if not isinstance(ckpt[key], typ):
            raise CheckpointError(f"{path}: {key!r} must be a {typ.__name__}, not {type(ckpt[key]).__name__}")
    bad = [k for k, v in ckpt["state_dict"].items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entry {bad[0]!r} is not a named tensor")
    if not all_finite(ckpt["state_dict"]):
        raise CheckpointError(f"{path}: holds non-finite weights (NaN or inf): a diverged model; use another checkpoint")
    stored = ckpt.get("weights_sha256")   # absent only in checkpoints written before the digest existed
    if stored is not None and (not isinstance(stored, str) or stored != weights_digest(ckpt["state_dict"])):
        raise CheckpointError(f"{path}: its weights do not match the digest stored with them: the file was changed "
                              "or damaged after it was written (a flipped bit?); use another checkpoint or retrain")
    _check_face_inputs(path, ckpt["state_dict"])
    return ckpt


def _check_face_inputs(path, state: dict) -> None:
    """A model whose face MLP takes another number of face features than this gazeneg computes (4, the face
    box alone, before the head pose joined them; 7, before the eye landmarks) cannot be used: say so, and how
    to get a new one."""
    for k, v in state.items():
        n = int(v.shape[1]) if k.startswith("face_mlp.") and v.ndim == 2 else FACE_FEATURES  # the Linear's inputs
        n = int(v.shape[-1]) if k in ("mu", "weight") else n                                 # the landmark model
        if n != FACE_FEATURES:
            raise CheckpointError(
                f"{path}: was trained on {n} face features; this gazeneg gives the model {FACE_FEATURES} "
                f"(face box, head pose and eye landmarks). Retrain it on data with them "
                "(gazeneg train, or make demo for the demo model; data captured or rendered before "
                "the pose columns load with zero pose)")


def load_checkpoint(path, map_location="cpu") -> tuple[GazeModel, dict]:
    """(model in eval mode, checkpoint dict)."""
    ckpt = read_checkpoint(path, map_location)
    try:
        model = create_model(ckpt["model_name"], **ckpt["model_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError) as e:   # unknown model, or weights of another shape / architecture
        raise CheckpointError(f"{path}: its weights do not fit a {ckpt['model_name']!r} model "
                              f"({str(e).splitlines()[0][:200]})") from None
    model.eval()
    check_outputs(path, model)
    return model, ckpt


def check_outputs(path, model: GazeModel) -> None:
    """Refuse a model whose prediction for a plain grey strip (zero face features) is not finite or lies
    more than ABSURD_CELLS from the screen's centre: damaged weights, named by file."""
    from gazeneg.data.dataset import IMAGE_H, IMAGE_W
    from gazeneg.model.networks import predict

    try:
        with torch.no_grad():
            p = predict(model, np.full((1, IMAGE_H, IMAGE_W, 3), 128, np.uint8), np.zeros((1, FACE_FEATURES), np.float32))[0]
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: the model cannot run ({str(e).splitlines()[0][:200]})") from None
    centre = np.asarray(grid.CENTRE, np.float64)
    if not np.isfinite(p).all() or float(np.linalg.norm(p - centre)) > ABSURD_CELLS:
        raise CheckpointError(f"{path}: predicts ({p[0]:.3g}, {p[1]:.3g}) cells for a plain grey strip, absurd for "
                              f"the 9x16 screen (more than {ABSURD_CELLS:g} cells from its centre): damaged weights; "
                              "use another checkpoint or retrain")


def init_state(path, model_name: str, model_kwargs: dict) -> dict:
    """The weights of checkpoint `path` for fine-tuning a `model_name` model built with `model_kwargs`
    (head included). Raises CheckpointError naming the file and the first mismatch: another model, other
    hyperparameters, or parameters whose names or shapes differ."""
    ckpt = read_checkpoint(path)
    if ckpt["model_name"] != model_name:
        raise CheckpointError(f"{path}: holds a {ckpt['model_name']!r} model, not {model_name!r} "
                              f"(set --model {ckpt['model_name']} or start from another checkpoint)")
    want = {"head": "regression", **model_kwargs}
    have = {"head": "regression", **ckpt["model_kwargs"]}
    if want != have:
        diff = {k: (have.get(k), want.get(k)) for k in sorted(set(want) | set(have)) if have.get(k) != want.get(k)}
        raise CheckpointError(f"{path}: model hyperparameters differ (checkpoint, requested): {diff}")
    expected = create_model(model_name, **model_kwargs).state_dict()
    state = ckpt["state_dict"]
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: parameter names differ from a {model_name!r} model: missing {missing[:3]}, "
                              f"unexpected {extra[:3]}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: parameter {k} has shape {tuple(state[k].shape)}, the {model_name!r} "
                                  f"model needs {tuple(v.shape)}")
    model = create_model(model_name, **model_kwargs)
    model.load_state_dict(state)
    check_outputs(path, model.eval())
    return state
