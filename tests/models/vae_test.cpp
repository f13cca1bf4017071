#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "vae/vae_model.h"

namespace gantry::vae {
namespace {

TEST(VaeModel, ShapesForMlpAndConvArchitectures) {
  struct Case {
    Arch arch;
    int64_t c, hw;
  };
  for (Case k : {Case{Arch::kMlp, 1, 28}, Case{Arch::kConv, 1, 32}, Case{Arch::kConv, 3, 64}}) {
    VaeOptions o;
    o.arch = k.arch;
    o.channels = k.c;
    o.height = o.width = k.hw;
    o.hidden = k.arch == Arch::kMlp ? 400 : 16;
    o.latent = 8;
    o.likelihood = k.c == 1 ? Likelihood::kBernoulli : Likelihood::kGaussian;
    Vae model(o);
    auto x = torch::rand({5, k.c, k.hw, k.hw}) * 2 - 1;
    auto out = model->forward(x);
    EXPECT_EQ(out.recon.sizes(), x.sizes());
    EXPECT_EQ(out.mu.sizes(), (std::vector<int64_t>{5, 8}));
    auto img = model->mean_image(out.recon);
    EXPECT_LE(img.max().item<float>(), 1.0f);
    EXPECT_GE(img.min().item<float>(), -1.0f);
    auto terms = model->elbo(x, out);
    EXPECT_TRUE(std::isfinite(terms.loss.item<double>()));
    EXPECT_NEAR(terms.loss.item<double>(), terms.recon.item<double>() + terms.kl.item<double>(), 1e-3);
  }
  VaeOptions bad;
  bad.arch = Arch::kConv;  // 28x28 has no conv stack
  EXPECT_THROW(Vae{bad}, std::invalid_argument);
}

TEST(VaeModel, KlIsTheClosedFormOfTwoGaussians) {
  Vae model(VaeOptions{});
  auto x = torch::zeros({2, 1, 28, 28});
  VaeOutput out{torch::zeros({2, 1, 28, 28}), torch::zeros({2, 20}), torch::zeros({2, 20})};
  EXPECT_NEAR(model->elbo(x, out).kl.item<double>(), 0.0, 1e-9);  // q = prior
  out.mu = torch::ones({2, 20});
  out.logvar = torch::full({2, 20}, std::log(4.0));
  // KL(N(1, 4) || N(0, 1)) = 0.5 (4 + 1 - 1 - ln 4) per dimension
  EXPECT_NEAR(model->elbo(x, out).kl.item<double>(), 20 * 0.5 * (4.0 + 1.0 - 1.0 - std::log(4.0)), 1e-4);
}

TEST(VaeModel, LikelihoodsMatchTheirDensities) {
  torch::manual_seed(3);
  auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
  auto logits = torch::randn({3, 1, 28, 28});
  VaeOutput out{logits, torch::zeros({3, 20}), torch::zeros({3, 20})};
  Vae bern(VaeOptions{});
  auto p = torch::sigmoid(logits), t = (x + 1) / 2;
  double expected = -(t * torch::log(p) + (1 - t) * torch::log(1 - p)).sum().item<double>() / 3;
  EXPECT_NEAR(bern->elbo(x, out).recon.item<double>(), expected, 1e-2);

  VaeOptions g;
  g.likelihood = Likelihood::kGaussian;
  Vae gauss(g);
  // log_sigma2 starts at 0: unit variance, so NLL = sum 0.5 log(2 pi) + 0.5 (x - mean)^2
  double gexp = (0.5 * std::log(2 * M_PI) + 0.5 * (x - logits).pow(2)).sum().item<double>() / 3;
  EXPECT_NEAR(gauss->elbo(x, out).recon.item<double>(), gexp, 1e-2);
  EXPECT_EQ(gauss->named_parameters().contains("log_sigma2"), true);
}

}  // namespace
}  // namespace gantry::vae
