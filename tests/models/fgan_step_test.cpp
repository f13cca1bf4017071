// The single-step update's gradients against finite differences of F, for every divergence; the
// recipe's collectives per step; the 1-D experiment end to end.
#include "fgan/fgan_step.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/errors.h"
#include "fgan/fgan_model.h"
#include "fgan/gauss_mixture.h"
#include "fgan/mixture_source.h"
#include "models/fgan_testing.h"
#include "support/testing.h"

namespace gantry::fgan {
namespace {

using gantry::testing::fgan_config;
using gantry::testing::FganRun;
using gantry::testing::one_bucket;

// A 1-D problem in double precision: G = N(mu, sigma) with mu 0.8, sigma 1.3; V a small tanh MLP.
struct Problem {
  GaussianGenerator g{0.8, 1.3};
  MlpVariational v{nullptr};
  torch::Tensor real, z;

  Problem() {
    torch::manual_seed(7);
    MlpVariationalOptions o;
    o.in = 1;
    o.hidden = 6;
    o.activation = "tanh";
    o.init_scale = 0.4;
    v = MlpVariational(o);
    g->to(torch::kFloat64);
    v->to(torch::kFloat64);
    real = sample_mixture(paper_mixture(), 64, at::detail::getDefaultCPUGenerator()).to(torch::kFloat64).view({-1, 1});
    z = torch::randn({64, 1}, torch::kFloat64);
  }
  Function V() {
    return [this](const torch::Tensor& x) { return v->forward(x); };
  }
  // F(theta, omega) on the fixed batch, and the practical generator objective E_Q[g_f(V(G(z)))].
  double F(const Divergence& d) {
    torch::NoGradGuard no_grad;
    return objective(d, v->forward(real), v->forward(g->forward(z))).F.item<double>();
  }
  double practical(const Divergence& d) {
    torch::NoGradGuard no_grad;
    return d.activation_t(v->forward(g->forward(z))).mean().item<double>();
  }
  std::vector<torch::Tensor> params(bool generator) { return generator ? g->parameters() : v->parameters(); }
  void zero_grad() {
    for (auto& p : g->parameters()) p.mutable_grad() = torch::Tensor();
    for (auto& p : v->parameters()) p.mutable_grad() = torch::Tensor();
  }
};

// Central finite difference of fn with respect to every element of `params`.
std::vector<double> numeric_grad(std::vector<torch::Tensor> params, const std::function<double()>& fn) {
  std::vector<double> out;
  const double h = 1e-6;
  for (auto& p : params) {
    auto flat = p.detach().view({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double x = flat[i].item<double>();
      flat[i] = x + h;
      const double up = fn();
      flat[i] = x - h;
      const double down = fn();
      flat[i] = x;
      out.push_back((up - down) / (2 * h));
    }
  }
  return out;
}

std::vector<double> grads(const std::vector<torch::Tensor>& params) {
  std::vector<double> out;
  for (const auto& p : params) {
    auto g = p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, torch::kFloat64);
    for (int64_t i = 0; i < g.numel(); ++i) out.push_back(g[i].item<double>());
  }
  return out;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double sign,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1e-12;
  for (double w : want) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], sign * want[i], 1e-6 * scale + 1e-9) << what << " element " << i;
}

class SingleStep : public ::testing::TestWithParam<Kind> {};

TEST_P(SingleStep, OneBackwardGivesMinusGradOmegaAndPlusGradThetaOfTheSameF) {
  const Divergence& d = divergence(GetParam());
  Problem p;
  auto dF_omega = numeric_grad(p.params(false), [&] { return p.F(d); });
  auto dF_theta = numeric_grad(p.params(true), [&] { return p.F(d); });
  single_step_backward(d, GeneratorObjective::kSaddle, p.V(), p.real, p.g->forward(p.z));
  expect_close(grads(p.params(false)), dF_omega, -1.0, d.name + " V");
  expect_close(grads(p.params(true)), dF_theta, +1.0, d.name + " G");

  // An optimizer minimising "its gradient" then moves omega up and theta down the same F.
  const double F0 = p.F(d), eta = 1e-4;
  {
    torch::NoGradGuard no_grad;
    for (auto& w : p.params(false)) w.sub_(eta * w.grad());
  }
  const double F_omega = p.F(d);
  {
    torch::NoGradGuard no_grad;
    for (auto& w : p.params(false)) w.add_(eta * w.grad());  // back to omega
    for (auto& t : p.params(true)) t.sub_(eta * t.grad());
  }
  const double F_theta = p.F(d);
  EXPECT_GT(F_omega, F0) << d.name;
  EXPECT_LT(F_theta, F0) << d.name;
}

TEST_P(SingleStep, PracticalObjectiveGivesTheGeneratorMinusGradOfEQgf) {
  const Divergence& d = divergence(GetParam());
  Problem p;
  auto dF_omega = numeric_grad(p.params(false), [&] { return p.F(d); });
  auto dP_theta = numeric_grad(p.params(true), [&] { return p.practical(d); });
  single_step_backward(d, GeneratorObjective::kPractical, p.V(), p.real, p.g->forward(p.z));
  expect_close(grads(p.params(false)), dF_omega, -1.0, d.name + " V");
  expect_close(grads(p.params(true)), dP_theta, -1.0, d.name + " G");
}

INSTANTIATE_TEST_SUITE_P(AllDivergences, SingleStep, ::testing::ValuesIn(all_kinds()),
                         [](const ::testing::TestParamInfo<Kind>& p) { return divergence(p.param).name; });

TEST(SingleStep, ScaleLossScalesBothPlayers) {
  const Divergence& d = divergence(Kind::kKl);
  Problem p;
  single_step_backward(d, GeneratorObjective::kPractical, p.V(), p.real, p.g->forward(p.z));
  auto full_v = grads(p.params(false)), full_g = grads(p.params(true));
  p.zero_grad();
  single_step_backward(d, GeneratorObjective::kPractical, p.V(), p.real, p.g->forward(p.z),
                       [](const torch::Tensor& l) { return l / 4; });
  auto quarter_v = grads(p.params(false)), quarter_g = grads(p.params(true));
  for (size_t i = 0; i < full_v.size(); ++i) EXPECT_NEAR(quarter_v[i], full_v[i] / 4, 1e-12);
  for (size_t i = 0; i < full_g.size(); ++i) EXPECT_NEAR(quarter_g[i], full_g[i] / 4, 1e-12);
}

// A batch of this rank's share of the global batch at a position, as the trainer hands it over.
Batch image_batch(int64_t global, int64_t step, int rank, int world, const DataShape& s) {
  auto gen = batch_generator(1000, 0, DataPosition{0, step});
  auto all = at::rand({global, s.channels, s.height, s.width}, gen, torch::kFloat32) * 2 - 1;
  const int64_t local = global / world;
  return Batch{all.narrow(0, rank * local, local).contiguous(), {}, DataPosition{0, step * global}};
}

TEST(FganRecipe, SingleStepIsOneCollectiveAlternatingIsTwo) {
  auto world = make_world_of_one();
  const DataShape shape{1, 8, 8, false};
  for (const char* objective : {"saddle", "practical"}) {
    for (const char* update : {"single", "alternating"}) {
      Config c = fgan_config({{"fgan.model", "mlp"},
                              {"fgan.g_hidden", "32"},
                              {"fgan.v_hidden", "16"},
                              {"fgan.update", update},
                              {"fgan.generator_objective", objective},
                              {"fgan.divergence", "kl"}});
      FganRun run(c, *world, shape, one_bucket());
      const auto before = run.parameters();
      for (int64_t step = 0; step < 3; ++step) run.train_step(image_batch(16, step, 0, 1, shape));
      EXPECT_EQ(run.counting.all_reduces, std::string(update) == "single" ? 3 : 6) << update << " " << objective;
      EXPECT_GT((run.parameters() - before).abs().max().item<double>(), 0.0);
      EXPECT_TRUE(torch::isfinite(run.parameters()).all().item<bool>());
    }
  }
}

TEST(FganRecipe, WithDefaultBucketsTheSingleStepIsOneReductionPass) {
  // Default buckets (first 1 MiB, then 25 MiB): the single step's collectives are exactly the G+V
  // group's buckets, launched once; alternating launches V's and G's buckets, one pass each.
  auto world = make_world_of_one();
  const DataShape shape{1, 28, 28, false};
  for (const char* update : {"single", "alternating"}) {
    Config c = fgan_config({{"fgan.model", "mlp"}, {"fgan.update", update}});
    GradSyncOptions o;
    o.overlap = false;
    FganRun run(c, *world, shape, o);
    run.train_step(image_batch(8, 0, 0, 1, shape));
    const bool single = std::string(update) == "single";
    const size_t expected = single ? run.sync.bucket_bytes("G+V").size()
                                   : run.sync.bucket_bytes("G").size() + run.sync.bucket_bytes("V").size();
    EXPECT_EQ(static_cast<size_t>(run.counting.all_reduces), expected) << update;
    EXPECT_EQ(expected, single ? 2u : 3u) << update;  // 10.5 MiB: 1 MiB + the rest; V alone fits 1 MiB
  }
}

TEST(FganRecipe, FirstVariationalStepIsTheSameInBothModes) {
  // Both modes step V on -grad_omega F at the same (theta_0, omega_0): after one step the variational
  // functions agree exactly; the generators differ (alternating steps G against omega_1).
  auto world = make_world_of_one();
  const DataShape shape{1, 8, 8, false};
  std::vector<torch::Tensor> v_after, g_after;
  for (const char* update : {"single", "alternating"}) {
    Config c =
        fgan_config({{"fgan.model", "mlp"}, {"fgan.g_hidden", "32"}, {"fgan.v_hidden", "16"}, {"fgan.update", update}});
    FganRun run(c, *world, shape, one_bucket());
    run.train_step(image_batch(16, 0, 0, 1, shape));
    auto nets = run.recipe->networks();
    auto flat = [](const std::shared_ptr<torch::nn::Module>& m) {
      std::vector<torch::Tensor> ps;
      for (auto& p : m->parameters()) ps.push_back(p.detach().reshape({-1}));
      return torch::cat(ps);
    };
    g_after.push_back(flat(nets[0].second));
    v_after.push_back(flat(nets[1].second));
  }
  EXPECT_TRUE(torch::equal(v_after[0], v_after[1]));
  EXPECT_FALSE(torch::equal(g_after[0], g_after[1]));
}

TEST(FganRecipe, DcganNetworksTrainOnImagesAndSampleGrids) {
  // fgan.model dcgan (the LSUN setting) at 32x32 with narrow networks: one single step, one collective,
  // samples in [-1, 1] at the data's shape; the MLP pair samples at its shape too.
  auto world = make_world_of_one();
  for (const char* model : {"dcgan", "mlp"}) {
    const DataShape shape = std::string(model) == "dcgan" ? DataShape{3, 32, 32, false} : DataShape{1, 28, 28, false};
    Config c = fgan_config({{"fgan.model", model},
                            {"fgan.g_width", "8"},
                            {"fgan.d_width", "8"},
                            {"fgan.g_hidden", "64"},
                            {"fgan.v_hidden", "32"},
                            {"fgan.divergence", "hellinger"},
                            {"fgan.generator_objective", "practical"},
                            {"train.clip_grad_norm", "1.0"}});
    FganRun run(c, *world, shape, one_bucket());
    auto losses = run.train_step(image_batch(8, 0, 0, 1, shape));
    EXPECT_EQ(run.counting.all_reduces, 1) << model;
    EXPECT_EQ(losses.front().first, "F");
    EXPECT_TRUE(std::isfinite(losses.front().second.item<double>()));
    std::vector<torch::Tensor> before;  // sampling (BatchNorm in training mode) leaves no trace in the statistics
    for (const auto& b : run.recipe->networks()[0].second->buffers()) before.push_back(b.clone());
    at::Generator gen = keyed_generator(0, 1);
    auto x = run.recipe->sample(5, gen);
    size_t i = 0;
    for (const auto& b : run.recipe->networks()[0].second->buffers())
      EXPECT_TRUE(torch::equal(b, before[i++])) << model;
    EXPECT_FALSE(before.empty());
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, shape.channels, shape.height, shape.width})) << model;
    EXPECT_LE(x.abs().max().item<double>(), 1.0);
  }
  Config bad = fgan_config({{"fgan.model", "dcgan"}});
  EXPECT_THROW(FganRun(bad, *world, DataShape{1, 28, 28, false}), UsageError);  // DCGAN needs 32 or 64
}

// The MNIST pair's linear layers: weights U(-scale, scale) (pylearn2's `irange`, Goodfellow et al.'s
// mnist.yaml): none beyond the scale, standard deviation scale/sqrt(3), half of them inside scale/2 (a
// normal of that standard deviation has 61% there), biases 0. Scale 0 keeps LibTorch's default.
std::vector<torch::nn::LinearImpl*> linear_layers(torch::nn::Module& net) {
  std::vector<torch::nn::LinearImpl*> out;
  for (const auto& m : net.modules(/*include_self=*/false))
    if (auto* l = m->as<torch::nn::LinearImpl>()) out.push_back(l);
  return out;
}

TEST(FganModel, MlpWeightsAreUniformWithinTheirScale) {
  torch::manual_seed(3);
  MlpGenerator g(MlpGeneratorOptions{});
  MlpVariational v(MlpVariationalOptions{});
  for (const auto& [net, scale] : {std::pair<torch::nn::Module*, double>{g.get(), 0.05}, {v.get(), 0.005}}) {
    const auto layers = linear_layers(*net);
    EXPECT_EQ(layers.size(), 3u);
    for (size_t i = 0; i < layers.size(); ++i) {
      auto* l = layers[i];
      const auto w = l->weight.detach().to(torch::kFloat64);
      const std::string what = "scale " + std::to_string(scale) + ", linear layer " + std::to_string(i);
      EXPECT_EQ(l->bias.abs().max().item<double>(), 0.0) << what;
      EXPECT_LE(w.abs().max().item<double>(), scale) << what;
      if (w.numel() < 10000) continue;  // V's last layer: 240 weights, too few for the moments below
      EXPECT_GT(w.abs().max().item<double>(), 0.999 * scale) << what;
      EXPECT_NEAR(w.std().item<double>(), scale / std::sqrt(3.0), 0.01 * scale / std::sqrt(3.0)) << what;
      EXPECT_NEAR((w.abs() < 0.5 * scale).to(torch::kFloat64).mean().item<double>(), 0.5, 0.01) << what;
    }
  }
  MlpVariationalOptions library_default;
  library_default.init_scale = 0;
  MlpVariational d(library_default);
  for (auto* l : linear_layers(*d)) EXPECT_GT(l->bias.abs().max().item<double>(), 0.0);
}

// eval_F_var is the sampling variance of eval_F: over repeated evaluations on fresh held-out and generated
// samples, eval_F spreads by what eval_F_var says (300 repeats: the spread's own error is 8%).
TEST(FganRecipe, EvalFVarianceIsTheSpreadOfEvalFOverFreshSamples) {
  auto world = make_world_of_one();
  for (const char* div : {"kl", "pearson", "jeffrey"}) {
    Config c = fgan_config(
        {{"fgan.model", "gaussian"}, {"fgan.v_hidden", "16"}, {"fgan.v_init", "0.5"}, {"fgan.divergence", div}});
    FganRun run(c, *world, {1, 1, 1, false}, one_bucket());
    MixtureSource held_out(paper_mixture(), SourceSpec{0, 1, 256, 9}, 1, {});
    std::vector<double> F, var;
    for (int i = 0; i < 300; ++i) {  // fresh generated samples: another key each time
      for (const auto& [key, value] : run.recipe->evaluate(held_out, 2, keyed_seed(0, 2, static_cast<uint64_t>(i)))) {
        if (key == "eval_F") F.push_back(value.item<double>());
        if (key == "eval_F_var") var.push_back(value.item<double>());
      }
    }
    ASSERT_EQ(F.size(), 300u);
    ASSERT_EQ(var.size(), 300u);
    const auto spread = torch::tensor(F, torch::kFloat64).var().item<double>();
    const auto predicted = torch::tensor(var, torch::kFloat64).mean().item<double>();
    EXPECT_GT(predicted, 0.0) << div;
    EXPECT_NEAR(spread / predicted, 1.0, 0.25) << div << ": spread " << spread << ", eval_F_var " << predicted;
  }
}

TEST(MixtureSource, SamplesThePaperMixtureAndSlicesTheGlobalBatch) {
  SourceSpec one{0, 1, 4096, 5};
  MixtureSource full(paper_mixture(), one, 0, {});
  auto x = full.next().images.view({-1});
  EXPECT_NEAR(x.mean().item<double>(), 0.33 * -1 + 0.67 * 2, 0.08);
  for (double t : {-1.0, 0.0, 2.0, 4.0}) {  // the empirical CDF against the mixture's
    double cdf = 0;
    for (const auto& c : paper_mixture()) cdf += c.weight * 0.5 * std::erfc(-(t - c.mean) / std::sqrt(2 * c.variance));
    EXPECT_NEAR((x <= t).to(torch::kFloat64).mean().item<double>(), cdf, 0.025) << t;
  }
  EXPECT_EQ(full.position().index, 4096);
  MixtureSource r0(paper_mixture(), SourceSpec{0, 2, 4096, 5}, 0, {}),
      r1(paper_mixture(), SourceSpec{1, 2, 4096, 5}, 0, {});
  EXPECT_TRUE(torch::equal(torch::cat({r0.next().images.view({-1}), r1.next().images.view({-1})}), x));
  MixtureSource held_out(paper_mixture(), one, 1, {});
  EXPECT_FALSE(torch::equal(held_out.next().images.view({-1}), x));
  MixtureSource resumed(paper_mixture(), one, 0, DataPosition{0, 4096});
  full.next();
  EXPECT_EQ(resumed.position().index, 4096);
}

TEST(FganGaussMixture, SingleStepFitsTheGaussianThatMinimisesKl) {
  // The shipped 1-D experiment through the CLI (6000 steps, 25-35 s): theta-hat within 0.05 of theta*
  // (the paper's own runs land within 0.04). One thread: the model is too small to gain from more, and two
  // threads on a loaded 2-core machine ran 40x slower (spinning on each other).
  gantry::testing::ScratchDir dir("fgan1d");
  auto r = gantry::testing::run_gantry("train --config " + std::string(GANTRY_SOURCE_DIR) +
                                       "/experiments/fgan_gauss_mixture.ini --run-dir " + dir.path() +
                                       " --train.threads 1 --fgan.divergence kl");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line))
    if (line.find("eval_mu") != std::string::npos) last = line;
  auto value = [&](const std::string& key) {
    auto at = last.find("\"" + key + "\":");
    EXPECT_NE(at, std::string::npos) << key << " in " << last;
    return std::stod(last.substr(at + key.size() + 3));
  };
  EXPECT_NEAR(value("eval_mu_star"), 1.0100, 1e-3);
  EXPECT_NEAR(value("eval_sigma_star"), 1.8307, 1e-3);
  EXPECT_NEAR(value("eval_mu"), value("eval_mu_star"), 0.05);
  EXPECT_NEAR(value("eval_sigma"), value("eval_sigma_star"), 0.05);
  EXPECT_LT(value("eval_divergence") - value("eval_divergence_star"), 2e-3);
}

}  // namespace
}  // namespace gantry::fgan
