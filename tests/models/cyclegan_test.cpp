// CycleGAN in one process: network shapes and sizes against the reference implementation, the losses on
// inputs whose values are known, the image pool's semantics, the INIs' schedule, and the settings the
// recipe refuses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "core/errors.h"
#include "cyclegan/cyclegan_losses.h"
#include "cyclegan/cyclegan_model.h"
#include "cyclegan/cyclegan_recipe.h"
#include "cyclegan/image_pool.h"
#include "train/train_options.h"

namespace gantry::cyclegan {
namespace {

int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

int64_t count_blocks(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& sub : m.modules(/*include_self=*/false)) n += sub->name() == "gantry::cyclegan::ResidualBlockImpl";
  return n;
}

TEST(CycleGanModel, GeneratorHasSixBlocksAt128AndNineAt256AndKeepsTheSize) {
  for (int64_t size : {128, 256}) {
    GeneratorOptions o;
    o.width = 4;
    o.blocks = blocks_for(size);
    o.in_channels = 3;
    o.out_channels = 1;
    Generator g(o);
    EXPECT_EQ(count_blocks(*g), size == 256 ? 9 : 6);
    auto y = g->forward(torch::randn({2, 3, size, size}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 1, size, size}));
    EXPECT_LE(y.abs().max().item<float>(), 1.0f);  // tanh
  }
  EXPECT_EQ(blocks_for(64), 6);
  // The reference's resnet_9blocks with ngf 64 prints "Total number of parameters : 11.378 M".
  Generator paper(GeneratorOptions{});
  EXPECT_EQ(count_params(*paper), 11378179);
  EXPECT_EQ(paper->named_parameters()["body.1.weight"].sizes(), (std::vector<int64_t>{64, 3, 7, 7}));
  EXPECT_EQ(paper->named_parameters()["body.10.body.1.weight"].sizes(), (std::vector<int64_t>{256, 256, 3, 3}));
}

TEST(CycleGanModel, PatchGanScoresA30x30MapAt256And14x14At128) {
  EXPECT_EQ(patch_map_size(256, 3), 30);
  EXPECT_EQ(patch_map_size(128, 3), 14);
  EXPECT_EQ(patch_map_size(32, 2), 6);
  EXPECT_EQ(patch_map_size(16, 3), 0);
  EXPECT_EQ(receptive_field(3), 70);
  EXPECT_EQ(receptive_field(1), 16);
  for (int64_t size : {128, 256}) {
    DiscriminatorOptions o;
    o.width = 4;
    Discriminator d(o);
    EXPECT_EQ(d->forward(torch::randn({2, 3, size, size})).sizes(),
              (std::vector<int64_t>{2, 1, patch_map_size(size, 3), patch_map_size(size, 3)}));
  }
  // The reference's basic 70x70 PatchGAN with ndf 64: 2.765 M parameters; 64→128→256→512→1 channels.
  Discriminator paper(DiscriminatorOptions{});
  EXPECT_EQ(count_params(*paper), 2764737);
  // LeakyReLU right after the first convolution (no normalisation there), instance norm after the others.
  std::vector<std::string> kinds;
  for (const auto& m : paper->modules(false))
    if (m->name() != "torch::nn::SequentialImpl") kinds.push_back(m->name());
  ASSERT_EQ(kinds.size(), 12u);
  EXPECT_EQ(kinds[1], "torch::nn::LeakyReLUImpl");
  EXPECT_EQ(kinds[3], "torch::nn::InstanceNorm2dImpl");
  EXPECT_EQ(kinds[11], "torch::nn::Conv2dImpl");
}

TEST(CycleGanModel, InitialisationIsNormalWithStd002AndZeroBiases) {
  torch::manual_seed(0);
  Generator g(GeneratorOptions{});
  init(*g);
  auto p = g->named_parameters();
  EXPECT_NEAR(p["body.10.body.1.weight"].std().item<double>(), 0.02, 0.0005);
  EXPECT_NEAR(p["body.10.body.1.weight"].mean().item<double>(), 0.0, 0.0005);
  EXPECT_EQ(p["body.10.body.1.bias"].abs().max().item<double>(), 0.0);
  EXPECT_EQ(g->buffers().size(), 0u);  // instance norm without running statistics
}

// All weights zero: every layer outputs its bias, so G(x) = tanh(last bias) whatever x, and D(x) = its
// last bias on every patch.
void constant_output(torch::nn::Module& m, double last_bias) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.zero_();
  m.parameters().back().fill_(last_bias);
}

TEST(CycleGanLosses, LeastSquaresAndL1OnKnownValues) {
  auto x = torch::tensor({0.5, -0.5, 1.0, 0.0});
  EXPECT_NEAR(lsgan_loss(x, true).item<double>(), (0.25 + 2.25 + 0 + 1) / 4, 1e-7);
  EXPECT_NEAR(lsgan_loss(x, false).item<double>(), (0.25 + 0.25 + 1 + 0) / 4, 1e-7);
  EXPECT_NEAR(weighted_l1(x, torch::zeros(4), 10).item<double>(), 10 * 2.0 / 4, 1e-6);
}

TEST(CycleGanLosses, CycleIdentityAndAdversarialTermsOnKnownNetworks) {
  GeneratorOptions go;
  go.width = 4;
  go.blocks = 1;
  Generator g(go), f(go);
  DiscriminatorOptions dopt;
  dopt.width = 4;
  dopt.layers = 1;
  Discriminator d_a(dopt), d_b(dopt);
  constant_output(*g, std::atanh(0.5));  // G(x) = 0.5
  constant_output(*f, 0.0);              // F(x) = 0
  constant_output(*d_a, 0.25);           // D_A(x) = 0.25
  constant_output(*d_b, -1.0);           // D_B(x) = -1
  torch::manual_seed(1);
  auto a = torch::rand({2, 3, 16, 16}) * 2 - 1, b = torch::rand({2, 3, 16, 16}) * 2 - 1;
  const double mean_abs_a = a.abs().mean().item<double>(), mean_abs_b = (b - 0.5).abs().mean().item<double>();

  GeneratorTerms t = generator_terms(g, f, d_a, d_b, a, b, LossWeights{10, 0.5});
  EXPECT_NEAR(t.fake_b.mean().item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(t.gan_g.item<double>(), 4.0, 1e-5);                  // (D_B(G(a)) - 1)² = (-2)²
  EXPECT_NEAR(t.gan_f.item<double>(), 0.5625, 1e-6);               // (0.25 - 1)²
  EXPECT_NEAR(t.cycle_a.item<double>(), 10 * mean_abs_a, 1e-5);    // F(G(a)) = 0
  EXPECT_NEAR(t.cycle_b.item<double>(), 10 * mean_abs_b, 1e-5);    // G(F(b)) = 0.5
  EXPECT_NEAR(t.identity_a.item<double>(), 5 * mean_abs_a, 1e-5);  // F(a) = 0, weight 0.5 λ
  EXPECT_NEAR(t.identity_b.item<double>(), 5 * mean_abs_b, 1e-5);  // G(b) = 0.5
  EXPECT_NEAR(t.total.item<double>(), 4.5625 + 15 * (mean_abs_a + mean_abs_b), 1e-4);

  GeneratorTerms off = generator_terms(g, f, d_a, d_b, a, b, LossWeights{10, 0});
  EXPECT_FALSE(off.identity_a.defined());
  EXPECT_NEAR(off.total.item<double>(), 4.5625 + 10 * (mean_abs_a + mean_abs_b), 1e-4);

  // ½ ((0.25 - 1)² + 0.25²) for D_A, whatever the images.
  EXPECT_NEAR(discriminator_loss(d_a, a, t.fake_a).item<double>(), 0.5 * (0.5625 + 0.0625), 1e-6);
}

// Image i of a stream of distinct images: every pixel holds i.
torch::Tensor image(int64_t i) {
  return torch::full({1, 1, 2, 2}, static_cast<float>(i));
}
int64_t id_of(const torch::Tensor& x) {
  return static_cast<int64_t>(x.flatten()[0].item<float>());
}
std::multiset<int64_t> ids_in(const ImagePool& pool) {
  std::multiset<int64_t> ids;
  for (int64_t s = 0; s < pool.size(); ++s) ids.insert(id_of(pool.stored()[s]));
  return ids;
}

TEST(CycleGanImagePool, FillsFirstThenReturnsAStoredImageHalfTheTimeAndStoresTheNewOne) {
  ImagePool pool(50, {1, 2, 2}, torch::kCPU);
  at::Generator gen = keyed_generator(3, 4);
  // Filling: a batch of 30, then 20 one by one — each returned as it is and stored.
  auto first = torch::cat([] {
    std::vector<torch::Tensor> v;
    for (int64_t i = 0; i < 30; ++i) v.push_back(image(i));
    return v;
  }());
  EXPECT_TRUE(torch::equal(pool.query(first, gen), first));
  for (int64_t i = 30; i < 50; ++i) EXPECT_EQ(id_of(pool.query(image(i), gen)), i);
  ASSERT_EQ(pool.size(), 50);
  std::multiset<int64_t> want;
  for (int64_t i = 0; i < 50; ++i) want.insert(i);
  EXPECT_EQ(ids_in(pool), want);

  // Full: each query returns the fresh image (pool unchanged) or a stored one, whose slot the fresh
  // image takes.
  const int64_t n = 4000;
  int64_t stored_returned = 0;
  std::set<int64_t> slots_replaced;
  for (int64_t i = 50; i < 50 + n; ++i) {
    const auto before = pool.stored().clone();
    const int64_t got = id_of(pool.query(image(i), gen));
    const auto changed = (pool.stored() != before).flatten(1).any(1).nonzero().flatten();
    if (got == i) {
      EXPECT_EQ(changed.numel(), 0) << "query " << i;
    } else {
      ++stored_returned;
      ASSERT_EQ(changed.numel(), 1) << "query " << i;
      const int64_t slot = changed[0].item<int64_t>();
      EXPECT_EQ(id_of(before[slot]), got);
      EXPECT_EQ(id_of(pool.stored()[slot]), i);
      slots_replaced.insert(slot);
    }
  }
  EXPECT_EQ(pool.size(), 50);
  EXPECT_NEAR(static_cast<double>(stored_returned) / n, 0.5, 0.03);  // 3.8 standard deviations
  EXPECT_EQ(slots_replaced.size(), 50u);                             // every slot, uniformly chosen

  // The same generator state and pool state make the same choices (what a resume relies on).
  ImagePool copy(50, {1, 2, 2}, torch::kCPU);
  copy.restore(pool.images_state(), pool.count_state());
  at::Generator g1 = keyed_generator(5, 6), g2 = keyed_generator(5, 6);
  for (int64_t i = 0; i < 20; ++i)
    EXPECT_TRUE(torch::equal(pool.query(image(10000 + i), g1), copy.query(image(10000 + i), g2)));
  EXPECT_TRUE(torch::equal(pool.stored(), copy.stored()));
  EXPECT_THROW(copy.restore(torch::zeros({49, 1, 2, 2}), pool.count_state()), std::invalid_argument);

  ImagePool off(0, {1, 2, 2}, torch::kCPU);
  EXPECT_TRUE(torch::equal(off.query(image(7), gen), image(7)));
}

Schema full_schema() {
  Schema s;
  add_common_keys(s, {"cyclegan"});
  const RecipeInfo info = recipe_info();
  info.add_keys(s);
  add_stream_keys(s, info.streams);
  return s;
}

// horse2zebra: |B| = 1334 > |A| = 1067 images, batch 1: an epoch is 1334 steps; 100 epochs at 2e-4,
// then linear to 0 over 100 more.
TEST(CycleGanConfig, PaperIniHoldsTheRateForHalfTheRunThenDecaysLinearlyToZero) {
  const Config c =
      load_config(full_schema(), std::string(GANTRY_SOURCE_DIR) + "/experiments/cyclegan_horse2zebra.ini", {});
  const TrainOptions o = parse_train_options(c);
  const int64_t epoch = 1334;
  EXPECT_EQ(o.steps, 200 * epoch);
  EXPECT_EQ(o.hold_steps, 100 * epoch);
  EXPECT_EQ(o.batch_size, 1);
  EXPECT_DOUBLE_EQ(c.real("train.lr"), 2e-4);
  EXPECT_EQ(c.int64("cyclegan.crop_size"), 256);
  EXPECT_EQ(c.real("cyclegan.lambda_cycle"), 10);
  EXPECT_EQ(c.real("cyclegan.lambda_identity"), 0.5);
  EXPECT_EQ(c.int64("cyclegan.pool_size"), 50);
  EXPECT_TRUE(c.flag("data.flip"));
  auto factor = [&](int64_t step) { return lr_factor(o.schedule, step, o.steps, o.warmup_steps, o.hold_steps); };
  EXPECT_DOUBLE_EQ(factor(0), 1.0);
  EXPECT_DOUBLE_EQ(factor(100 * epoch - 1), 1.0);  // the last step of epoch 100
  EXPECT_DOUBLE_EQ(factor(150 * epoch), 0.5);      // half way through the decay
  EXPECT_DOUBLE_EQ(factor(175 * epoch), 0.25);
  EXPECT_NEAR(factor(200 * epoch - 1), 0.0, 1e-5);  // the last step: 1 / (100 epochs of steps)

  const Config small =
      load_config(full_schema(), std::string(GANTRY_SOURCE_DIR) + "/experiments/cyclegan_fashion_mnist.ini", {});
  const TrainOptions s = parse_train_options(small);
  EXPECT_EQ(s.hold_steps * 2, s.steps);
  EXPECT_EQ(s.schedule, LrSchedule::kLinear);
}

// A recipe built on `shapes` (A, B) with `keys` set: what `gantry train` does before step 0.
void build(const std::vector<std::pair<std::string, std::string>>& keys, DataShape a, DataShape b) {
  Config c(full_schema());
  c.set("run.recipe", "cyclegan");
  for (const auto& [k, v] : keys) c.set(k, v);
  auto comm = make_world_of_one();
  GradSync sync(*comm, {});
  StepContext step(sync, {});
  recipe_info().create(RecipeEnv{c, {{kMainStream, a}, {kStreamB, b}}, torch::kCPU, *comm, sync, step});
}

void expect_usage_error(const std::vector<std::pair<std::string, std::string>>& keys, DataShape a, DataShape b,
                        const std::string& key) {
  try {
    build(keys, a, b);
    ADD_FAILURE() << "no error; expected one naming " << key;
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(key + ": ", 0), 0u) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(CycleGanRecipe, RefusesWhatItCannotHonourNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> tiny = {{"cyclegan.g_width", "2"}, {"cyclegan.d_width", "2"}};
  auto with = [&](std::vector<std::pair<std::string, std::string>> more) {
    more.insert(more.begin(), tiny.begin(), tiny.end());
    return more;
  };
  const DataShape rgb36{3, 36, 36, false}, rgb32{3, 32, 32, false}, gray32{1, 32, 32, false};
  EXPECT_NO_THROW(build(with({{"cyclegan.crop_size", "32"}, {"cyclegan.d_layers", "2"}}), rgb36, rgb32));
  expect_usage_error(with({{"cyclegan.crop_size", "40"}}), rgb36, rgb36, "cyclegan.crop_size");
  expect_usage_error(with({{"cyclegan.crop_size", "30"}}), rgb36, rgb36, "cyclegan.crop_size");  // not 4k
  expect_usage_error(tiny, rgb36, rgb32, "cyclegan.crop_size");  // own size, but the domains differ
  expect_usage_error(with({{"cyclegan.crop_size", "16"}, {"cyclegan.d_layers", "3"}}), rgb32, rgb32,
                     "cyclegan.d_layers");
  expect_usage_error(tiny, rgb32, gray32, "cyclegan.lambda_identity");
  EXPECT_NO_THROW(build(with({{"cyclegan.lambda_identity", "0"}}), rgb32, gray32));
}

// One step moves all four networks (the discriminators, frozen during the generators' update, take their
// own), stores the generated images in the pools and keeps the sample grid's inputs.
TEST(CycleGanRecipe, OneStepUpdatesAllFourNetworksAndFillsThePools) {
  Config c(full_schema());
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"run.recipe", "cyclegan"},
                                                                             {"train.lr", "2e-4"},
                                                                             {"cyclegan.crop_size", "16"},
                                                                             {"cyclegan.g_width", "2"},
                                                                             {"cyclegan.d_width", "2"},
                                                                             {"cyclegan.residual_blocks", "1"},
                                                                             {"cyclegan.d_layers", "1"},
                                                                             {"cyclegan.pool_size", "3"}})
    c.set(k, v);
  auto comm = make_world_of_one();
  GradSync sync(*comm, {});
  StepContext step(sync, {});
  const DataShape shape{3, 20, 20, false};
  auto recipe =
      recipe_info().create(RecipeEnv{c, {{kMainStream, shape}, {kStreamB, shape}}, torch::kCPU, *comm, sync, step});
  std::map<std::string, torch::Tensor> before;
  for (const auto& [name, net] : recipe->networks())
    before[name] = torch::cat([&] {
      std::vector<torch::Tensor> v;
      for (const auto& p : net->parameters()) v.push_back(p.detach().flatten().clone());
      return v;
    }());
  torch::manual_seed(2);
  const StepBatches batches{{kMainStream, Batch{torch::rand({2, 3, 20, 20}) * 2 - 1, {}, {0, 0}}},
                            {kStreamB, Batch{torch::rand({2, 3, 20, 20}) * 2 - 1, {}, {0, 0}}}};
  const Losses losses = recipe->train_step(batches);
  ASSERT_GE(losses.size(), 2u);
  EXPECT_EQ(losses[0].first, "loss_d");
  EXPECT_EQ(losses[1].first, "loss_g");
  for (const auto& [name, value] : losses) EXPECT_TRUE(std::isfinite(value.item<double>())) << name;
  for (const auto& [name, net] : recipe->networks()) {
    std::vector<torch::Tensor> now;
    for (const auto& p : net->parameters()) {
      EXPECT_TRUE(p.requires_grad()) << name;
      now.push_back(p.detach().flatten());
    }
    EXPECT_GT((torch::cat(now) - before[name]).abs().max().item<double>(), 1e-5) << name << " did not move";
  }
  const RecipeState state = recipe->state();
  for (const auto& [name, t] : state.per_rank)
    if (name == "pool_a_count" || name == "pool_b_count") {
      EXPECT_EQ(t.item<int64_t>(), 2) << name;
    }
  at::Generator gen = keyed_generator(0, 0);
  EXPECT_EQ(recipe->sample(64, gen).sizes(),
            (std::vector<int64_t>{36, 3, 16, 16}));  // 6 rows of A, G(A), F(G(A)), B, F(B), G(F(B))
}

}  // namespace
}  // namespace gantry::cyclegan
