#include "eval/feature_distance.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace gantry {

FeatureMoments::FeatureMoments(int64_t dims)
    : sum_(torch::zeros({dims}, torch::kFloat64)), outer_(torch::zeros({dims, dims}, torch::kFloat64)) {}

void FeatureMoments::add(const torch::Tensor& features) {
  if (features.dim() != 2 || features.size(1) != sum_.size(0))
    throw std::invalid_argument("FeatureMoments: features of shape " + std::to_string(features.dim()) +
                                "-d, expected (N, " + std::to_string(sum_.size(0)) + ")");
  auto f = features.detach().to(torch::kCPU, torch::kFloat64);
  sum_ += f.sum(0);
  outer_.addmm_(f.t(), f);
  count_ += f.size(0);
}

void FeatureMoments::all_reduce(Communicator& comm) {
  const int64_t d = sum_.size(0);
  // One buffer: [Σx, Σxxᵀ, count] (the count is exact in float64 up to 2^53).
  auto buffer = torch::cat({sum_, outer_.flatten(), torch::full({1}, static_cast<double>(count_), torch::kFloat64)});
  comm.all_reduce(buffer, ReduceOp::kSum);
  sum_ = buffer.narrow(0, 0, d).clone();
  outer_ = buffer.narrow(0, d, d * d).view({d, d}).clone();
  count_ = static_cast<int64_t>(std::llround(buffer[d + d * d].item<double>()));
}

GaussianFit FeatureMoments::fit() const {
  if (count_ < 2)
    throw std::invalid_argument("FeatureMoments: a covariance needs at least 2 rows, got " + std::to_string(count_));
  const double n = static_cast<double>(count_);
  auto mean = sum_ / n;
  // Σ (x − μ)(x − μ)ᵀ = Σ xxᵀ − n μμᵀ; symmetrised against rounding.
  auto cov = (outer_ - n * torch::outer(mean, mean)) / (n - 1);
  return {mean, (cov + cov.t()) / 2, count_};
}

namespace {

// Square root of a symmetric positive semi-definite matrix: V diag(√max(λ, 0)) Vᵀ.
torch::Tensor sqrt_psd(const torch::Tensor& m) {
  auto [values, vectors] = at::linalg_eigh(m, "L");
  return (vectors * values.clamp_min(0).sqrt().unsqueeze(0)).matmul(vectors.t());
}

}  // namespace

double frechet_distance(const GaussianFit& a, const GaussianFit& b) {
  if (a.mean.sizes() != b.mean.sizes())
    throw std::invalid_argument("frechet_distance: features of " + std::to_string(a.mean.size(0)) + " and " +
                                std::to_string(b.mean.size(0)) + " dimensions");
  auto c1 = a.cov.to(torch::kFloat64), c2 = b.cov.to(torch::kFloat64);
  auto s1 = sqrt_psd(c1);
  auto m = s1.matmul(c2).matmul(s1);
  auto root_eigenvalues = at::linalg_eigvalsh(((m + m.t()) / 2), "L").clamp_min(0).sqrt();
  const double mean_term = (a.mean.to(torch::kFloat64) - b.mean.to(torch::kFloat64)).pow(2).sum().item<double>();
  return mean_term + c1.trace().item<double>() + c2.trace().item<double>() - 2 * root_eigenvalues.sum().item<double>();
}

double mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y) {
  auto a = x.to(torch::kFloat64), b = y.to(torch::kFloat64);
  const double d = static_cast<double>(a.size(1)), n = static_cast<double>(a.size(0)),
               m = static_cast<double>(b.size(0));
  if (n < 2 || m < 2) throw std::invalid_argument("mmd2_unbiased: needs at least 2 rows in each set");
  auto kernel = [d](const torch::Tensor& u, const torch::Tensor& v) { return (u.matmul(v.t()) / d + 1).pow(3); };
  auto kxx = kernel(a, a), kyy = kernel(b, b), kxy = kernel(a, b);
  // Off-diagonal means of k(x, x') and k(y, y'), and the mean of k(x, y).
  const double xx = (kxx.sum() - kxx.diagonal().sum()).item<double>() / (n * (n - 1));
  const double yy = (kyy.sum() - kyy.diagonal().sum()).item<double>() / (m * (m - 1));
  return xx + yy - 2 * kxy.mean().item<double>();
}

KidResult kernel_distance(const torch::Tensor& x, const torch::Tensor& y, int64_t subsets, int64_t subset_size,
                          at::Generator& gen) {
  KidResult r;
  r.subsets = subsets;
  r.subset_size = std::min({subset_size, x.size(0), y.size(0)});
  std::vector<double> values;
  for (int64_t i = 0; i < subsets; ++i) {
    auto ix = at::randperm(x.size(0), gen, torch::kLong).narrow(0, 0, r.subset_size);
    auto iy = at::randperm(y.size(0), gen, torch::kLong).narrow(0, 0, r.subset_size);
    values.push_back(mmd2_unbiased(x.index_select(0, ix.to(x.device())), y.index_select(0, iy.to(y.device()))));
  }
  auto t = torch::tensor(values, torch::kFloat64);
  r.mean = t.mean().item<double>();
  r.std = subsets > 1 ? t.std().item<double>() : 0.0;
  return r;
}

}  // namespace gantry
