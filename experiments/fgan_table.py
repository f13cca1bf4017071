#!/usr/bin/python3
"""The 1-D f-GAN table from runs of experiments/fgan_gauss_mixture.sh: for each divergence the last
evaluation's learned (mu, sigma), F on held-out samples with its standard error (the square root of
eval_F_var, the sampling variance from the per-sample terms), D_f(P||Q_theta-hat) by quadrature, the
direct answer theta* and D_f(P||Q_theta*), and the paper's Table 3 values where it lists the divergence.
After the table, one line: whether every F is below D_f(P||Q_theta-hat) within two standard errors (F is
a lower bound on it; only sampling noise can put it above).
    experiments/fgan_table.py runs/fgan_gauss_mixture
"""
import json, math, os, sys

# Nowozin et al. 2016, Table 3 (shared/REFERENCES.md): D_f(P||Q_theta*), F(omega-hat, theta-hat), mu*, mu-hat,
# sigma*, sigma-hat.
PAPER = {
    "kl": (0.2831, 0.2801, 1.0100, 1.0335, 1.8308, 1.8236),
    "reverse_kl": (0.2480, 0.2415, 1.5782, 1.5624, 1.6319, 1.6403),
    "js": (0.1280, 0.1226, 1.3070, 1.2854, 1.7542, 1.7659),
    "pearson": (0.6457, 0.6379, 0.5737, 0.5344, 1.9274, 1.9031),
    "jeffrey": (0.5705, 0.5151, 1.3218, 1.3295, 1.7034, 1.8087),
}
ORDER = ["kl", "reverse_kl", "pearson", "neyman", "hellinger", "js", "gan", "jeffrey"]


def last_eval(path):
    last = None
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "eval_mu" in r:
                last = r
    return last


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "runs/fgan_gauss_mixture"
    print("| divergence | mu-hat | sigma-hat | F(omega-hat, theta-hat) | SE of F | D_f(P‖Q_theta-hat) | mu* | sigma* "
          "| D_f(P‖Q_theta*) | paper mu-hat | paper sigma-hat | paper F | paper mu* | paper sigma* | paper D_f* |")
    print("|---" * 15 + "|")
    missing, above = 0, []
    for d in ORDER:
        path = os.path.join(root, d, "metrics.jsonl")
        try:
            r = last_eval(path)
        except (OSError, json.JSONDecodeError) as e:
            print(f"fgan_table: {path}: {e}", file=sys.stderr)
            r = None
        if r is None:
            missing += 1
            continue
        p = PAPER.get(d)
        paper = (f"{p[3]:.4f} | {p[5]:.4f} | {p[1]:.4f} | {p[2]:.4f} | {p[4]:.4f} | {p[0]:.4f}" if p
                 else "– | – | – | – | – | –")
        se = math.sqrt(r["eval_F_var"])
        if r["eval_F"] > r["eval_divergence"] + 2 * se:
            above.append(f"{d} ({(r['eval_F'] - r['eval_divergence']) / se:.1f} SE)")
        print(f"| {d} | {r['eval_mu']:.4f} | {r['eval_sigma']:.4f} | {r['eval_F']:.4f} | {se:.4f} "
              f"| {r['eval_divergence']:.4f} | {r['eval_mu_star']:.4f} | {r['eval_sigma_star']:.4f} "
              f"| {r['eval_divergence_star']:.4f} | {paper} |")
    print()
    print("F <= D_f(P‖Q_theta-hat) + 2 SE in every row" if not above else
          "F > D_f(P‖Q_theta-hat) + 2 SE: " + ", ".join(above))
    return 3 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
