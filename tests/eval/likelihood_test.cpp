// framework/eval/likelihood.h: the discretised logistic is a distribution over the 256 values (its
// masses sum to 1, and each equals the logistic CDF difference computed independently in double), a
// uniform categorical is exactly 8 bits/dim, pixel values round-trip, log-mean-exp does not overflow.
#include "eval/likelihood.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "train/batch_source.h"

namespace gantry {
namespace {

double sigmoid(double t) {
  return 1 / (1 + std::exp(-t));
}

TEST(Likelihood, PixelValuesRoundTripTheLoadersFloats) {
  auto v = torch::arange(256, torch::kUInt8).view({1, 16, 16, 1});
  auto x = uint8_to_float(v);  // (1, 1, 16, 16) in [-1, 1]
  EXPECT_TRUE(torch::equal(pixel_values(x).flatten(), torch::arange(256, torch::kLong)));
}

TEST(Likelihood, DiscretizedLogisticIsADistributionOverThe256Values) {
  auto values = torch::arange(256, torch::kLong).view({256, 1, 1, 1});
  for (double mu : {-1.3, -1.0, -0.2, 0.0, 0.37, 0.999, 1.4}) {
    for (double ls : {-7.0, -4.5, -2.0, 0.0, 1.5, 6.0, 9.0}) {
      auto mean = torch::full({256, 1, 1, 1}, mu), log_scale = torch::full({256, 1, 1, 1}, ls);
      auto nll = discretized_logistic_nll(mean, log_scale, values).to(torch::kFloat64);
      ASSERT_TRUE(torch::isfinite(nll).all().item<bool>()) << mu << " " << ls;
      EXPECT_NEAR(torch::exp(-nll).sum().item<double>(), 1.0, 2e-5) << "mu " << mu << " log_scale " << ls;
      // Each mass against σ((x + 1/255 − μ)/s) − σ((x − 1/255 − μ)/s) in double, edges to ±∞.
      const double s = std::exp(ls);
      for (int v : {0, 1, 77, 128, 200, 254, 255}) {
        const double x = v * 2.0 / 255 - 1;
        const double hi = v == 255 ? 1.0 : sigmoid((x + 1 / 255.0 - mu) / s);
        const double lo = v == 0 ? 0.0 : sigmoid((x - 1 / 255.0 - mu) / s);
        const double expected = -std::log(hi - lo);
        if (hi - lo < 1e-30) continue;  // beyond double's reach: nothing independent to compare with
        EXPECT_NEAR(nll[v].item<double>(), expected, 2e-4 * std::max(1.0, std::abs(expected)))
            << "v " << v << " mu " << mu << " log_scale " << ls;
      }
    }
  }
}

TEST(Likelihood, DiscretizedLogisticHasUsableGradients) {
  auto mean = torch::zeros({2, 3, 4, 4}, torch::requires_grad()), ls = torch::full({2, 3, 4, 4}, -3.0);
  ls.set_requires_grad(true);
  auto values = torch::randint(0, 256, {2, 3, 4, 4}, torch::kLong);
  discretized_logistic_nll(mean, ls, values).sum().backward();
  EXPECT_TRUE(torch::isfinite(mean.grad()).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(ls.grad()).all().item<bool>());
  EXPECT_GT(mean.grad().abs().sum().item<double>(), 0.0);
}

TEST(Likelihood, UniformCategoricalIsExactlyEightBitsPerDim) {
  auto logits = torch::zeros({3, 1, 256, 28, 28});
  auto values = torch::randint(0, 256, {3, 1, 28, 28}, torch::kLong);
  auto nll = categorical_nll(logits, values);
  ASSERT_EQ(nll.sizes(), (std::vector<int64_t>{3}));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(bits_per_dim(nll[i].item<double>(), 784), 8.0, 1e-6);
  // A one-hot-ish categorical puts its mass where the logits say.
  auto sharp = torch::full({1, 1, 256, 1, 1}, -1e4);
  sharp[0][0][42][0][0] = 0;
  EXPECT_NEAR(categorical_nll(sharp, torch::full({1, 1, 1, 1}, 42, torch::kLong)).item<double>(), 0.0, 1e-6);
}

TEST(Likelihood, LogMeanExpOfLargeWeights) {
  auto w = torch::tensor({1000.0, 1000.0, 1000.0 + std::log(4.0)}, torch::kFloat64).view({1, 3});
  EXPECT_NEAR(log_mean_exp(w).item<double>(), 1000.0 + std::log(2.0), 1e-9);  // (1 + 1 + 4) / 3 = 2
  EXPECT_NEAR(log_mean_exp(torch::full({1, 5}, -2000.0, torch::kFloat64)).item<double>(), -2000.0, 1e-9);
}

}  // namespace
}  // namespace gantry
