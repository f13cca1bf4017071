#include "fgan/divergence.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gantry::fgan {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kLog2 = std::log(2.0);

// ---- stable scalar helpers ----
double xlogx(double u) {
  return u == 0.0 ? 0.0 : u * std::log(u);
}
double softplus(double x) {
  return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x)));
}
// log(1 - e^x) for x <= 0 (Mächler 2012: switch at -log 2).
double log1mexp(double x) {
  return x > -kLog2 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x));
}

// ---- stable tensor helpers (PyTorch's softplus: exact to ~2e-9 past its threshold of 20) ----
torch::Tensor softplus_t(const torch::Tensor& x) {
  return torch::softplus(x, 1.0, 20.0);
}
torch::Tensor log1mexp_t(const torch::Tensor& x) {
  // Each branch gets inputs clamped into its own safe range, so the unused branch has no inf/nan
  // (keeps gradients of torch::where finite).
  auto near_zero = torch::log(-torch::expm1(torch::clamp_min(x, -kLog2)));
  auto far = torch::log1p(-torch::exp(torch::clamp_max(x, -kLog2)));
  return torch::where(x > -kLog2, near_zero, far);
}

// ---- Lambert W of e^y ----
// Newton's method for s = log W(e^y), the root of s + e^s = y: the left side is convex and increasing in s,
// so the iterates converge from any start (monotonically after at most one overshoot). From the starts
// below (log sigmoid(y) for y <= 1; the asymptotic W ~ y - log y + log y / y above, exact at y = 1) six
// steps reach double precision for every y (tested).
constexpr int kLambertNewtonSteps = 6;

template <class T>
T lambert_newton(T s, const T& y) {
  using std::exp;
  for (int i = 0; i < kLambertNewtonSteps; ++i) {
    const T e = exp(s);
    s = s - (s + e - y) / (e + 1.0);
  }
  return s;
}

double lambert_log_w_start(double y) {
  if (y <= 1.0) return y - softplus(y);
  const double l = std::log(y);
  return std::log(y - l + l / y);
}

torch::Tensor lambert_log_w_start_t(const torch::Tensor& y) {
  const auto big = torch::clamp_min(y, 1.0), l = torch::log(big);
  return torch::where(y <= 1.0, y - softplus_t(torch::clamp_max(y, 1.0)), torch::log(big - l + l / big));
}

// Newton in float64 under no_grad; the gradient from the saved output: d log w / dy = 1 / (1 + w), itself
// differentiable through the output (second derivatives are right too).
struct LambertLogWExp : public torch::autograd::Function<LambertLogWExp> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y) {
    const auto y64 = y.to(torch::kFloat64);
    auto s = lambert_newton(lambert_log_w_start_t(y64), y64).to(y.scalar_type());
    ctx->save_for_backward({s});
    return s;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto s = ctx->get_saved_variables()[0];
    return {grad[0] / (torch::exp(s) + 1.0)};
  }
};

// Jeffrey's f*(t) = w + 1/w + t - 2 with w = W(e^{1-t}) (the table's form). Since w + log w = 1 - t it is
// 1/w - log w - 1 = expm1(-s) - s with s = log w: no cancellation of w against t for very negative t, finite
// wherever f* is, and its autograd derivative (e^{-s} + 1)/(1 + w) = 1/w (the u with f'(u) = t) forms no
// 1/w^2 on the way.
double jeffrey_conjugate(double t) {
  const double s = lambert_log_w_exp(1.0 - t);
  return std::expm1(-s) - s;
}
torch::Tensor jeffrey_conjugate_t(const torch::Tensor& t) {
  const auto s = lambert_log_w_exp(1.0 - t);
  return torch::expm1(-s) - s;
}

Interval below(double upper) {
  return Interval{-kInf, upper, false, false};
}
Interval real_line() {
  return Interval{};
}

Divergence make_kl() {
  Divergence d;
  d.kind = Kind::kKl;
  d.name = "kl";
  d.display_name = "Kullback-Leibler";
  d.f = [](double u) { return xlogx(u); };
  d.f_prime = [](double u) { return std::log(u) + 1.0; };
  d.activation = [](double v) { return v; };
  d.conjugate = [](double t) { return std::exp(t - 1.0); };
  d.conjugate_domain = real_line();
  d.f_prime_at_one = 1.0;
  d.slope_at_infinity = kInf;
  d.activation_t = [](const torch::Tensor& v) { return v.clone(); };
  d.conjugate_t = [](const torch::Tensor& t) { return torch::exp(t - 1.0); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return torch::exp(v - 1.0); };
  return d;
}

Divergence make_reverse_kl() {
  Divergence d;
  d.kind = Kind::kReverseKl;
  d.name = "reverse_kl";
  d.display_name = "reverse KL";
  d.f = [](double u) { return -std::log(u); };
  d.f_prime = [](double u) { return -1.0 / u; };
  d.activation = [](double v) { return -std::exp(-v); };
  d.conjugate = [](double t) { return -1.0 - std::log(-t); };
  d.conjugate_domain = below(0.0);
  d.f_prime_at_one = -1.0;
  d.slope_at_infinity = 0.0;
  d.activation_t = [](const torch::Tensor& v) { return -torch::exp(-v); };
  d.conjugate_t = [](const torch::Tensor& t) { return -1.0 - torch::log(-t); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return v - 1.0; };
  return d;
}

Divergence make_pearson() {
  Divergence d;
  d.kind = Kind::kPearson;
  d.name = "pearson";
  d.display_name = "Pearson chi^2";
  d.f = [](double u) { return (u - 1.0) * (u - 1.0); };
  d.f_prime = [](double u) { return 2.0 * (u - 1.0); };
  d.activation = [](double v) { return v; };
  d.conjugate = [](double t) { return 0.25 * t * t + t; };
  d.conjugate_domain = real_line();
  d.domain_note = "t^2/4 + t is the true conjugate only for t >= -2 (below, it over-estimates f*: still a bound)";
  d.f_prime_at_one = 0.0;
  d.slope_at_infinity = kInf;
  d.activation_t = [](const torch::Tensor& v) { return v.clone(); };
  d.conjugate_t = [](const torch::Tensor& t) { return 0.25 * t * t + t; };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return 0.25 * v * v + v; };
  return d;
}

Divergence make_neyman() {
  Divergence d;
  d.kind = Kind::kNeyman;
  d.name = "neyman";
  d.display_name = "Neyman chi^2";
  d.f = [](double u) { return (1.0 - u) * (1.0 - u) / u; };
  d.f_prime = [](double u) { return 1.0 - 1.0 / (u * u); };
  d.activation = [](double v) { return -std::expm1(-v); };
  d.conjugate = [](double t) { return 2.0 - 2.0 * std::sqrt(1.0 - t); };
  d.conjugate_domain = below(1.0);
  d.f_prime_at_one = 0.0;
  d.slope_at_infinity = 1.0;
  d.activation_t = [](const torch::Tensor& v) { return -torch::expm1(-v); };
  d.conjugate_t = [](const torch::Tensor& t) { return 2.0 - 2.0 * torch::sqrt(1.0 - t); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return 2.0 - 2.0 * torch::exp(-0.5 * v); };
  return d;
}

Divergence make_hellinger() {
  Divergence d;
  d.kind = Kind::kHellinger;
  d.name = "hellinger";
  d.display_name = "squared Hellinger";
  d.f = [](double u) { return (std::sqrt(u) - 1.0) * (std::sqrt(u) - 1.0); };
  d.f_prime = [](double u) { return 1.0 - 1.0 / std::sqrt(u); };
  d.activation = [](double v) { return -std::expm1(-v); };
  d.conjugate = [](double t) { return t / (1.0 - t); };
  d.conjugate_domain = below(1.0);
  d.f_prime_at_one = 0.0;
  d.slope_at_infinity = 1.0;
  d.activation_t = [](const torch::Tensor& v) { return -torch::expm1(-v); };
  d.conjugate_t = [](const torch::Tensor& t) { return t / (1.0 - t); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return torch::expm1(v); };
  return d;
}

// The table's JS f is twice the textbook Jensen-Shannon divergence (no 1/2).
Divergence make_js() {
  Divergence d;
  d.kind = Kind::kJs;
  d.name = "js";
  d.display_name = "Jensen-Shannon (x2)";
  d.f = [](double u) { return -(u + 1.0) * std::log((1.0 + u) / 2.0) + xlogx(u); };
  d.f_prime = [](double u) { return std::log(2.0 * u / (1.0 + u)); };
  d.activation = [](double v) { return kLog2 - softplus(-v); };
  d.conjugate = [](double t) { return -kLog2 - log1mexp(t - kLog2); };  // = -log(2 - e^t)
  d.conjugate_domain = below(kLog2);
  d.f_prime_at_one = 0.0;
  d.slope_at_infinity = kLog2;
  d.activation_t = [](const torch::Tensor& v) { return kLog2 - softplus_t(-v); };
  d.conjugate_t = [](const torch::Tensor& t) { return -kLog2 - log1mexp_t(t - kLog2); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return softplus_t(v) - kLog2; };
  return d;
}

Divergence make_gan() {
  Divergence d;
  d.kind = Kind::kGan;
  d.name = "gan";
  d.display_name = "GAN";
  d.f = [](double u) { return xlogx(u) - (u + 1.0) * std::log1p(u); };
  d.f_prime = [](double u) { return -std::log1p(1.0 / u); };  // log(u / (1 + u))
  d.activation = [](double v) { return -softplus(-v); };
  d.conjugate = [](double t) { return -log1mexp(t); };  // -log(1 - e^t)
  d.conjugate_domain = below(0.0);
  d.f_prime_at_one = -kLog2;
  d.slope_at_infinity = 0.0;
  d.activation_t = [](const torch::Tensor& v) { return -softplus_t(-v); };
  d.conjugate_t = [](const torch::Tensor& t) { return -log1mexp_t(t); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return softplus_t(v); };
  return d;
}

// Jeffrey = KL + reverse KL: q f(p/q) = (p - q) log(p/q).
Divergence make_jeffrey() {
  Divergence d;
  d.kind = Kind::kJeffrey;
  d.name = "jeffrey";
  d.display_name = "Jeffrey";
  d.f = [](double u) { return (u - 1.0) * std::log(u); };
  d.f_prime = [](double u) { return std::log(u) + 1.0 - 1.0 / u; };
  d.activation = [](double v) { return v; };
  d.conjugate = jeffrey_conjugate;
  d.conjugate_domain = real_line();
  d.f_prime_at_one = 0.0;  // log 1 + 1 - 1/1 (shared/REFERENCES.md's table says 1; see README)
  d.slope_at_infinity = kInf;
  d.activation_t = [](const torch::Tensor& v) { return v.clone(); };
  d.conjugate_t = jeffrey_conjugate_t;
  d.conjugate_of_activation_t = jeffrey_conjugate_t;
  return d;
}

Divergence make_total_variation() {
  Divergence d;
  d.kind = Kind::kTotalVariation;
  d.name = "tv";
  d.display_name = "total variation";
  d.f = [](double u) { return 0.5 * std::abs(u - 1.0); };
  d.f_prime = [](double u) { return u > 1.0 ? 0.5 : (u < 1.0 ? -0.5 : 0.0); };
  d.activation = [](double v) { return 0.5 * std::tanh(v); };
  d.conjugate = [](double t) { return t; };
  d.conjugate_domain = Interval{-0.5, 0.5, true, true};
  d.f_prime_at_one = 0.0;
  d.slope_at_infinity = 0.5;
  d.activation_t = [](const torch::Tensor& v) { return 0.5 * torch::tanh(v); };
  d.conjugate_t = [](const torch::Tensor& t) { return t.clone(); };
  d.conjugate_of_activation_t = [](const torch::Tensor& v) { return 0.5 * torch::tanh(v); };
  return d;
}

const std::vector<Divergence>& table() {
  static const std::vector<Divergence> all = {make_kl(),     make_reverse_kl(), make_pearson(),
                                              make_neyman(), make_hellinger(),  make_js(),
                                              make_gan(),    make_jeffrey(),    make_total_variation()};
  return all;
}

}  // namespace

bool Interval::contains(double t) const {
  if (std::isnan(t)) return false;
  const bool above_lower = lower_closed ? t >= lower : t > lower;
  const bool below_upper = upper_closed ? t <= upper : t < upper;
  return above_lower && below_upper;
}

std::string Interval::describe() const {
  std::ostringstream s;
  if (std::isinf(lower)) {
    s << "(-inf";
  } else {
    s << (lower_closed ? "[" : "(") << lower;
  }
  s << ", ";
  if (std::isinf(upper)) {
    s << "inf)";
  } else {
    s << upper << (upper_closed ? "]" : ")");
  }
  return s.str();
}

double Divergence::perspective(double p, double q) const {
  if (p == 0.0 && q == 0.0) return 0.0;
  if (q == 0.0) return p * slope_at_infinity;
  if (p == 0.0) return q * f(0.0);
  const double u = p / q;
  if (std::isinf(u)) return p * slope_at_infinity;
  return u > 1.0 ? p * (f(u) / u) : q * f(u);  // p f(u)/u keeps q tiny / u huge from making 0 * inf
}

const Divergence& divergence(Kind kind) {
  return table().at(static_cast<size_t>(kind));
}

const Divergence& divergence_by_name(const std::string& name) {
  std::string names;
  for (const auto& d : table()) {
    if (d.name == name) return d;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  throw std::invalid_argument("unknown f-divergence '" + name + "'; choose one of: " + names);
}

double lambert_log_w_exp(double y) {
  return lambert_newton(lambert_log_w_start(y), y);
}
double lambert_w_exp(double y) {
  return std::exp(lambert_log_w_exp(y));
}
torch::Tensor lambert_log_w_exp(const torch::Tensor& y) {
  return LambertLogWExp::apply(y);
}
torch::Tensor lambert_w_exp(const torch::Tensor& y) {
  return torch::exp(lambert_log_w_exp(y));
}

const std::vector<Kind>& all_kinds() {
  static const std::vector<Kind> kinds = {Kind::kKl,     Kind::kReverseKl, Kind::kPearson,
                                          Kind::kNeyman, Kind::kHellinger, Kind::kJs,
                                          Kind::kGan,    Kind::kJeffrey,   Kind::kTotalVariation};
  return kinds;
}

}  // namespace gantry::fgan
