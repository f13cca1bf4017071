// f-divergences for f-GAN (Nowozin, Cseke & Tomioka 2016, Table 1/2 as in shared/REFERENCES.md).
// Each divergence is one value: f, f', the output activation g_f, the Fenchel conjugate f* and dom f*,
// in double (for quadrature and tests) and as elementwise torch::Tensor functions (for the recipe).
// To add one: write a make_*() in divergence.cpp filling every field, add it to the Kind enum and to
// all_divergences(); the tests in tests/models/fgan_divergence_test.cpp then cover it automatically.
#pragma once

#include <torch/types.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace gantry::fgan {

// An interval of the real line, possibly unbounded: the domain of f*.
struct Interval {
  double lower = -std::numeric_limits<double>::infinity();
  double upper = std::numeric_limits<double>::infinity();
  bool lower_closed = false, upper_closed = false;  // ignored for infinite ends

  bool contains(double t) const;
  std::string describe() const;  // e.g. "(-inf, 0)", "[-0.5, 0.5]"
};

enum class Kind { kKl, kReverseKl, kPearson, kNeyman, kHellinger, kJs, kGan, kJeffrey, kTotalVariation };

struct Divergence {
  using Scalar = std::function<double(double)>;
  using Elementwise = std::function<torch::Tensor(const torch::Tensor&)>;

  Kind kind;
  std::string name;           // lookup key: "kl", "reverse_kl", "pearson", "neyman", "hellinger", "js", "gan",
                              // "jeffrey", "tv"
  std::string display_name;   // e.g. "Kullback-Leibler"
  Scalar f;                   // generator function, u >= 0, f(1) = 0
  Scalar f_prime;             // f'(u), u > 0 (TV: the subgradient 0 at u = 1)
  Scalar activation;          // g_f(v): R -> dom f*
  Scalar conjugate;           // f*(t), t in dom f* (the table's formula)
  Interval conjugate_domain;  // dom f*
  std::string domain_note;    // caveat on dom f*, e.g. Pearson's "exact for t >= -2"; empty if none
  double f_prime_at_one;      // f'(1) as listed in the table (the GAN's T on real = fake)
  double slope_at_infinity;   // lim_{u->inf} f(u)/u: the perspective q f(p/q) as q -> 0 is p * this

  Elementwise activation_t;               // g_f(v), elementwise, numerically stable
  Elementwise conjugate_t;                // f*(t), elementwise, t in dom f*
  Elementwise conjugate_of_activation_t;  // f*(g_f(v)) written directly in v (stabler than composing)

  // q f(p/q) for densities p, q >= 0, with the limits at p = 0 and q = 0 (0 when both are 0).
  double perspective(double p, double q) const;
};

const Divergence& divergence(Kind kind);
// Throws std::invalid_argument naming the valid names.
const Divergence& divergence_by_name(const std::string& name);
const std::vector<Kind>& all_kinds();  // in the table's order, total variation last

// The principal branch of Lambert W at e^y, for any finite y: the w > 0 with w + log w = y, found without
// forming e^y (Jeffrey's conjugate needs W(e^{1-t}), whose argument overflows for t < -709 and underflows
// for t > 746). lambert_log_w_exp returns log w (= y - w), which stays finite where w underflows (y < -745).
// The tensor versions work elementwise in float64 whatever the input's dtype (the result has the input's
// dtype) and are differentiable: d log w / dy = 1 / (1 + w), so dW(e^y)/dy = w / (1 + w).
double lambert_log_w_exp(double y);
double lambert_w_exp(double y);
torch::Tensor lambert_log_w_exp(const torch::Tensor& y);
torch::Tensor lambert_w_exp(const torch::Tensor& y);

}  // namespace gantry::fgan
