"""Model FLOPs of one DCGAN training step per image, counted from the architecture (models/dcgan,
dcgan_step.py), for model FLOPs utilisation (MFU) in launch/gpu_check.sh.

Counted: the multiply-adds of every convolution, transposed convolution and linear layer (1 MAC = 2
FLOPs), forward and backward, exactly as the step runs them (BatchNorm, activations, losses, biases and
Adam are elementwise and left out, as MFU conventionally does):
  G forward on z                                         G_f
  D forward on real and on fake.detach()                 2 D_f
  loss_d backward: 2 D backward passes, weight grads of every layer, input grads of every layer but
                   the first (neither real nor the detached fake requires grad)      2 (2 D_f - D_1)
  D forward on fake (G update)                           D_f
  loss_g backward through D: weight grads (autograd computes them; the next zero_grad drops them)
                   and input grads of every layer        2 D_f
  ... and through G: weight grads of every layer, input grads of every layer but the linear (z)
                                                         2 G_f - G_lin
  total = 3 G_f - G_lin + 9 D_f - 2 D_1
Where the layer's forward has M MACs, its weight gradient and its input gradient have M each.
64x64 (g_width 128, d_width 128, z 100, 3 channels): G_f = 410,583,040 MACs, D_f = 408,961,024,
G_lin = 1,638,400, D_1 = 6,291,456 → 4,898,177,024 MACs = 9.796 GFLOP per image per step
(with the earlier d_width 64: D_f = 103,817,216, D_1 = 3,145,728 → 4.316 GFLOP).

  python3 dcgan_flops.py [RESOLUTION]    prints the count (no torch needed)
  python3 dcgan_flops.py --check          counts the step of dcgan_step.py with torch's FlopCounterMode
                                          (torch >= 2.1, CPU) at 64x64 and 32x32 and compares; exit 1
                                          on a mismatch
"""
import sys


def layer_macs(res=64, channels=3, z_dim=100, g_width=128, d_width=128):
    """MACs per image of each layer's forward: (generator list, discriminator list), input side first."""
    k = 4 if res == 64 else 3
    c0 = g_width << (k - 1)
    g = [z_dim * c0 * 16]  # linear z → 4x4 x c0
    ch, hw = c0, 4
    for i in range(k):
        out = channels if i + 1 == k else ch // 2
        g.append(ch * out * 16 * hw * hw)  # transposed conv 4x4 / 2: each input pixel meets K² x C_out weights
        ch, hw = out, hw * 2
    d, ch, out, hw = [], channels, d_width, res
    for i in range(k):
        hw //= 2
        d.append(out * hw * hw * ch * 16)  # conv 4x4 / 2
        ch, out = out, out * 2
    d.append(ch * 16)  # 4x4 valid conv to one logit
    return g, d


def step_flops_per_image(res=64, **kw):
    g, d = layer_macs(res, **kw)
    g_f, d_f = sum(g), sum(d)
    macs = 3 * g_f - g[0] + 9 * d_f - 2 * d[0]
    return 2 * macs


def check():
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    from dcgan_step import make_step
    ok = True
    for res, batch in ((64, 2), (32, 3)):
        torch.manual_seed(0)
        step = make_step(res, batch)
        step()  # Adam's state exists from the second step on; count a steady step
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        counted, expected = counter.get_total_flops(), batch * step_flops_per_image(res)
        same = counted == expected
        ok &= same
        print(f"dcgan {res}x{res} batch {batch}: FlopCounterMode {counted:,} FLOPs, architecture count "
              f"{expected:,} ({'same' if same else 'DIFFERENT'})")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    res = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    g, d = layer_macs(res)
    print(f"dcgan {res}x{res}: G forward {sum(g):,} MACs {g}, D forward {sum(d):,} MACs {d}; "
          f"step {step_flops_per_image(res):,} FLOPs per image ({step_flops_per_image(res) / 1e9:.3f} GFLOP)")
