"""Pretrained weights, offline first: a local file, a bundled file, the torch hub cache,
then a download. Loading never executes code from a checkpoint."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import TlcvError
from ..io import sha256_file
from .registry import BackboneSpec, WeightsInfo

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def offline() -> bool:
    return os.environ.get("TLCV_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
        "HF_HUB_OFFLINE", ""
    ).lower() in ("1", "true", "yes")


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _unreadable(path: Path, exc: Exception, detail: str | None = None) -> TlcvError:
    first = detail or (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return TlcvError(
        f"cannot read weights from {path}: not a readable checkpoint "
        f"({type(exc).__name__}: {first})",
        hint="tlcv loads only plain tensors (safetensors, or torch files readable with "
        "weights_only=True); re-save the state_dict with torch.save(model.state_dict(), f)",
        path=str(path),
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors or a torch pickle restricted to tensors (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise TlcvError(f"weights file not found: {path}", hint="check the path given to --weights")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if blocked is None:  # not code, just not a checkpoint; never echo torch's advice
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            raise _unreadable(path, exc, detail.group(1) if detail else None) from exc
        raise TlcvError(
            f"{path} holds Python objects, not only tensors (it would call "
            f"{blocked.group(1)} when unpickled); tlcv did not load it and ran none of it",
            hint="use a checkpoint of plain tensors: safetensors, or "
            "torch.save(model.state_dict(), f) from a source you trust",
            path=str(path),
        ) from exc
    except Exception as exc:  # noqa: BLE001 - every failure here means "not a usable checkpoint"
        raise _unreadable(path, exc) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise TlcvError(
            f"{path} does not hold a state dict of tensors",
            path=str(path),
            hint="save weights with torch.save(model.state_dict(), f) or safetensors",
        )
    # Checkpoints saved from DDP / torch.compile wrappers carry a prefix.
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict with a message naming missing and unexpected keys and bad shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if items:
                more = f" (+{len(items) - 6} more)" if len(items) > 6 else ""
                parts.append(f"{label}: {', '.join(items[:6])}{more}")
        raise TlcvError(
            f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(parts),
            hint="pass a checkpoint of the same architecture as --backbone",
            path=source,
        )
    model.load_state_dict(state, strict=True)


def _download(url: str, dest: Path, name: str, flag: str = "--weights") -> None:
    hint = (
        f"no network or the download failed. On a machine with network, download {url}, then "
        f"run `tlcv weights import FILE` here (or pass {flag} FILE)"
    )
    if offline():
        raise TlcvError(
            f"pretrained weights for {name} are not on this machine (offline mode)", hint=hint
        )
    match = _HASH_IN_NAME.search(dest.name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a firewalled network must fail, not hang
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            url, str(dest), hash_prefix=match.group(1) if match else None
        )
    except Exception as exc:  # noqa: BLE001
        raise TlcvError(f"could not download weights for {name}: {exc}", hint=hint) from exc
    finally:
        socket.setdefaulttimeout(previous)


def _local_file(info: WeightsInfo) -> Path | None:
    if info.bundled is not None and (path := info.bundled()) is not None:
        return path
    if info.file_name and (cached := hub_checkpoint_dir() / info.file_name).is_file():
        return cached
    return None


def resolve_weights_file(spec: BackboneSpec) -> tuple[Path, WeightsInfo]:
    """The local file of ``spec``'s pretrained weights (preferred first), else a download."""
    candidates = [w for w in spec.weights if not w.via_timm]
    if not candidates:
        raise TlcvError(
            f"{spec.name} has no known pretrained weights",
            hint="train it from scratch with --weights none, or give --weights FILE",
        )
    for info in candidates:
        if (path := _local_file(info)) is not None:
            return path, info
    preferred = next((w for w in candidates if w.url), None)
    if preferred is None:
        raise TlcvError(
            f"no source of pretrained weights for {spec.name}", hint="use --weights FILE"
        )
    dest = hub_checkpoint_dir() / preferred.file_name
    _download(preferred.url, dest, spec.name)
    return dest, preferred


def weights_info_for_file(spec: BackboneSpec, path: Path) -> WeightsInfo | None:
    """A user's file named like a published checkpoint gets that checkpoint's preprocessing."""
    return next((w for w in spec.weights if w.file_name == Path(path).name), None)


def load_timm_pretrained(model: nn.Module, spec: BackboneSpec) -> str:
    """Let timm fetch its own checkpoint (HF hub cache first); fail fast when offline."""
    from timm.models import load_pretrained

    if offline():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        load_pretrained(model, num_classes=getattr(model, "num_classes", 1000))
    except Exception as exc:  # noqa: BLE001
        raise TlcvError(
            f"could not load pretrained weights for {spec.name}: {str(exc).splitlines()[0][:200]}",
            hint="with network, timm downloads them once into the Hugging Face cache; offline, "
            "pass a checkpoint with --weights FILE",
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
    return f"timm:{model.pretrained_cfg.get('hf_hub_id') or model.pretrained_cfg.get('url')}"


def import_checkpoint(file: str | Path) -> Path:
    """Copy a torchvision checkpoint into the torch hub cache after checking its hash prefix."""
    src = Path(file)
    if not src.is_file():
        raise TlcvError(f"no such file: {src}", hint="give the path of a downloaded .pth file")
    match = _HASH_IN_NAME.search(src.name)
    if not match:
        raise TlcvError(
            f"{src.name} has no hash in its name (expected NAME-<sha256 prefix>.pth)",
            hint="keep the file name torchvision published it under, e.g. "
            "mobilenet_v2-b0353104.pth",
            path=str(src),
        )
    digest = sha256_file(src)
    if not digest.startswith(match.group(1)):
        raise TlcvError(
            f"sha256 of {src.name} is {digest[:16]}..., not {match.group(1)}...: the file is "
            "corrupt or renamed",
            hint="download it again",
            path=str(src),
        )
    read_state_dict(src)  # refuse files that would not load safely
    dest = hub_checkpoint_dir() / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def weights_available_locally(spec: BackboneSpec) -> str | None:
    """Tag of the first pretrained weights found on this machine without network, if any."""
    for info in spec.weights:
        if info.via_timm:
            if _timm_cached(spec):
                return info.tag
        elif _local_file(info) is not None:
            return info.tag
    return None


def _timm_cached(spec: BackboneSpec) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        with torch.device("meta"):
            cfg = spec.build().pretrained_cfg
        hub_id = cfg.get("hf_hub_id")
        return bool(hub_id) and any(
            isinstance(try_to_load_from_cache(hub_id, f), str)
            for f in ("model.safetensors", "pytorch_model.bin")
        )
    except Exception:  # noqa: BLE001 - a probe only
        return False
