#!/usr/bin/env python3
"""Scaling model of DCGAN (LSUN 64x64) data-parallel training: ring all-reduce alpha-beta + gantry's control plane.

Per training step (D step then G step; each reduces its own network's gradients in GradSync buckets,
dist.first_bucket_mb = 1, dist.bucket_mb = 25, filled in reverse registration order as GradSync does):

  T_step(W) = T_compute + sum over buckets b of exposed( T_ctrl(W) + T_ring(n_b, W) )
  T_ring(n, W) = 2(W-1) alpha + 2(W-1)/W * n / beta          (NCCL's ring; bus bandwidth factor 2(W-1)/W)
  weak scaling (fixed batch per GPU):        E(W) = T_step(1) / T_step(W)
  strong scaling (paper's global batch 128): E(W) = T_step(1, 128) / (W * T_step(W, 128/W))

"exposed": without overlap every bucket's time adds to the step; with overlap (GPU runs) a bucket
starts when its gradients are ready during backward and the buckets run one after another on one
stream; only what finishes after that network's backward ends is exposed (see overlap_exposed()).
The per-step stop agreement is assumed non-blocking (Communicator::any_async on branch ctrl, started
at the end of step k and completed at the end of step k+1) and so adds nothing; its blocking form
(ctrl's trainer still calls comm.any() each step) would add one T_ctrl(W) a step: printed separately.

  python3 experiments/benchmarks/scaling_model.py                 # the tables in RESULTS.md
  python3 experiments/benchmarks/scaling_model.py --check LOG     # the check against scaling_check.sh's LOG
  options: --alpha-us, --beta-gbs, --gpu-peak-tflops, --gpu-eff, --gpu-fixed-ms (see --help)
Only python3's standard library (numpy is not installed on the dev VM; the two line fits are done by hand).
"""
import argparse
import math
import re
import statistics
import sys


MiB = 1 << 20
F32 = 4  # gradient bytes per parameter: gantry reduces float32 gradients (2: bf16, a what-if below)

# ---------------------------------------------------------------- measured inputs (this VM, 2 cores)
# DCGAN 64x64 step, 1 thread, batch 16, the networks of the time (g_width 128, d_width 64, before issue 11): RESULTS.md,
# "DCGAN 64x64 training step, C++ vs Python" (dcgan_cpp_vs_python.sh), C++ median of five runs.
CPU_STEP_MS_B16 = 1051.5
# Control plane of branch ctrl (one 24-byte MPI_Iallreduce before every MPI collective): extra cost per
# collective over a bare 8-byte all-reduce, control_plane_bench (ctrl @ 9b138a1) 'new' at W = 2..32 on
# this VM, medians of scaling_check.sh's 3 runs, 2026-11-30 14:32 (load 1 → 21 during them; branch
# ctrl's RESULTS.md, issue 5, has the same shape at higher load). Above W = 2 the ranks share 2 cores,
# so the growth is time-slicing and poll intervals: the log2 fit is an upper bound.
CTRL_US_MEASURED = {2: 2.8, 4: 16.1, 8: 295.4, 16: 940.4, 32: 1750.4}
# One recursive-doubling round with a core per rank: the W = 2 cost. The cluster model charges log2(W).
CTRL_W2_US = CTRL_US_MEASURED[2]
# Messages each rank sends per control-plane collective (control_plane_count.sh): log2(W) at W = 2..32.

# ---------------------------------------------------------------- networks (as models/dcgan/dcgan_model.cpp)


def generator(z=100, g_width=128, res=64, ch=3):
    """Tensors in registration order: (name, params, layer, fwd MACs/image of that layer, 1 if input grad needed)."""
    k = 4 if res == 64 else 3
    c0 = g_width << (k - 1)
    t = [("project.w", z * c0 * 16, "project", z * c0 * 16, 0),  # Linear, no bias; input z needs no grad
         ("project_bn.w", c0, "project_bn", 0, 1), ("project_bn.b", c0, "project_bn", 0, 1)]
    c, hw = c0, 4
    for i in range(k):
        last = i + 1 == k
        out = ch if last else c // 2
        macs = c * out * 16 * hw * hw  # ConvTranspose 4x4 stride 2: every input pixel scatters a 4x4 patch
        t.append((f"convT{i}.w", c * out * 16, f"convT{i}", macs, 1))
        if last:
            t.append((f"convT{i}.b", out, f"convT{i}", 0, 1))
        else:
            t += [(f"bn{i}.w", out, f"bn{i}", 0, 1), (f"bn{i}.b", out, f"bn{i}", 0, 1)]
        c, hw = out, hw * 2
    return t


def discriminator(d_width=64, res=64, ch=3):
    k = 4 if res == 64 else 3
    t, c, out, hw = [], ch, d_width, res
    for i in range(k):
        hw //= 2
        t.append((f"conv{i}.w", c * out * 16, f"conv{i}", c * out * 16 * hw * hw, 0 if i == 0 else 1))
        if i == 0:
            t.append((f"conv{i}.b", out, f"conv{i}", 0, 0))
        else:
            t += [(f"bn{i}.w", out, f"bn{i}", 0, 1), (f"bn{i}.b", out, f"bn{i}", 0, 1)]
        c, out = out, out * 2
    t += [("final.w", c * 16, "final", c * 16, 1), ("final.b", 1, "final", 0, 1)]  # 4x4 valid conv → 1 logit
    return t


def params(t):
    return sum(x[1] for x in t)


def fwd_macs(t):
    return sum(x[3] for x in t)


CAPS = (1 * MiB, 25 * MiB)  # dist.first_bucket_mb, dist.bucket_mb


def buckets(t, first=None, cap=None):
    """GradSync's buckets: tensors in reverse registration order, the first bucket capped at `first`."""
    first, cap = first or CAPS[0], cap or CAPS[1]
    out = []  # list of [bytes, [tensor indices]]
    for i in reversed(range(len(t))):
        b = t[i][1] * F32
        limit = first if len(out) == 1 else cap
        if out and out[-1][0] + b <= limit:
            out[-1][0] += b
            out[-1][1].append(i)
        else:
            out.append([b, [i]])
    return out


def step_macs(g, d):
    """MACs per image of one DCGAN step (gantry's recipe). Backward = input grad + weight grad = 2x forward,
    minus the input grad of a first layer whose input needs none.
      D step: G fwd; D fwd real + fake (detached); D bwd on both (no input grad at D's first layer).
      G step: D fwd on the fake (graph kept from the D step's G fwd); D bwd (weight grads too: D's
      parameters require grad) with input grad; G bwd (no input grad at the projection)."""
    gf, df = fwd_macs(g), fwd_macs(d)
    d_first = d[0][3]
    g_first = g[0][3]
    d_bwd_noin = 2 * df - d_first  # D backward without the input gradient of conv0
    g_bwd = 2 * gf - g_first
    d_step = gf + 2 * df + 2 * d_bwd_noin
    g_step = df + 2 * df + g_bwd
    return d_step + g_step, {"D": 2 * d_bwd_noin, "G_throughD": 2 * df, "G": g_bwd, "total": d_step + g_step}


# ---------------------------------------------------------------- communication


def t_ring(n, W, alpha, beta):
    """Ring all-reduce of n bytes over W ranks: 2(W-1) latency steps, 2(W-1)/W n bytes through each link."""
    if W <= 1:
        return 0.0
    return 2 * (W - 1) * alpha + 2 * (W - 1) / W * n / beta


def linfit(x, y, w=None):
    """Weighted least-squares line y = a + b x: returns (a, b)."""
    w = w or [1.0] * len(x)
    sw = sum(wi * wi for wi in w)
    mx = sum(wi * wi * xi for wi, xi in zip(w, x)) / sw
    my = sum(wi * wi * yi for wi, yi in zip(w, y)) / sw
    sxx = sum(wi * wi * (xi - mx) ** 2 for wi, xi in zip(w, x))
    sxy = sum(wi * wi * (xi - mx) * (yi - my) for wi, xi, yi in zip(w, x, y))
    b = sxy / sxx
    return my - b * mx, b


def fit_log2(ctrl_us):
    """Least-squares a log2(W) + b through the measured control-plane costs (seconds)."""
    ws = sorted(ctrl_us)
    x = [math.log2(w) for w in ws]
    y = [ctrl_us[w] * 1e-6 for w in ws]
    if len(ws) == 1:
        return y[0] / x[0], 0.0
    b, a = linfit(x, y)
    return a, b


def overlap_exposed(net, bucket_list, bwd_layer_time, bwd_order, t_bucket):
    """Exposed communication of one network's reduction when buckets start as soon as ready.

    Assumptions (explicit): backward visits the network's layers in reverse order, each taking its
    share of the backward time in proportion to its backward MACs (BatchNorm: 0); a tensor's gradient
    is ready when its layer's backward ends; buckets are launched in order and reduced one at a time on
    one communication stream, at full speed while compute runs (NCCL's SM use and memory-bandwidth
    contention ignored); ranks run in lock-step (no stragglers). Then what hides is bounded by the
    backward time after the first bucket is ready; the last bucket (the first layers' gradients) never
    hides, it is ready only when backward ends.
    """
    ready_at = {}
    t = 0.0
    for layer in bwd_order:
        t += bwd_layer_time[layer]
        ready_at[layer] = t
    bwd_end = t
    free = 0.0
    for nbytes, idx in bucket_list:
        ready = max(ready_at[net[i][2]] for i in idx)
        start = max(ready, free)
        free = start + t_bucket(nbytes)
    return max(0.0, free - bwd_end)


class Model:
    def __init__(self, g, d, alpha, beta, ctrl):
        self.g, self.d, self.alpha, self.beta, self.ctrl = g, d, alpha, beta, ctrl
        self.bg, self.bd = buckets(g), buckets(d)

    def comm(self, W):
        """(ring seconds, control-plane seconds) per step without overlap."""
        ring = sum(t_ring(b[0], W, self.alpha, self.beta) for b in self.bd + self.bg)
        ctrl = (len(self.bd) + len(self.bg)) * self.ctrl(W) if W > 1 else 0.0
        return ring, ctrl

    def exposed_with_overlap(self, W, t_macs):
        """Exposed comm seconds per step with overlap; t_macs(m) = seconds for m MACs (whole local batch)."""
        if W <= 1:
            return 0.0
        tb = lambda n: self.ctrl(W) + t_ring(n, W, self.alpha, self.beta)
        out = 0.0
        for net, bl in ((self.d, self.bd), (self.g, self.bg)):
            layers = []
            for x in net:
                if x[2] not in layers:
                    layers.append(x[2])
            macs = {}
            for x in net:
                macs[x[2]] = macs.get(x[2], 0) + x[3] * (1 + x[4])  # weight grad + input grad (if needed)
            # D step: D's backward runs over real + fake (2 images per local image)
            scale = 2 if net is self.d else 1
            bwd = {l: t_macs(scale * macs[l]) for l in layers}
            out += overlap_exposed(net, bl, bwd, list(reversed(layers)), tb)
        return out


def ms(x):
    return f"{1e3 * x:.2f}"


def main():
    global F32, CAPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpha-us", type=float, default=5.0, help="ring latency per step (us)")
    ap.add_argument("--beta-gbs", type=float, default=12.5, help="link bandwidth, GB/s (100 Gb/s = 12.5)")
    ap.add_argument("--gpu-peak-tflops", type=float, default=989.0, help="H100 SXM dense bf16 peak")
    ap.add_argument("--gpu-eff", type=float, default=0.30, help="achieved fraction of the peak (assumed)")
    ap.add_argument("--gpu-fixed-ms", type=float, default=1.0,
                    help="per-step time that does not scale with the batch (kernel launches, optimizer): assumed")
    ap.add_argument("--d-width", type=int, default=128, help="discriminator width for the GPU prediction "
                    "(128: the authors' code, issue 11; 64: today's experiments/dcgan_lsun_bedroom.ini)")
    ap.add_argument("--check", metavar="LOG", help="scaling_check.sh output: print the check table")
    args = ap.parse_args()
    alpha, beta = args.alpha_us * 1e-6, args.beta_gbs * 1e9

    # --- inputs: the networks
    G = generator(100, 128, 64, 3)
    D64, D128 = discriminator(64, 64, 3), discriminator(128, 64, 3)
    assert abs(params(D64) - 2.77e6) < 0.005e6, params(D64)  # RESULTS.md, grad_sync_bench: 2.77 M
    print("## Networks (64x64x3, parameters, float32 gradient MiB, forward MACs/image, GradSync buckets MiB)")
    for name, t in (("G (g_width 128: 4x4x1024)", G), ("D before issue 11 (d_width 64: 64..512)", D64),
                    ("D since issue 11 (d_width 128: 128..1024)", D128)):
        bl = buckets(t)
        print(f"{name:38s} {params(t):>11,d} {params(t) * F32 / MiB:7.2f} MiB {fwd_macs(t) / 1e6:7.1f} M MACs"
              f"  buckets {[round(b[0] / MiB, 2) for b in bl]}")
    for dn, D in (("before issue 11", D64), ("since issue 11", D128)):
        m, _ = step_macs(G, D)
        print(f"step FLOPs per image, D {dn}: {2 * m / 1e9:.2f} GFLOP (2 x MACs; convolutions and the projection only)")

    # --- control plane: measured fit and the per-message cluster model
    a, b = fit_log2(CTRL_US_MEASURED)
    ctrl_fit = lambda W: max(0.0, a * math.log2(W) + b)
    c1 = CTRL_W2_US * 1e-6  # one recursive-doubling round, measured with a core per rank
    ctrl_cluster = lambda W: c1 * math.log2(W)
    print(f"\n## Control plane per collective: measured {CTRL_US_MEASURED} us;"
          f" fit a log2(W) + b: a = {a * 1e6:.1f} us, b = {b * 1e6:.1f} us"
          f" -> W=64 {ctrl_fit(64) * 1e6:.0f} us, W=512 {ctrl_fit(512) * 1e6:.0f} us (oversubscribed: upper bound);"
          f" cluster model log2(W) x {c1 * 1e6:.1f} us -> W=64 {ctrl_cluster(64) * 1e6:.0f} us,"
          f" W=512 {ctrl_cluster(512) * 1e6:.0f} us")

    # --- GPU compute
    rate = args.gpu_peak_tflops * 1e12 * args.gpu_eff / 2  # MACs/s
    D = D128 if args.d_width == 128 else D64
    macs_img, _ = step_macs(G, D)
    gpu_compute = lambda bsz: args.gpu_fixed_ms * 1e-3 + bsz * macs_img / rate
    _, parts = step_macs(G, D)
    print(f"\nbackward that reductions can hide behind, batch 128: D {ms(128 * parts['D'] / rate)} ms,"
          f" G {ms(128 * parts['G'] / rate)} ms (G's backward through D produces no G gradient)")
    for W in (64, 512):
        m = Model(G, D, alpha, beta, ctrl_cluster)
        lat = 2 * (W - 1) * alpha * (len(m.bd) + len(m.bg))
        print(f"W={W}: ring latency term {ms(lat)} ms ({len(m.bd) + len(m.bg)} buckets), bandwidth term"
              f" {ms(m.comm(W)[0] - lat)} ms")
    print(f"GPU compute: {args.gpu_eff:.0%} of {args.gpu_peak_tflops:.0f} TFLOP/s + {args.gpu_fixed_ms} ms fixed:"
          f" batch 128 {ms(gpu_compute(128))} ms, batch 2 {ms(gpu_compute(2))} ms, batch 1 {ms(gpu_compute(1))} ms")

    def predict(model, W, bsz, compute, overlap, bsz1=128):
        """(efficiency, compute s, ring s, ctrl s, exposed s) for W ranks at `bsz` images per rank.
        Efficiency = images/s per GPU relative to one GPU at batch bsz1: (bsz / T(W)) / (bsz1 / T(1)):
        T(1)/T(W) for weak scaling; T(1, 128) / (W T(W, 128/W)) for the paper's global batch."""
        tc = compute(bsz)
        ring, ctrl = model.comm(W)
        if overlap:
            t_macs = lambda m: bsz * m / rate
            exposed = model.exposed_with_overlap(W, t_macs)
        else:
            exposed = ring + ctrl
        eff = (bsz / (tc + exposed)) / (bsz1 / compute(bsz1))
        return eff, tc, ring, ctrl, exposed

    print(f"\n## Prediction, DCGAN LSUN 64x64, D {'issue 11 (128..1024)' if args.d_width == 128 else 'today (64..512)'},"
          f" beta {args.beta_gbs} GB/s, control plane = cluster model (fit as measured here in brackets)")
    print("| W | batch | per GPU | compute ms | ring ms | ctrl ms | exposed with overlap ms | E no overlap, alpha 2/5/20 us | E overlap, alpha 2/5/20 us | E overlap, ctrl as fitted here | speedup vs 1 GPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [(64, "weak", 128), (512, "weak", 128), (64, "paper's global 128", 2),
            (512, "global 512 (128 < 512 GPUs)", 1)]
    pct = lambda e: f"{e:.0%}" if e >= 0.095 else f"{e:.1%}"
    for W, kind, bsz in rows:
        effs = {}
        for ov in (False, True):
            for al in (2, 5, 20):
                m = Model(G, D, al * 1e-6, beta, ctrl_cluster)
                effs[(ov, al)] = predict(m, W, bsz, gpu_compute, ov)
        mfit = Model(G, D, alpha, beta, ctrl_fit)
        efit = predict(mfit, W, bsz, gpu_compute, True)[0]
        _, tc, ring, ctrl, exp5 = effs[(True, 5)]
        f = lambda ov: " / ".join(pct(effs[(ov, al)][0]) for al in (2, 5, 20))
        print(f"| {W} | {kind} | {bsz} | {ms(tc)} | {ms(ring)} | {ms(ctrl)} | {ms(exp5)} | {f(False)} | {f(True)} |"
              f" {pct(efit)} | {W * effs[(True, 5)][0]:.1f} |")

    # What would change the conclusion: one input at a time, weak scaling (128/GPU), overlap, alpha 5 us
    print("\n## What-if (weak scaling, 128/GPU, overlap, alpha 5 us unless changed): efficiency at W = 64 / 512")
    base = dict(alpha=alpha, beta=beta, eff=args.gpu_eff, grad=4, caps=CAPS)
    cases = [("as above", {}), ("GPU at 10% of peak (slower compute)", {"eff": 0.10}),
             ("GPU at 60% of peak", {"eff": 0.60}), ("400 Gb/s per GPU (beta 50 GB/s)", {"beta": 50e9}),
             ("bf16 gradients (half the bytes)", {"grad": 2}), ("alpha 20 us (NCCL Simple, multi-node)", {"alpha": 20e-6}),
             ("400 Gb/s + bf16 gradients", {"beta": 50e9, "grad": 2}),
             ("one bucket per network (bucket_mb 1000)", {"caps": (1000 * MiB, 1000 * MiB)})]
    for name, change in cases:
        c = dict(base, **change)
        F32, CAPS = c["grad"], c["caps"]
        rate_c = args.gpu_peak_tflops * 1e12 * c["eff"] / 2
        comp = lambda bsz: args.gpu_fixed_ms * 1e-3 + bsz * macs_img / rate_c
        out = []
        for W in (64, 512):
            m = Model(G, D, c["alpha"], c["beta"], ctrl_cluster)
            exposed = m.exposed_with_overlap(W, lambda mm: 128 * mm / rate_c)
            out.append(comp(128) / (comp(128) + exposed))
        print(f"{name:40s} {out[0]:6.1%} / {out[1]:6.1%}")
    F32, CAPS = 4, base["caps"]

    # CPU nodes like this VM: today's networks, measured step, overlap off (dist.overlap auto on CPUs)
    print("\n## CPU nodes like this VM (today's D, 1 core/rank, measured step, no overlap), weak scaling")
    cpu = lambda bsz: CPU_STEP_MS_B16 * 1e-3 * bsz / 16  # linear in the batch (assumption)
    for W in (64, 512):
        for bsz in (16, 128):
            m = Model(G, D64, alpha, beta, ctrl_cluster)
            eff, tc, ring, ctrl, _ = predict(m, W, bsz, cpu, False, bsz)
            print(f"W={W} batch/rank {bsz}: compute {ms(tc)} ms, ring {ms(ring)} ms, ctrl {ms(ctrl)} ms -> E {eff:.1%}")
    for W in (64, 512):
        print(f"blocking stop agreement (comm.any each step) would add {ctrl_cluster(W) * 1e6:.0f} us/step at W={W}"
              f" (cluster model; {ctrl_fit(W) * 1e3:.2f} ms with the fit as measured here)")

    if args.check:
        check(args.check)


# ---------------------------------------------------------------- check against this machine


def check(path):
    text = open(path).read()
    med = lambda xs: statistics.median(xs)
    cores = int(re.search(r"^cores (\d+)", text, re.M).group(1))
    step = {}
    for w, v in re.findall(r"^step W=(\d+) rep=\d+ ms ([0-9.]+)", text, re.M):
        step.setdefault(int(w), []).append(float(v))
    ar = {}
    for w, n, us in re.findall(r"^allreduce rep=\d+ W=(\d+) bytes=(\d+) us=([0-9.]+)", text, re.M):
        ar.setdefault(int(w), {}).setdefault(int(n), []).append(float(us))
    old = {}
    new = {}
    for w, o, n in re.findall(r"^ctrl rep=\d+ W=(\d+) .*?old rendezvous.*?\(control plane ([-+0-9.]+) us\).*?\(control plane ([-+0-9.]+) us\)", text, re.M):
        old.setdefault(int(w), []).append(float(o))
        new.setdefault(int(w), []).append(float(n))
    print("\n## Check on this machine (Open MPI, shared memory), medians of the repeats")
    fits = {}
    print("| W | fit T(n) = a + b n, 8 B - 2 MiB | alpha = a / 2(W-1) | beta = 2(W-1)/W / b | worst point off the fit | 16 MiB: bus bandwidth |")
    print("|---|---|---|---|---|---|")
    for w in sorted(ar):
        big = max(ar[w])
        # fitted up to 2 MiB (the check's buckets are < 1 MiB); 8-16 MiB leave the 32 MiB L3 (4 buffers
        # per rank pair) and run at memory speed: reported apart
        ns = [n for n in sorted(ar[w]) if n <= 2 * MiB]
        ts = [med(ar[w][n]) * 1e-6 for n in ns]
        aa, bb = linfit(ns, ts, [1 / t for t in ts])  # relative least squares: small and large sizes alike
        fits[w] = (aa, bb)
        worst = max(abs((aa + bb * n) / t - 1) for n, t in zip(ns, ts))
        print(f"| {w} | a = {aa * 1e6:.1f} us, 1/b = {1 / bb / 1e9:.2f} GB/s | {aa / (2 * (w - 1)) * 1e6:.1f} us |"
              f" {2 * (w - 1) / w / bb / 1e9:.2f} GB/s | {worst:.0%} |"
              f" {2 * (w - 1) / w * big / (med(ar[w][big]) * 1e-6) / 1e9:.2f} GB/s |")
    if old:
        print("control plane (old all-to-all = this binary's; new O(log W) = ctrl's), us per collective, medians: "
              + ", ".join(f"W={w} old {med(old[w]):.1f} new {med(new[w]):.1f}" for w in sorted(old)))
    # the check's networks: gantry dcgan at 32x32x1, g_width = d_width = 32, 16 images per rank
    g, d = generator(100, 32, 32, 1), discriminator(32, 32, 1)
    bl = buckets(g) + buckets(d)
    t1 = med(step[1]) * 1e-3
    print(f"check networks: G {params(g):,d} + D {params(d):,d} parameters, buckets "
          f"{[round(b[0] / MiB, 3) for b in bl]} MiB; per step {len(bl)} bucket all-reduces + 1 blocking stop agreement")
    print("| W | compute = T1 x max(1, W/cores) ms | all-reduces ms | control plane ms | predicted ms | measured ms (runs) | measured / predicted |")
    print("|---|---|---|---|---|---|---|")
    for w in sorted(step):
        tc = t1 * max(1.0, w / cores)
        if w == 1:
            tr = tcp = 0.0
        else:
            aa, bb = fits[w]
            tr = sum(aa + bb * b[0] for b in bl) + (aa + bb * 8)  # buckets + the 8-byte stop agreement
            tcp = (len(bl) + 1) * med(old[w]) * 1e-6 if w in old else 0.0
        pred = tc + tr + tcp
        meas = med(step[w]) * 1e-3
        runs = ", ".join(f"{x:.0f}" for x in step[w])
        print(f"| {w} | {ms(tc)} | {ms(tr)} | {ms(tcp)} | {ms(pred)} | {ms(meas)} ({runs}) | {meas / pred:.2f} |")


if __name__ == "__main__":
    main()
