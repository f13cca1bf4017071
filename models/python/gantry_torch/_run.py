"""What load() returns: a trained run's configuration and networks; each recipe's module subclasses Run
with the helpers that recipe's networks need (sampling, translating, features)."""

import os

import torch

from ._checkpoint import GantryLoadError, load_strict, read_archive, verify_file


class Archives:
    """The network archives of one checkpoint: `<name>.pt`, verified against the manifest when read."""

    def __init__(self, checkpoint, manifest, verify=True):
        self.checkpoint, self.manifest, self.verify = checkpoint, manifest, verify
        self._cache = {}

    def path(self, name):
        return os.path.join(self.checkpoint, name + ".pt")

    def has(self, name):
        return os.path.isfile(self.path(name))

    def tensors(self, name):
        if name not in self._cache:
            if not self.has(name):
                raise GantryLoadError(f"{self.path(name)}: missing (the {self.manifest.get('recipe')} recipe "
                                      f"checkpoints a network '{name}')")
            if self.verify:
                verify_file(self.checkpoint, self.manifest, name + ".pt")
            self._cache[name] = read_archive(self.path(name))
        return self._cache[name]

    def load(self, module, name):
        """`module` with the archive's weights, in eval mode, gradients off."""
        load_strict(module, self.tensors(name), self.path(name))
        for p in module.parameters():
            p.requires_grad_(False)
        return module.eval()


def conv_layers(tensors, prefix):
    """Indices of the 4-D weights `<prefix>.<i>.weight` of a Sequential, in order."""
    out = []
    for key, t in tensors.items():
        head, _, rest = key.partition(prefix + ".")
        if head == "" and rest.endswith(".weight") and rest[:-7].isdigit() and t.dim() == 4:
            out.append(int(rest[:-7]))
    return sorted(out)


class Run:
    """A checkpoint's resolved configuration and its recipe's networks (torch.nn.Modules, eval mode, on the
    CPU until .to(device)). Networks are also attributes: run.generator, run.vae, ..."""

    recipe = None

    def __init__(self, checkpoint, manifest, config, networks, shape):
        self.checkpoint = checkpoint  # the checkpoint directory read
        self.manifest = manifest  # its manifest.json
        self.config = config  # {section: {key: value}}: the run's resolved configuration
        self.networks = networks  # {checkpoint name: module}
        self.shape = shape  # (C, H, W) of the training images, or None where no network fixes it
        self.step = manifest["step"]
        self.device = torch.device("cpu")

    def __getattr__(self, name):
        networks = self.__dict__.get("networks", {})
        if name in networks:
            return networks[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or network '{name}'")

    def option(self, key):
        """A configuration value by its gantry name, e.g. run.option("dcgan.z_dim")."""
        section, _, name = key.partition(".")
        try:
            return self.config[section][name]
        except KeyError:
            raise KeyError(f"{key}: not in the run's configuration") from None

    def to(self, device):
        self.device = torch.device(device)
        for net in self.networks.values():
            net.to(self.device)
        return self

    @staticmethod
    def _rng(seed):
        """A CPU torch.Generator seeded with `seed` (random draws are made on the CPU, then moved)."""
        return torch.Generator().manual_seed(int(seed))

    def __repr__(self):
        nets = ", ".join(f"{k}: {sum(p.numel() for p in v.parameters())} params" for k, v in self.networks.items())
        return f"<gantry {self.recipe} run, step {self.step}, {self.checkpoint}; {nets}>"
