#include "eval/likelihood.h"

#include <torch/torch.h>

#include <cmath>

namespace gantry {

namespace F = torch::nn::functional;

torch::Tensor pixel_values(const torch::Tensor& images) {
  return ((images.to(torch::kFloat32) + 1) * 127.5f).round().clamp(0, kPixelLevels - 1).to(torch::kLong);
}

torch::Tensor categorical_nll(const torch::Tensor& logits, const torch::Tensor& values) {
  // cross_entropy wants the classes in dimension 1: (B, 256, C, H, W).
  auto per = F::cross_entropy(logits.to(torch::kFloat32).transpose(1, 2), values,
                              F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return per.to(torch::kFloat64).flatten(1).sum(1);  // sums of D terms in double
}

torch::Tensor discretized_logistic_nll(const torch::Tensor& mean, const torch::Tensor& log_scale,
                                       const torch::Tensor& values) {
  const double half_bin = 1.0 / 255.0;
  auto mu = mean.to(torch::kFloat32), ls = log_scale.to(torch::kFloat32);
  auto x = values.to(torch::kFloat32) * (2.0f / 255.0f) - 1;
  auto centred = x - mu, inv_s = torch::exp(-ls);
  auto plus = inv_s * (centred + half_bin), minus = inv_s * (centred - half_bin);
  // log σ(a) = −softplus(−a); log(1 − σ(b)) = −softplus(b).
  auto log_cdf_plus = -F::softplus(-plus);
  auto log_one_minus_cdf_minus = -F::softplus(minus);
  // Interior bins: σ(a) − σ(b) = σ(−b) − σ(−a), so both arguments can be taken on the left of the mean,
  // where log σ has no cancellation near 1; then log(σ(a) − σ(b)) = log σ(a) + log(1 − e^{log σ(b) − log σ(a)}).
  // When the bin is narrow against the scale (|log ratio| < 1e-3: width/scale < 2e-3), float32 would lose
  // digits to the cancellation: the density at the centre times the width, within 1e-6 relative there.
  auto right = centred > 0;
  auto a = torch::where(right, -minus, plus), b = torch::where(right, -plus, minus);
  auto log_cdf_a = -F::softplus(-a);
  auto delta = -F::softplus(-b) - log_cdf_a;  // ≤ 0
  auto log_mass = log_cdf_a + torch::log(-torch::expm1(delta.clamp_max(-1e-12)));
  auto mid = inv_s * centred;
  auto log_density_mid = mid - ls - 2 * F::softplus(mid) + std::log(2 * half_bin);
  auto interior = torch::where(delta < -1e-3, log_mass, log_density_mid);
  auto log_p = torch::where(values == 0, log_cdf_plus,
                            torch::where(values == kPixelLevels - 1, log_one_minus_cdf_minus, interior));
  return -log_p.to(torch::kFloat64).flatten(1).sum(1);
}

torch::Tensor log_mean_exp(const torch::Tensor& log_weights) {
  return torch::logsumexp(log_weights, 1) - std::log(static_cast<double>(log_weights.size(1)));
}

}  // namespace gantry
