// framework/eval/parzen.h: one sample is a Gaussian density (closed form), many samples equal an
// element-by-element log-sum-exp, chunking changes nothing, and the bandwidth chosen on validation
// points is the one that fits the data's own spread.
#include "eval/parzen.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace gantry {
namespace {

TEST(Parzen, OneSampleIsAGaussianDensity) {
  auto x = torch::tensor({{0.0, 0.0, 0.0}, {1.0, -2.0, 0.5}}, torch::kFloat64);
  auto s = torch::tensor({{0.5, 0.0, -1.0}}, torch::kFloat64);
  const double sigma = 0.7;
  auto ll = parzen_log_likelihood(x, s, sigma);
  for (int i = 0; i < 2; ++i) {
    const double sq = (x[i] - s[0]).pow(2).sum().item<double>();
    const double expected = -sq / (2 * sigma * sigma) - 1.5 * std::log(2 * M_PI * sigma * sigma);
    EXPECT_NEAR(ll[i].item<double>(), expected, 1e-10);
  }
}

TEST(Parzen, ManySamplesEqualAnElementwiseSumInAnyChunking) {
  auto gen = at::detail::createCPUGenerator(3);
  auto x = at::randn({37, 5}, gen, torch::kFloat64), s = at::randn({50, 5}, gen, torch::kFloat64) * 2;
  const double sigma = 0.4;
  auto ll = parzen_log_likelihood(x, s, sigma, 8);
  EXPECT_TRUE(torch::allclose(ll, parzen_log_likelihood(x, s, sigma, 1000), 1e-12, 1e-12));
  for (int i : {0, 17, 36}) {
    double sum = 0;
    for (int j = 0; j < 50; ++j) sum += std::exp(-(x[i] - s[j]).pow(2).sum().item<double>() / (2 * sigma * sigma));
    const double expected = std::log(sum / 50) - 2.5 * std::log(2 * M_PI * sigma * sigma);
    EXPECT_NEAR(ll[i].item<double>(), expected, 1e-9 * std::abs(expected));
  }
  EXPECT_THROW(parzen_log_likelihood(x, s, 0.0), std::invalid_argument);
  EXPECT_THROW(parzen_log_likelihood(x, s.narrow(1, 0, 4), 1.0), std::invalid_argument);
}

TEST(Parzen, ValidationChoosesABandwidthNearTheOptimum) {
  // Samples and validation points from N(0, I) in 2-d with 2000 samples: Silverman's rule gives
  // σ ≈ n^(-1/6) ≈ 0.28; the likelihood-optimal width is of that order, far from 0.01 or 3.
  auto gen = at::detail::createCPUGenerator(4);
  auto s = at::randn({2000, 2}, gen, torch::kFloat64), v = at::randn({500, 2}, gen, torch::kFloat64);
  auto best = choose_parzen_bandwidth(v, s, {0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0});
  EXPECT_GE(best.sigma, 0.1);
  EXPECT_LE(best.sigma, 0.5);
  ASSERT_EQ(best.means.size(), 8u);
  EXPECT_LT(best.means.front(), best.mean_log_likelihood - 1);   // too narrow: much worse
  EXPECT_LT(best.means.back(), best.mean_log_likelihood - 0.3);  // too wide: worse
  // The true density's mean log-likelihood, −log(2π) − 1 ≈ −2.84, bounds what a KDE reaches.
  EXPECT_LT(best.mean_log_likelihood, -std::log(2 * M_PI) - 1 + 0.1);
  EXPECT_GT(best.mean_log_likelihood, -std::log(2 * M_PI) - 1 - 0.3);
}

}  // namespace
}  // namespace gantry
