// f-GAN divergences (models/fgan): the table's identities for every divergence, tensor == double,
// the variational lower bound and its tightness at T* = f'(p/q), and the 1-D Gaussian-mixture
// experiment's theta* (Nowozin et al. 2016, Table 3) by direct numerical minimisation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

#include "fgan/divergence.h"
#include "fgan/gauss_mixture.h"

namespace gantry::fgan {
namespace {

const double kLog2 = std::log(2.0);

std::string name_of(const ::testing::TestParamInfo<Kind>& info) {
  return divergence(info.param).name;
}

class EveryDivergence : public ::testing::TestWithParam<Kind> {
 protected:
  const Divergence& d() const { return divergence(GetParam()); }
};

// The table's GAN f = u log u - (u + 1) log(u + 1) is not normalised: f(1) = -log 4, which is why
// D_GAN = D_JS(as listed) - log 4 and can be negative. Every other f has f(1) = 0.
TEST_P(EveryDivergence, FOfOneIsZeroExceptTheTablesGan) {
  const double expected = d().kind == Kind::kGan ? -std::log(4.0) : 0.0;
  EXPECT_NEAR(d().f(1.0), expected, 1e-15) << d().name;
}

TEST_P(EveryDivergence, FPrimeAtOneMatchesTable) {
  const std::map<std::string, double> table = {{"kl", 1.0},     {"reverse_kl", -1.0}, {"pearson", 0.0},
                                               {"neyman", 0.0}, {"hellinger", 0.0},   {"js", 0.0},
                                               {"gan", -kLog2}, {"jeffrey", 0.0},     {"tv", 0.0}};
  ASSERT_TRUE(table.count(d().name)) << d().name;
  EXPECT_NEAR(d().f_prime(1.0), table.at(d().name), 1e-15);
  EXPECT_NEAR(d().f_prime_at_one, table.at(d().name), 1e-15);
  // f' agrees with a central difference of f (away from TV's kink at 1).
  for (double u : {0.3, 0.8, 1.7, 5.0}) {
    const double h = 1e-6;
    EXPECT_NEAR(d().f_prime(u), (d().f(u + h) - d().f(u - h)) / (2 * h), 1e-6) << "u=" << u;
  }
}

TEST_P(EveryDivergence, ActivationMapsIntoDomainOfConjugate) {
  const auto& dom = d().conjugate_domain;
  for (int i = 0; i <= 400; ++i) {
    const double v = -20.0 + 0.1 * i;
    const double t = d().activation(v);
    EXPECT_TRUE(dom.contains(t)) << d().name << ": g_f(" << v << ") = " << t << " not in " << dom.describe();
    EXPECT_TRUE(std::isfinite(d().conjugate(t))) << d().name << " v=" << v;
  }
  const auto t = d().activation_t(torch::linspace(-20, 20, 401, torch::kFloat64));
  for (int64_t i = 0; i < t.size(0); ++i) EXPECT_TRUE(dom.contains(t[i].item<double>()));
}

TEST_P(EveryDivergence, FenchelIdentityAtTheDerivative) {
  for (double u : {0.11, 0.25, 0.5, 0.9, 1.0, 1.3, 2.0, 4.0, 7.0, 9.9}) {
    const double t = d().f_prime(u);
    ASSERT_TRUE(d().conjugate_domain.contains(t)) << d().name << " u=" << u;
    if (d().kind == Kind::kPearson) {
      ASSERT_GE(t, -2.0);  // where t^2/4 + t is the true conjugate
    }
    const double rhs = u * t - d().f(u);
    EXPECT_NEAR(d().conjugate(t), rhs, 1e-12 * (1 + std::abs(rhs))) << d().name << " u=" << u;
  }
}

TEST_P(EveryDivergence, TensorVersionsEqualDoubleVersions) {
  const auto v = torch::linspace(-20, 20, 801, torch::kFloat64);
  const auto g = d().activation_t(v);
  const auto fstar = d().conjugate_t(g);
  const auto fused = d().conjugate_of_activation_t(v);
  for (int64_t i = 0; i < v.size(0); ++i) {
    const double vi = v[i].item<double>(), gi = d().activation(vi);
    EXPECT_NEAR(g[i].item<double>(), gi, 1e-8 * (1 + std::abs(gi))) << d().name << " v=" << vi;
    const double c = d().conjugate(gi);
    EXPECT_NEAR(fstar[i].item<double>(), c, 1e-8 * (1 + std::abs(c))) << d().name << " v=" << vi;
    // The fused f*(g_f(v)) is the stable form; composing in double loses ~e^v relative accuracy past |v| ~ 15.
    if (std::abs(vi) <= 15.0) {
      EXPECT_NEAR(fused[i].item<double>(), c, 1e-6 * (1 + std::abs(c))) << d().name << " v=" << vi;
    }
  }
  EXPECT_TRUE(torch::isfinite(fused).all().item<bool>());
}

// P = N(0, 1), Q = N(1, 1): closed forms where they exist, and the variational bound.
const QuadratureGrid kPairGrid{-12.0, 13.0, 20000};
double p01(double x) {
  return normal_pdf(x, 0.0, 1.0);
}
double q11(double x) {
  return normal_pdf(x, 1.0, 1.0);
}

TEST_P(EveryDivergence, VariationalLowerBoundHoldsAndIsTightAtOptimalT) {
  const double D = f_divergence(d(), p01, q11, kPairGrid);
  auto bound = [&](const std::function<double(double)>& T) {
    return simpson([&](double x) { return p01(x) * T(x) - q11(x) * d().conjugate(T(x)); }, kPairGrid);
  };
  const std::vector<std::pair<double, double>> linear = {{0.0, 0.0},  {0.5, -0.3}, {-1.0, 0.5},  {1.0, 1.0},
                                                         {-0.7, -1.}, {2.0, 0.0},  {-1.0, -0.5}, {0.3, 2.0}};
  for (auto [a, b] : linear) {
    const double lb = bound([&, a = a, b = b](double x) { return d().activation(a * x + b); });
    EXPECT_LE(lb, D + 1e-9) << d().name << " V(x) = " << a << " x + " << b;
  }
  // T* = f'(p/q), p/q = exp(1/2 - x).
  const double tight = bound([&](double x) { return d().f_prime(std::exp(0.5 - x)); });
  EXPECT_NEAR(tight, D, 1e-3) << d().name;
  EXPECT_NEAR(tight, D, 1e-8) << d().name << " (quadrature should make it tighter than the 1e-3 asked)";
}

TEST(FganDivergence, QuadratureMatchesClosedFormsForUnitGaussians) {
  auto D = [](const char* name) { return f_divergence(divergence_by_name(name), p01, q11, kPairGrid); };
  EXPECT_NEAR(D("kl"), 0.5, 1e-10);
  EXPECT_NEAR(D("reverse_kl"), 0.5, 1e-10);
  EXPECT_NEAR(D("pearson"), std::exp(1.0) - 1.0, 1e-10);
  EXPECT_NEAR(D("neyman"), std::exp(1.0) - 1.0, 1e-10);
  EXPECT_NEAR(D("hellinger"), 2.0 - 2.0 * std::exp(-1.0 / 8.0), 1e-10);
  EXPECT_NEAR(D("tv"), std::erf(0.5 / std::sqrt(2.0)), 1e-6);  // kink of |p - q| at x = 1/2
  EXPECT_NEAR(D("gan"), D("js") - std::log(4.0), 1e-10);       // D_GAN = D_JS(as listed) - log 4
  EXPECT_NEAR(D("jeffrey"), 1.0, 1e-10);                       // KL + reverse KL
}

TEST(FganDivergence, LookupByName) {
  for (Kind k : all_kinds()) {
    const auto& d = divergence(k);
    EXPECT_EQ(d.kind, k);
    EXPECT_EQ(&divergence_by_name(d.name), &d);
    EXPECT_FALSE(d.display_name.empty());
    EXPECT_FALSE(d.conjugate_domain.describe().empty());
  }
  EXPECT_EQ(all_kinds().size(), 9u);
  EXPECT_THROW(divergence_by_name("jensen"), std::invalid_argument);
  EXPECT_EQ(divergence_by_name("reverse_kl").conjugate_domain.describe(), "(-inf, 0)");
  EXPECT_EQ(divergence_by_name("tv").conjugate_domain.describe(), "[-0.5, 0.5]");
  EXPECT_FALSE(divergence_by_name("pearson").domain_note.empty());
}

INSTANTIATE_TEST_SUITE_P(Fgan, EveryDivergence, ::testing::ValuesIn(all_kinds()), name_of);

// ---- Lambert W (Jeffrey's conjugate) ----

// W(x) at known points (mpmath.lambertw at 40 digits, rounded), through the double and tensor versions.
TEST(LambertW, KnownValues) {
  const std::vector<std::pair<double, double>> at_log_x = {
      {std::log(1.0), 0.5671432904097838},       // the omega constant
      {1.0, 1.0},                                // W(e) = 1
      {std::log(10.0), 1.7455280027406994},      //
      {std::log(1e-10), 9.999999999000000e-11},  // W(x) = x - x^2 + ... for small x
      {100.0, 95.44148664557583},                // W(e^100)
      {-700.0, 9.8596765437597709e-305},         // W(e^-700) = e^-700 (1 - e^-700 ...)
      {1e6, 999986.1845032576}};                 // W(e^1e6): e^1e6 overflows a double
  for (const auto& [y, w] : at_log_x) {
    // log w to a few ulps; w = exp(log w) then carries log w's rounding: relative (1 + |log w|) ulps.
    const double log_w = std::log(w), tolerance = 4e-16 * (1 + std::abs(log_w)) * w;
    EXPECT_NEAR(lambert_log_w_exp(y), log_w, 4e-16 * (1 + std::abs(log_w))) << "y = " << y;
    EXPECT_NEAR(lambert_w_exp(y), w, tolerance) << "y = " << y;
    EXPECT_NEAR(lambert_w_exp(torch::tensor({y}, torch::kFloat64)).item<double>(), w, tolerance) << "y = " << y;
  }
}

// s = log W(e^y) solves s + e^s = y to double precision across the whole range of y: one more Newton step
// would move it by at most 2 ulps. The tensor version agrees (its exp may differ from std::exp by an ulp);
// float32 in, float32 out.
TEST(LambertW, SolvesItsEquationFromMinus740ToTenToThe300) {
  std::vector<double> ys;
  for (double y = -740; y <= 740; y += 0.37) ys.push_back(y);
  for (double y = 1e3; y < 1e300; y *= 7.3) ys.push_back(y);
  const auto t = lambert_log_w_exp(torch::tensor(ys, torch::kFloat64));
  for (size_t i = 0; i < ys.size(); ++i) {
    const double y = ys[i], s = lambert_log_w_exp(y), ulps = 4.5e-16 * std::max(1.0, std::abs(s));
    EXPECT_LE(std::abs((s + std::exp(s) - y) / (1 + std::exp(s))), ulps) << "y = " << y;
    EXPECT_NEAR(t[static_cast<int64_t>(i)].item<double>(), s, ulps) << "y = " << y;
  }
  const auto f32 = lambert_w_exp(torch::tensor({-80.0f, 0.0f, 1.0f, 80.0f}));
  EXPECT_EQ(f32.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(f32[2].item<float>(), 1.0f, 1e-7);
}

// d W(e^y) / dy = W / (1 + W), against central differences, from the autograd graph.
TEST(LambertW, GradientMatchesFiniteDifferences) {
  for (double y : {-30.0, -3.0, -0.5, 0.0, 1.0, 2.5, 10.0, 100.0, 1e4}) {
    auto x = torch::tensor({y}, torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true));
    lambert_w_exp(x).sum().backward();
    const double h = 1e-5 * (1 + std::abs(y)), w = lambert_w_exp(y);
    const double numeric = (lambert_w_exp(y + h) - lambert_w_exp(y - h)) / (2 * h);
    EXPECT_NEAR(x.grad().item<double>(), numeric, 1e-8 * (1 + numeric)) << "y = " << y;
    EXPECT_NEAR(x.grad().item<double>(), w / (1 + w), 1e-15) << "y = " << y;
  }
}

// Jeffrey's conjugate against the table's form W(e^{1-t}) + 1/W(e^{1-t}) + t - 2, also where that form's
// e^{1-t} would overflow (t < -709), and its gradient f*'(t) = 1/W(e^{1-t}) in float32 out to t = 80, where
// it is e^79 ~ 2e34 (composing W's own gradient, -(1/W^2 + 1/W) W/(1+W), would overflow past t ~ 45).
TEST(LambertW, JeffreyConjugateBeyondTheRangeOfExp) {
  const auto& j = divergence(Kind::kJeffrey);
  for (double t : {-1e6, -1000.0, -5.0, 0.0, 1e-9, 5.0, 700.0}) {
    const double w = lambert_w_exp(1 - t), table_form = w + 1 / w + t - 2;
    EXPECT_NEAR(j.conjugate(t), table_form, 1e-15 * (w + 1 / w + std::abs(t))) << "t = " << t;
    // 1/w is the u that attains sup_u ut - f(u): f'(1/w) = t.
    EXPECT_NEAR(j.f_prime(1 / w), t, 1e-12 * (1 + std::abs(t))) << "t = " << t;
  }
  auto v = torch::tensor({-1e4f, -10.0f, 0.0f, 10.0f, 80.0f}).requires_grad_(true);
  const auto f = j.conjugate_of_activation_t(v);
  f.sum().backward();
  EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  for (int64_t i = 0; i < v.size(0); ++i) {
    const double u = 1 / lambert_w_exp(1 - v[i].item<double>());
    EXPECT_NEAR(v.grad()[i].item<double>(), u, 1e-5 * u) << "v = " << v[i].item<double>();
  }
}

// ---- the 1-D experiment (Table 3, theta* row) ----

TEST(FganGaussMixture, MixtureIsADensity) {
  EXPECT_NEAR(simpson([](double x) { return mixture_pdf(paper_mixture(), x); }, QuadratureGrid{}), 1.0, 1e-12);
}

struct PaperRow {
  const char* name;
  double mu, sigma, divergence;
};

TEST(FganGaussMixture, FitReproducesPaperThetaStar) {
  const PaperRow rows[] = {{"kl", 1.0100, 1.8308, 0.2831},
                           {"reverse_kl", 1.5782, 1.6319, 0.2480},
                           {"pearson", 0.5737, 1.9274, 0.6457},
                           {"js", 1.3070, 1.7542, 0.1280},
                           {"jeffrey", 1.3218, 1.7034, 0.5705}};
  for (const auto& row : rows) {
    const auto fit = fit_gaussian(divergence_by_name(row.name));
    std::printf("%-10s mu* %.4f (paper %.4f)  sigma* %.4f (paper %.4f)  D %.4f (paper %.4f)  [%d evals]\n", row.name,
                fit.mu, row.mu, fit.sigma, row.sigma, fit.divergence, row.divergence, fit.evaluations);
    // Asked: ~1e-2. What holds: 1e-3 (largest gaps: reverse KL sigma 7e-4, D 2e-4; Jeffrey = KL + reverse
    // KL sigma 5e-4, D 3e-4; see README).
    EXPECT_NEAR(fit.mu, row.mu, 1e-3) << row.name;
    EXPECT_NEAR(fit.sigma, row.sigma, 1e-3) << row.name;
    EXPECT_NEAR(fit.divergence, row.divergence, 1e-3) << row.name;
  }
}

// The paper's JS value 0.1280 is in the table's convention (twice the textbook JS): the textbook
// JS at theta* is half of it, 0.0640, which does not match.
TEST(FganGaussMixture, PaperJsValueUsesTheTablesTwiceTextbookConvention) {
  const auto fit = fit_gaussian(divergence_by_name("js"));
  EXPECT_NEAR(fit.divergence, 0.1280, 1e-3);
  EXPECT_GT(std::abs(0.5 * fit.divergence - 0.1280), 0.05);
  // f_GAN(u) = f_JS(u) - (u + 1) log 2, and ∫ q (p/q + 1) log 2 = log 4: D_GAN = D_JS - log 4, same minimiser.
  const auto gan = fit_gaussian(divergence_by_name("gan"));
  EXPECT_NEAR(gan.mu, fit.mu, 1e-4);
  EXPECT_NEAR(gan.sigma, fit.sigma, 1e-4);
  EXPECT_NEAR(gan.divergence, fit.divergence - std::log(4.0), 1e-6);
}

TEST(FganGaussMixture, PrintGroundTruthForAllDivergences) {
  std::printf("| divergence | mu* | sigma* | D_f(P||Q*) |\n");
  for (Kind k : all_kinds()) {
    const auto& d = divergence(k);
    const auto fit = fit_gaussian(d);
    std::printf("| %-10s | %.4f | %.4f | %.4f |\n", d.name.c_str(), fit.mu, fit.sigma, fit.divergence);
    EXPECT_GT(fit.sigma, 0.0);
    EXPECT_GE(fit.divergence, k == Kind::kGan ? -std::log(4.0) : 0.0) << d.name;
    // theta* is a minimum: nudging it does not lower D.
    auto P = [](double x) { return mixture_pdf(paper_mixture(), x); };
    for (auto [dm, ds] : {std::pair{1e-2, 0.0}, {-1e-2, 0.0}, {0.0, 1e-2}, {0.0, -1e-2}}) {
      auto Q = [&, dm = dm, ds = ds](double x) { return normal_pdf(x, fit.mu + dm, fit.sigma + ds); };
      EXPECT_GE(f_divergence(d, P, Q, QuadratureGrid{}), fit.divergence - 1e-12) << d.name;
    }
  }
}

}  // namespace
}  // namespace gantry::fgan
