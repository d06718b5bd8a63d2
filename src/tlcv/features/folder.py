"""Features of every image under a folder, through the cache (`tlcv extract`): a fully
cached re-run is answered from the memo without importing torch (features.memo)."""

from __future__ import annotations

from pathlib import Path

from ..errors import TlcvError


def extract_folder(
    data: str | Path,
    backbone: str,
    *,
    weights: str,
    image_size: int | None,
    cache: str | Path | None,
    batch_size: int,
    num_workers: int | None,
    device: str,
    strict: bool,
    progress: bool,
    engine: str,
):
    """See tlcv.api.extract."""
    from ..deploy.engine import check_engine
    from .memo import cached_features, memo_key, remember

    check_engine(engine)
    if engine == "onnxruntime-int8":
        raise TlcvError(
            "extract runs a bare backbone: int8 graphs exist for exported runs only",
            hint="use --engine onnxruntime (fp32) here",
        )
    hit = cached_features(
        data,
        backbone,
        weights=weights,
        image_size=image_size,
        cache_dir=cache,
        device=device,
        strict=strict,
        engine=engine,
    )
    if hit is not None:
        return hit
    from ..backbones import create_backbone
    from ..data import discover
    from . import cache_for, extract_features, resolve_device

    source = discover(data, strict=strict)
    net = create_backbone(backbone, weights, image_size)
    encoder = net
    if engine == "onnxruntime":
        from ..deploy import backbone_encoder

        encoder = backbone_encoder(net, cache)
    fs = extract_features(
        source.all_items(),
        encoder,
        cache_dir=cache,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        strict=strict,
        progress=progress,
    )
    remember(
        memo_key(backbone, weights, image_size, device, engine),
        cache_for(encoder, cache, resolve_device(device)),
        net.feature_dim,
        net.weights_source,
        cache,
    )
    return fs
