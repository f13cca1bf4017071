#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "eval/likelihood.h"
#include "vae/vae_model.h"

namespace gantry::vae {
namespace {

// One generator per image (what VaeImpl::iwae draws from), seeded seed, seed + 1, ...
std::vector<at::Generator> image_generators(const torch::Tensor& x, uint64_t seed) {
  std::vector<at::Generator> gens;
  for (int64_t i = 0; i < x.size(0); ++i) gens.push_back(at::detail::createCPUGenerator(seed + i));
  return gens;
}

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
    EXPECT_EQ(out.recon.sizes(), x.sizes());  // one output per sub-pixel
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

VaeOptions bernoulli_options() {
  VaeOptions o;
  o.likelihood = Likelihood::kBernoulli;
  return o;
}

TEST(VaeModel, KlIsTheClosedFormOfTwoGaussians) {
  Vae model(bernoulli_options());
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
  Vae bern(bernoulli_options());
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

TEST(VaeModel, DiscreteDecodersHaveTheirOutputsAndImages) {
  for (auto [lik, k] : {std::pair{Likelihood::kLogistic, 2}, std::pair{Likelihood::kCategorical, 256}}) {
    for (Arch arch : {Arch::kMlp, Arch::kConv}) {
      VaeOptions o;
      o.arch = arch;
      o.likelihood = lik;
      o.height = o.width = arch == Arch::kMlp ? 28 : 32;
      o.hidden = arch == Arch::kMlp ? 32 : 8;
      o.latent = 4;
      Vae model(o);
      auto x = torch::rand({2, 1, o.height, o.width}) * 2 - 1;
      auto out = model->forward(x);
      EXPECT_EQ(out.recon.sizes(), (std::vector<int64_t>{2, k, o.height, o.width}));
      auto img = model->mean_image(out.recon);
      EXPECT_EQ(img.sizes(), x.sizes());
      EXPECT_LE(img.max().item<float>(), 1.0f);
      EXPECT_GE(img.min().item<float>(), -1.0f);
      EXPECT_TRUE(std::isfinite(model->elbo(x, out).loss.item<double>()));
    }
  }
}

// Zero the decoder's last layer: every z decodes to the same output (uniform logits; logistic mean 0,
// log-scale 0). With q = prior the KL is 0 and the ELBO is −log p(x) of that fixed decoder.
void zero_last_decoder_layer(Vae& model) {
  torch::NoGradGuard no_grad;
  auto params = model->named_parameters();
  std::string last_w, last_b;
  for (const auto& p : params)
    if (p.key().rfind("decoder.", 0) == 0) (p.key().find("weight") != std::string::npos ? last_w : last_b) = p.key();
  params[last_w].zero_();
  params[last_b].zero_();
}

TEST(VaeModel, UniformCategoricalDecoderScoresExactlyEightBitsPerDim) {
  VaeOptions o;
  o.likelihood = Likelihood::kCategorical;
  o.hidden = 16;
  o.latent = 4;
  Vae model(o);
  zero_last_decoder_layer(model);
  auto x = torch::randint(0, 256, {3, 28, 28, 1}, torch::kUInt8);
  auto xf = (x.permute({0, 3, 1, 2}).to(torch::kFloat32) * (2.0 / 255.0)) - 1;
  VaeOutput out{model->decode(torch::randn({3, 4})), torch::zeros({3, 4}), torch::zeros({3, 4})};
  auto terms = model->elbo(xf, out);
  EXPECT_NEAR(terms.kl.item<double>(), 0.0, 1e-9);
  EXPECT_NEAR(bits_per_dim(terms.loss.item<double>(), 784), 8.0, 1e-6);
}

// A VAE with one latent dimension on 4x4 images, trained briefly on a fixed set so that the posterior is
// informative but not exact; its exact log p(x) = log ∫ p(x|z) N(z; 0, 1) dz by quadrature on a grid.
struct OneLatentVae {
  Vae model{nullptr};
  torch::Tensor x;  // (64, 1, 4, 4), on the 8-bit grid
  explicit OneLatentVae(Likelihood lik) {
    torch::manual_seed(11);
    VaeOptions o;
    o.likelihood = lik;
    o.height = o.width = 4;
    o.hidden = 32;
    o.latent = 1;
    model = Vae(o);
    // A brightness that varies continuously, with pixel noise: one latent explains most of it.
    auto level = torch::rand({64, 1, 1, 1}) * 1.6 - 0.8;
    auto ramp = torch::linspace(-0.3, 0.3, 16).view({1, 1, 4, 4});
    auto raw = (level + ramp * level + 0.15 * torch::randn({64, 1, 4, 4})).clamp(-1, 1);
    x = pixel_values(raw).to(torch::kFloat32) * (2.0 / 255.0) - 1;
    torch::optim::Adam adam(model->parameters(), 3e-3);
    for (int i = 0; i < 100; ++i) {  // short: q(z|x) still trails the true posterior by about a nat
      adam.zero_grad();
      model->elbo(x, model->forward(x)).loss.backward();
      adam.step();
    }
  }
  torch::Tensor exact_log_px() {
    torch::NoGradGuard no_grad;
    const int64_t grid = 20001;
    auto z = torch::linspace(-8, 8, grid, torch::kFloat64).view({grid, 1});
    const double dz = 16.0 / (grid - 1);
    auto out = model->decode(z.to(torch::kFloat32));
    auto log_prior = -0.5 * z.squeeze(1).pow(2) - 0.5 * std::log(2 * M_PI);
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < x.size(0); ++i) {
      auto xi = x[i].unsqueeze(0).expand({grid, 1, 4, 4});
      rows.push_back(torch::logsumexp(-model->nll(xi, out) + log_prior, 0) + std::log(dz));
    }
    return torch::stack(rows);
  }
};

TEST(VaeModel, IwaeRisesWithKTowardTheExactLikelihood) {
  OneLatentVae v(Likelihood::kLogistic);
  torch::NoGradGuard no_grad;
  const double log_px = v.exact_log_px().mean().item<double>();
  // The ELBO with the closed-form KL, averaged over many posterior draws.
  double elbo = 0;
  for (int i = 0; i < 400; ++i) elbo -= v.model->elbo(v.x, v.model->forward(v.x)).loss.item<double>() / 400;
  auto gens = image_generators(v.x, 5);
  std::vector<double> bound;
  for (int64_t k : {1, 10, 100, 3000}) bound.push_back(v.model->iwae(v.x, k, gens).mean().item<double>());
  SCOPED_TRACE("elbo " + std::to_string(elbo) + " iwae k=1/10/100/3000 " + std::to_string(bound[0]) + " " +
               std::to_string(bound[1]) + " " + std::to_string(bound[2]) + " " + std::to_string(bound[3]) + " exact " +
               std::to_string(log_px));
  const double gap = log_px - elbo;
  ASSERT_GT(gap, 0.3) << "the test needs a posterior gap to see";
  // k = 1 is the ELBO with a sampled KL: equal in expectation (averaged over 200 draws here).
  double k1 = 0;
  for (int i = 0; i < 200; ++i) k1 += v.model->iwae(v.x, 1, gens).mean().item<double>() / 200;
  EXPECT_NEAR(k1, elbo, 0.1 * gap);
  for (size_t i = 2; i < bound.size(); ++i) EXPECT_GT(bound[i], bound[i - 1]);
  EXPECT_GT(bound[1], elbo);
  EXPECT_LE(bound.back(), log_px + 0.01 * gap);  // a lower bound (to sampling noise)
  EXPECT_GT(bound.back(), log_px - 0.1 * gap);   // and within a tenth of the gap at k = 3000
}

TEST(VaeModel, IwaeEqualsElboWhenThePosteriorIsExact) {
  // The decoder ignores z and q(z|x) = prior: every importance weight is p(x), for every k.
  VaeOptions o;
  o.likelihood = Likelihood::kLogistic;
  o.hidden = 16;
  o.latent = 3;
  Vae model(o);
  zero_last_decoder_layer(model);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().rfind("to_", 0) == 0) p.value().zero_();
  }
  auto x = torch::rand({4, 1, 28, 28}) * 2 - 1;
  auto gens = image_generators(x, 1);
  auto elbo = -model->elbo(x, model->forward(x)).loss.item<double>();
  for (int64_t k : {1, 7, 300})
    EXPECT_NEAR(model->iwae(x, k, gens, 64).mean().item<double>(), elbo, 1e-3 * std::abs(elbo));
}

}  // namespace
}  // namespace gantry::vae
