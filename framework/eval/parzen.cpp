#include "eval/parzen.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace gantry {

torch::Tensor parzen_log_likelihood(const torch::Tensor& test, const torch::Tensor& samples, double sigma,
                                    int64_t rows) {
  if (test.dim() != 2 || samples.dim() != 2 || test.size(1) != samples.size(1) || samples.size(0) == 0)
    throw std::invalid_argument("parzen_log_likelihood: needs test (N, d) and samples (M, d), M > 0");
  if (!(sigma > 0))
    throw std::invalid_argument("parzen_log_likelihood: sigma must be > 0, got " + std::to_string(sigma));
  auto s = samples.to(torch::kFloat64);
  const double d = static_cast<double>(s.size(1)), m = static_cast<double>(s.size(0));
  // log N(x; s, σ²I) = −‖x − s‖²/(2σ²) − (d/2) log(2πσ²); ‖x − s‖² = ‖x‖² − 2 x·s + ‖s‖².
  const double log_norm = -0.5 * d * std::log(2 * M_PI * sigma * sigma) - std::log(m);
  auto s_sq = s.pow(2).sum(1).unsqueeze(0);  // (1, M)
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < test.size(0); i += rows) {
    auto x = test.narrow(0, i, std::min(rows, test.size(0) - i)).to(torch::kFloat64);
    auto dist = (x.pow(2).sum(1, /*keepdim=*/true) - 2 * x.matmul(s.t()) + s_sq).clamp_min(0);
    out.push_back(torch::logsumexp(-dist / (2 * sigma * sigma), 1) + log_norm);
  }
  return out.empty() ? torch::zeros({0}, torch::kFloat64) : torch::cat(out);
}

ParzenBandwidth choose_parzen_bandwidth(const torch::Tensor& validation, const torch::Tensor& samples,
                                        const std::vector<double>& sigmas) {
  if (sigmas.empty()) throw std::invalid_argument("choose_parzen_bandwidth: no candidate sigma");
  ParzenBandwidth best;
  best.mean_log_likelihood = -INFINITY;
  for (double sigma : sigmas) {
    const double mean = parzen_log_likelihood(validation, samples, sigma).mean().item<double>();
    best.sigmas.push_back(sigma);
    best.means.push_back(mean);
    if (mean > best.mean_log_likelihood) best.sigma = sigma, best.mean_log_likelihood = mean;
  }
  return best;
}

}  // namespace gantry
