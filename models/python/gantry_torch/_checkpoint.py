"""Reading a gantry run: the checkpoint directory, its manifest and resolved configuration, the network
archives (torch::save files, read with torch.jit.load tensor by tensor) and strict loading into modules."""

import configparser
import json
import math
import os
import zlib

import warnings

import torch


class GantryLoadError(RuntimeError):
    """A run, checkpoint or archive that does not fit: the message names the file (and key)."""


def find_checkpoint(path):
    """A checkpoint directory (has manifest.json) as given; a run directory: checkpoints/LATEST, else the
    newest checkpoints/step-N."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(os.path.join(path, "manifest.json")):
        return path
    ckpts = os.path.join(path, "checkpoints")
    if not os.path.isdir(ckpts):
        raise GantryLoadError(f"{path}: neither a checkpoint (manifest.json) nor a run directory (checkpoints/)")
    latest = os.path.join(ckpts, "LATEST")
    if os.path.isfile(latest):
        with open(latest) as f:
            name = f.read().strip()
        if os.path.isfile(os.path.join(ckpts, name, "manifest.json")):
            return os.path.join(ckpts, name)
    steps = sorted(d for d in os.listdir(ckpts) if d.startswith("step-") and "." not in d
                   and os.path.isfile(os.path.join(ckpts, d, "manifest.json")))
    if not steps:
        raise GantryLoadError(f"{ckpts}: no complete checkpoint")
    return os.path.join(ckpts, steps[-1])


def run_dir_of(checkpoint):
    """RUN for RUN/checkpoints/step-N, else None."""
    parent = os.path.dirname(checkpoint)
    return os.path.dirname(parent) if os.path.basename(parent) == "checkpoints" else None


def _typed(value):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value, value)


def parse_config(ini_text):
    """The resolved configuration as {section: {key: value}}, values as int, float, bool or str."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(ini_text)
    return {s: {k: _typed(v) for k, v in parser.items(s)} for s in parser.sections()}


def read_manifest(checkpoint):
    path = os.path.join(checkpoint, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise GantryLoadError(f"{path}: unreadable manifest ({e})") from None
    if manifest.get("format") != "gantry-checkpoint":
        raise GantryLoadError(f"{path}: not a gantry checkpoint manifest")
    return manifest


def verify_file(checkpoint, manifest, name):
    """The file's size and crc32 against the manifest (as gantry does before it resumes)."""
    path = os.path.join(checkpoint, name)
    entry = manifest.get("files", {}).get(name)
    if entry is None:
        raise GantryLoadError(f"{path}: not listed in the checkpoint's manifest")
    with open(path, "rb") as f:
        data = f.read()
    crc = "crc32:%08x" % (zlib.crc32(data) & 0xFFFFFFFF)
    if len(data) != entry["bytes"] or crc != entry["checksum"]:
        raise GantryLoadError(f"{path}: {len(data)} bytes, {crc}; the manifest says {entry['bytes']} bytes, "
                              f"{entry['checksum']} (corrupt or replaced)")


def read_archive(path):
    """Every parameter and buffer of a torch::save(module) archive: {dotted name: tensor} (CPU)."""
    try:
        with warnings.catch_warnings():  # torch 2.x deprecates torch.jit.load; archives stay readable with it
            warnings.simplefilter("ignore", FutureWarning)
            archive = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 (torch raises RuntimeError or its own types)
        raise GantryLoadError(f"{path}: not a readable archive ({str(e).splitlines()[0]})") from None
    tensors = {k: v.detach() for k, v in archive.named_parameters()}
    tensors.update({k: v.detach() for k, v in archive.named_buffers()})
    return tensors


def load_strict(module, tensors, path):
    """Copies `tensors` into `module`: every tensor of the archive used, every parameter and persistent
    buffer filled, shapes equal; GantryLoadError naming the archive and the key otherwise."""
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        def listed(keys, first=6):
            more = f" and {len(keys) - first} more" if len(keys) > first else ""
            return ", ".join(keys[:first]) + more

        parts = []
        if missing:
            parts.append("missing " + listed(missing))
        if unexpected:
            parts.append("unexpected " + listed(unexpected))
        raise GantryLoadError(f"{path}: does not fit {type(module).__name__} built from the configuration "
                              f"({'; '.join(parts)})")
    with torch.no_grad():
        for key, target in expected.items():
            source = tensors[key]
            if tuple(source.shape) != tuple(target.shape):
                raise GantryLoadError(f"{path}: '{key}' has shape {tuple(source.shape)}, "
                                      f"{type(module).__name__} built from the configuration has "
                                      f"{tuple(target.shape)}")
            if source.dtype != target.dtype:
                raise GantryLoadError(f"{path}: '{key}' is {source.dtype}, expected {target.dtype}")
            target.copy_(source)
    return module


def dataset_shape(config, checkpoint, manifest=None, stream="train", key="path"):
    """(C, H, W) of the training images: as the checkpoint's manifest records them ("data_shapes", since
    stop 15), else from the manifest of the run's dataset data.<key> when it can be found (absolute, or
    relative to the working directory, the run directory's parent or its grandparent), else None."""
    recorded = (manifest or {}).get("data_shapes", {}).get(stream)
    if recorded:
        return (int(recorded["channels"]), int(recorded["height"]), int(recorded["width"]))
    rel = config.get("data", {}).get(key)
    if not rel:
        return None
    rel = str(rel)
    candidates = [rel] if os.path.isabs(rel) else [os.path.join(os.getcwd(), rel)]
    run = run_dir_of(checkpoint)
    if run and not os.path.isabs(rel):
        parent = os.path.dirname(run)
        candidates += [os.path.join(parent, rel), os.path.join(os.path.dirname(parent), rel)]
    for c in candidates:
        try:
            with open(os.path.join(c, "manifest.json")) as f:
                h, w, ch = json.load(f)["shape"]
            return (int(ch), int(h), int(w))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def flat_shape(d, hint, what):
    """(C, H, W) of a flattened image of d values: the dataset's shape when it has d values, else a square
    gray (1, s, s) or colour (3, s, s) image."""
    if hint is not None and hint[0] * hint[1] * hint[2] == d:
        return tuple(hint)
    for c in (1, 3):
        s = math.isqrt(d // c)
        if d % c == 0 and s * s * c == d:
            return (c, s, s)
    raise GantryLoadError(f"{what}: {d} inputs are not a square image; pass shape=(C, H, W) to load()")
