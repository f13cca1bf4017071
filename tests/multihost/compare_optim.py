#!/usr/bin/env python3
"""compare_optim.py CKPT_A CKPT_B — are two checkpoints' optimizer states equal, tensor for tensor?

LibTorch's optimizer archives key each parameter's state by the address of its tensor, which differs
from process to process, so two runs that took exactly the same steps write different bytes. This loads
each *.optim.pt of the manifest with torch.jit.load, orders the states by the parameter list of each
param group (the order of the network's parameters), and compares every state tensor exactly (step,
exp_avg, exp_avg_sq for Adam). Prints one summary line; exit 1 on a difference, 2 on a malformed archive.
"""
import json
import sys

import torch


def ordered_states(path):
    """[(param_group, index, {name: tensor})] in the order of the param groups' parameter lists."""
    archive = torch.jit.load(path, map_location="cpu")
    groups = archive._c.getattr("param_groups")
    state = archive._c.getattr("state")
    out = []
    for g in range(int(groups.getattr("param_groups/size"))):
        group = groups.getattr(f"param_groups/{g}")
        for i in range(int(group.getattr("params/size"))):
            key = group.getattr(f"params/{i}")
            tensors = {}
            if state.hasattr(key):
                s = state.getattr(key)
                for name in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "sum", "momentum_buffer"):
                    if s.hasattr(name):
                        v = s.getattr(name)
                        tensors[name] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            out.append((g, i, tensors))
    return out


def main():
    a_dir, b_dir = sys.argv[1], sys.argv[2]
    files = sorted(n for n in json.load(open(f"{a_dir}/manifest.json"))["files"] if n.endswith(".optim.pt"))
    if not files:
        print("no optimizer archives in", a_dir)
        return 2
    compared, differences, steps = 0, [], set()
    for name in files:
        a, b = ordered_states(f"{a_dir}/{name}"), ordered_states(f"{b_dir}/{name}")
        if len(a) != len(b):
            differences.append(f"{name}: {len(a)} vs {len(b)} parameters")
            continue
        for (g, i, ta), (_, _, tb) in zip(a, b):
            if ta.keys() != tb.keys():
                differences.append(f"{name} group {g} param {i}: state {sorted(ta)} vs {sorted(tb)}")
                continue
            for k in ta:
                compared += 1
                if k == "step":
                    steps.add(int(ta[k].item()))
                if ta[k].shape != tb[k].shape or not torch.equal(ta[k], tb[k]):
                    diff = (ta[k] - tb[k]).abs().max().item() if ta[k].shape == tb[k].shape else "shape"
                    differences.append(f"{name} group {g} param {i} {k}: max |diff| {diff}")
    if compared == 0:
        print("no state tensors found in", ", ".join(files))
        return 2
    summary = f"{', '.join(files)}: {compared} state tensors, step {sorted(steps)}"
    if differences:
        print(f"{summary}; {len(differences)} differ: " + "; ".join(differences[:5]))
        return 1
    print(f"{summary}, all equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
