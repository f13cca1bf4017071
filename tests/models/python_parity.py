"""The Python side of tests/models/python_parity_test.cpp.

    python_parity.py compare|perturb|refusals DIR CASE...

DIR/CASE/ is a gantry run and DIR/CASE.pt (torch::pickle_save of a dict) holds the inputs the C++ networks
were given ("in.*") and their outputs ("<network>.<what>"). For every run, gantry_torch.load rebuilds the
networks from the checkpoint, runs them on the same inputs and compares every output:

    max |python - c++| <= 1e-5 * max(1, max |c++|)

(1e-5 absolute for outputs within [-1, 1], relative to the largest value otherwise). "<net>.batch" outputs
are BatchNorm networks run with the batch's statistics (gantry's training mode; how it samples GANs).
compare:  exit 0 when every output agrees, 1 naming each one that does not.
perturb:  the same after adding 1e-3 to one parameter of each run's first network (its output layer's
          bias, or its first parameter where it has no bias): exit 0 when every run
          then has an output that disagrees (the comparison can fail), 1 naming a run that has none.
refusals: checkpoints that do not fit raise GantryLoadError naming the archive (and key); exit 0 if so.
"""

import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "python"))
import gantry_torch  # noqa: E402
from gantry_torch import GantryLoadError, batch_statistics  # noqa: E402

TOLERANCE = 1e-5


def both_modes(net, x, name):
    out = {name + ".eval": net(x)}
    with batch_statistics(net):
        out[name + ".batch"] = net(x)
    return out


def python_outputs(run, inputs):
    """The outputs the C++ side computed, from the Python networks."""
    r = run.recipe
    if r == "vae":
        recon, mu, logvar = run.vae(inputs["in.x"], inputs["in.eps"])
        decoded = run.vae.decode(inputs["in.z"])
        return {"vae.recon": recon, "vae.mu": mu, "vae.logvar": logvar, "vae.decode": decoded,
                "vae.mean_image": run.vae.mean_image(decoded)}
    if r in ("dcgan", "fgan"):
        critic = "discriminator" if r == "dcgan" else "variational"
        out = both_modes(run.generator, inputs["in.z"], "generator")
        out.update(both_modes(run.networks[critic], inputs["in.x"], critic))
        if "generator_ema" in run.networks:
            out.update(both_modes(run.generator_ema, inputs["in.z"], "generator_ema"))
        return out
    if r == "pixelcnn":
        return {"pixelcnn.logits": run.pixelcnn(inputs["in.x"]), "pixelcnn.sample": run.sample(2, seed=11)}
    if r == "cyclegan":
        a, b = inputs["in.a"], inputs["in.b"]
        return {"generator_a2b.eval": run.a2b(a), "generator_b2a.eval": run.b2a(b),
                "discriminator_a.eval": run.discriminator_a(a), "discriminator_b.eval": run.discriminator_b(b)}
    if r == "classifier":
        x = inputs["in.x"]
        return {"classifier.features": run.features(x), "classifier.logits": run.classifier(x)}
    raise ValueError(f"no comparison for recipe {r}")


def compare(directory, names, perturb=False):
    """{run: number of outputs that disagree}."""
    failures = {}
    print(f"torch {torch.__version__}; tolerance: max |python - c++| <= {TOLERANCE:g} * max(1, max |c++|)")
    for name in names:
        run = gantry_torch.load(os.path.join(directory, name))
        if perturb:  # the output layer's bias of the run's first network (else its first parameter)
            params = list(next(iter(run.networks.values())).named_parameters())
            biases = [p for k, p in params if k.endswith("bias")]
            with torch.no_grad():
                (biases[-1] if biases else params[0][1]).view(-1)[0] += 1e-3
        # torch::pickle_save of a typed dict: torch 2.6+'s weights_only loader refuses its type tags; the
        # file is this test's own.
        saved = torch.load(os.path.join(directory, name + ".pt"), weights_only=False)
        inputs = {k: v for k, v in saved.items() if k.startswith("in.")}
        with torch.no_grad():
            ours = python_outputs(run, inputs)
        failures[name] = 0
        for key in sorted(k for k in saved if not k.startswith("in.")):
            ref = saved[key]
            if key not in ours:
                print(f"FAIL {name} {key}: not computed in Python")
                failures[name] += 1
                continue
            got = ours[key]
            if got.shape != ref.shape:
                print(f"FAIL {name} {key}: shape {tuple(got.shape)}, C++ {tuple(ref.shape)}")
                failures[name] += 1
                continue
            diff = (got.double() - ref.double()).abs().max().item()
            scale = max(1.0, ref.double().abs().max().item())
            ok = diff <= TOLERANCE * scale
            failures[name] += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:18s} {key:22s} {tuple(ref.shape)!s:22s} max diff {diff:.2e} "
                  f"(scale {scale:.3g})")
    return failures


def expect_refusal(what, fn, *needles):
    try:
        fn()
    except GantryLoadError as e:
        missing = [n for n in needles if n not in str(e)]
        if missing:
            print(f"FAIL {what}: message lacks {missing}: {e}")
            return 1
        print(f"ok   {what}: {e}")
        return 0
    print(f"FAIL {what}: loaded without an error")
    return 1


def refusals(directory, names):
    """A generator built wider than the archive, networks for another resolution, a missing archive, a
    corrupt one: each refused with the archive (and the key) named."""
    from gantry_torch import dcgan
    from gantry_torch._checkpoint import find_checkpoint, load_strict, read_archive

    assert "dcgan" in names, "refusals need the dcgan run"
    ckpt = find_checkpoint(os.path.join(directory, "dcgan"))
    archive = os.path.join(ckpt, "generator.pt")
    tensors = read_archive(archive)
    failures = expect_refusal("wider generator", lambda: load_strict(dcgan.Generator(32, 3, 16, 16), tensors, archive),
                              "generator.pt", "'project.weight' has shape")
    failures += expect_refusal("64x64 generator", lambda: load_strict(dcgan.Generator(64, 3, 16, 8), tensors, archive),
                               "generator.pt", "missing body.7.weight")
    failures += expect_refusal("discriminator archive as a generator",
                               lambda: load_strict(dcgan.Generator(32, 3, 16, 8),
                                                   read_archive(os.path.join(ckpt, "discriminator.pt")), archive),
                               "generator.pt", "unexpected body.0.bias")
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "step")
        shutil.copytree(ckpt, copy)
        os.remove(os.path.join(copy, "discriminator.pt"))
        failures += expect_refusal("missing archive", lambda: gantry_torch.load(copy), "discriminator.pt: missing")
        shutil.copy(os.path.join(ckpt, "discriminator.pt"), copy)
        with open(os.path.join(copy, "generator.pt"), "r+b") as f:
            f.seek(-100, os.SEEK_END)
            byte = f.read(1)
            f.seek(-100, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))
        failures += expect_refusal("corrupt archive", lambda: gantry_torch.load(copy), "generator.pt", "corrupt")
    return failures


def main():
    mode, directory, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == "refusals":
        return 1 if refusals(directory, names) else 0
    failures = compare(directory, names, perturb=mode == "perturb")
    if mode == "perturb":
        uncaught = [name for name, n in failures.items() if n == 0]
        print(f"perturbation not caught in {', '.join(uncaught)}" if uncaught else "every perturbation caught")
        return 1 if uncaught else 0
    total = sum(failures.values())
    print(f"{total} output(s) disagree" if total else "every output agrees")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
