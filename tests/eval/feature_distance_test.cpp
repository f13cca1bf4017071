// framework/eval/feature_distance.h: the Fréchet distance against closed forms and against scipy's
// sqrtm on the same statistics (an independent implementation, run by /usr/bin/python3), moments added
// in pieces equal to one pass, and KID unbiased on known Gaussians.
#include "eval/feature_distance.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "support/testing.h"

namespace gantry {
namespace {

// n correlated features: a random linear map of standard normals, plus a shift.
torch::Tensor correlated(int64_t n, int64_t d, double shift, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto mix = at::randn({d, d}, gen, torch::kFloat64) / std::sqrt(static_cast<double>(d));
  return at::randn({n, d}, gen, torch::kFloat64).matmul(mix) + shift;
}

GaussianFit fit_of(const torch::Tensor& features) {
  FeatureMoments m(features.size(1));
  m.add(features);
  return m.fit();
}

TEST(FeatureDistance, MomentsInPiecesEqualOnePassAndTorchCov) {
  auto f = correlated(301, 12, 0.5, 1).to(torch::kFloat32);
  FeatureMoments pieces(12);
  pieces.add(f.narrow(0, 0, 100));
  pieces.add(f.narrow(0, 100, 1));
  pieces.add(f.narrow(0, 101, 200));
  auto whole = fit_of(f), parts = pieces.fit();
  EXPECT_EQ(parts.count, 301);
  EXPECT_TRUE(torch::allclose(parts.mean, whole.mean, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(parts.cov, whole.cov, 1e-10, 1e-12));
  auto centred = f.to(torch::kFloat64) - f.to(torch::kFloat64).mean(0);
  auto expected = centred.t().matmul(centred) / 300;
  EXPECT_TRUE(torch::allclose(whole.cov, expected, 1e-9, 1e-12));
  EXPECT_THROW(FeatureMoments(12).fit(), std::invalid_argument);
  EXPECT_THROW(pieces.add(torch::zeros({3, 5})), std::invalid_argument);
}

TEST(FeatureDistance, FrechetOfASetWithItselfIsZeroAndWithNoiseLarge) {
  auto f = correlated(2000, 32, 0.0, 2);
  auto a = fit_of(f);
  EXPECT_NEAR(frechet_distance(a, a), 0.0, 1e-9 * a.cov.trace().item<double>());
  auto noisy = fit_of(f + 3.0 * correlated(2000, 32, 0.0, 3));
  EXPECT_GT(frechet_distance(a, noisy), 5.0 * a.cov.trace().item<double>());
}

TEST(FeatureDistance, FrechetMatchesTheClosedFormOfDiagonalGaussians) {
  // Diagonal covariances commute: FD = ‖μ₁ − μ₂‖² + Σᵢ (√aᵢ − √bᵢ)².
  auto mu1 = torch::tensor({0.0, 1.0, -2.0, 0.5}, torch::kFloat64),
       mu2 = torch::tensor({1.0, 1.0, 0.0, 0.0}, torch::kFloat64);
  auto v1 = torch::tensor({1.0, 4.0, 0.25, 9.0}, torch::kFloat64),
       v2 = torch::tensor({4.0, 1.0, 1.0, 9.0}, torch::kFloat64);
  GaussianFit a{mu1, torch::diag(v1), 10}, b{mu2, torch::diag(v2), 10};
  const double expected = (mu1 - mu2).pow(2).sum().item<double>() + (v1.sqrt() - v2.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-12 * expected);
  EXPECT_NEAR(frechet_distance(b, a), expected, 1e-12 * expected);  // symmetric
}

TEST(FeatureDistance, FrechetMatchesScipyOnTheSameStatistics) {
  testing::ScratchDir dir("fid");
  auto a = fit_of(correlated(3000, 24, 0.0, 4)), b = fit_of(correlated(2500, 24, 0.3, 5) * 1.5);
  // The statistics as text, full precision; scipy computes ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 sqrtm(Σ₁Σ₂)).
  auto write = [&](const std::string& name, const torch::Tensor& t) {
    std::ofstream out(dir / name);
    out.precision(17);
    auto flat = t.contiguous().flatten();
    for (int64_t i = 0; i < flat.numel(); ++i) out << flat[i].item<double>() << "\n";
  };
  write("mu1", a.mean), write("cov1", a.cov), write("mu2", b.mean), write("cov2", b.cov);
  const std::string script =
      "import numpy as np, scipy.linalg as la, sys\n"
      "d = sys.argv[1]\n"
      "load = lambda n: np.loadtxt(d + '/' + n)\n"
      "m1, m2 = load('mu1'), load('mu2')\n"
      "c1, c2 = load('cov1').reshape(24, 24), load('cov2').reshape(24, 24)\n"
      "s = la.sqrtm(c1 @ c2).real\n"
      "print(repr(float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(s))))\n";
  testing::write_bytes(dir / "fid.py", script);
  auto r = testing::run_command("/usr/bin/python3 " + (dir / "fid.py") + " " + dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double scipy = std::stod(r.output);
  const double ours = frechet_distance(a, b);
  EXPECT_NEAR(ours, scipy, 1e-6 * std::abs(scipy)) << "gantry " << ours << " scipy " << scipy;
  EXPECT_GT(ours, 1.0);  // not a trivially small pair
}

TEST(FeatureDistance, KidIsUnbiasedOnKnownGaussians) {
  // Same distribution: the unbiased MMD² has mean 0; the V-statistic (with the diagonals) would not.
  auto gen = at::detail::createCPUGenerator(7);
  auto x = at::randn({4000, 16}, gen, torch::kFloat64), y = at::randn({4000, 16}, gen, torch::kFloat64);
  auto kid = kernel_distance(x, y, 200, 100, gen);
  EXPECT_EQ(kid.subset_size, 100);
  const double se = kid.std / std::sqrt(200.0);
  EXPECT_LT(std::abs(kid.mean), 3 * se) << "mean " << kid.mean << " se " << se;
  // The biased estimate on 100 rows: the diagonal terms add (E k(x,x) − E k(x,x')) · 2/n > 0.
  auto xs = x.narrow(0, 0, 100), ys = y.narrow(0, 0, 100);
  auto k = [](const torch::Tensor& u, const torch::Tensor& v) { return (u.matmul(v.t()) / 16 + 1).pow(3); };
  const double biased = (k(xs, xs).mean() + k(ys, ys).mean() - 2 * k(xs, ys).mean()).item<double>();
  EXPECT_GT(biased, 10 * se) << "the test could not tell a biased estimator from an unbiased one";
  // Against an element-by-element sum of the unbiased estimator on a small set.
  auto u = x.narrow(0, 0, 6), v = y.narrow(0, 0, 5) + 0.7;
  double xx = 0, yy = 0, xy = 0;
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j)
      if (i != j) xx += std::pow(u[i].dot(u[j]).item<double>() / 16 + 1, 3);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j)
      if (i != j) yy += std::pow(v[i].dot(v[j]).item<double>() / 16 + 1, 3);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 5; ++j) xy += std::pow(u[i].dot(v[j]).item<double>() / 16 + 1, 3);
  const double expected = xx / 30 + yy / 20 - 2 * xy / 30;
  EXPECT_NEAR(mmd2_unbiased(u, v), expected, 1e-10 * std::abs(expected));
  // Shifted Gaussians: clearly positive.
  auto shifted = kernel_distance(x, at::randn({4000, 16}, gen, torch::kFloat64) + 0.5, 50, 100, gen);
  EXPECT_GT(shifted.mean, 10 * shifted.std / std::sqrt(50.0));
}

}  // namespace
}  // namespace gantry
