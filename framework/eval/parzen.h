// Parzen-window (Gaussian kernel density) log-likelihood of test points under a set of samples, the
// estimate the GAN (Goodfellow et al. 2014) and f-GAN papers report on MNIST: log p(x) = log (1/M Σ_j
// N(x; s_j, σ²I)), with σ chosen by the best mean log-likelihood on a validation split.
// Work is O(N·M·d) per σ; each rank can score its own share of the test points against all samples and
// the caller reduces the sums.
#pragma once

#include <torch/types.h>

#include <vector>

namespace gantry {

// Per test point (N) log-likelihood in nats, float64. test (N, d), samples (M, d); `rows` test points
// at a time (memory rows × M doubles).
torch::Tensor parzen_log_likelihood(const torch::Tensor& test, const torch::Tensor& samples, double sigma,
                                    int64_t rows = 256);

struct ParzenBandwidth {
  double sigma = 0;
  double mean_log_likelihood = 0;     // on the validation points, at sigma
  std::vector<double> sigmas, means;  // every candidate and its validation mean
};
// The candidate σ with the highest mean log-likelihood of `validation` under `samples`.
ParzenBandwidth choose_parzen_bandwidth(const torch::Tensor& validation, const torch::Tensor& samples,
                                        const std::vector<double>& sigmas);

}  // namespace gantry
