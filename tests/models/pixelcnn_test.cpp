// PixelCNN: masks, causality of both architectures by gradients (grayscale and RGB), the gated net's
// full receptive field (and the residual net's blind spot), the likelihood's units, sampling against a
// naive full-image sampler, and the recipe's refusals.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "pixelcnn/masked_conv.h"
#include "pixelcnn/pixelcnn_model.h"
#include "pixelcnn/pixelcnn_recipe.h"
#include "train/train_options.h"

namespace gantry::pixelcnn {
namespace {

// |J[t][s]| summed over `inputs` random images, J[t][s] = d(a random projection of the outputs at
// sub-pixel t) / d(input sub-pixel s), sub-pixels numbered in the model's order t = (i·W + j)·C + c.
// `fn` maps (B, C, H, W) to (B, K, C, H, W). One backward pass: batch item (k, t) is a copy of image k
// whose projection at sub-pixel t is the loss. A structural zero is zero for every image; a ReLU that
// happens to be off for one image (a zero by chance) is on for another.
torch::Tensor jacobian(const std::function<torch::Tensor(const torch::Tensor&)>& fn, int64_t c, int64_t h, int64_t w,
                       int64_t inputs = 4) {
  const int64_t n = c * h * w;
  auto x = (torch::rand({inputs, 1, c, h, w}) * 2 - 1).expand({inputs, n, c, h, w}).reshape({inputs * n, c, h, w});
  x.requires_grad_(true);
  auto out = fn(x);                                                                // (inputs·n, K, C, H, W)
  auto per_t = out.permute({0, 3, 4, 2, 1}).reshape({inputs, n, n, out.size(1)});  // (image, item t, t', K)
  auto idx = torch::arange(n);
  auto picked = per_t.index({torch::indexing::Slice(), idx, idx});  // (image, t, K): item t's outputs at t
  (picked * torch::randn({out.size(1)})).sum().backward();
  return x.grad().permute({0, 2, 3, 1}).reshape({inputs, n, n}).abs().sum(0);
}

// Causal: no output depends on its own (mask A) or a later sub-pixel (exact zeros, not small numbers).
// Not vacuous: every output but the first depends on the sub-pixel before it in its row (or, at the
// start of a row, the pixel above), and with mask B on its own.
void expect_causal(const torch::Tensor& j, int64_t colours, int64_t width, bool includes_self,
                   const std::string& what) {
  const int64_t n = j.size(0);
  const auto& jc = j;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t from = includes_self ? t + 1 : t;
    if (from < n) {
      EXPECT_EQ(jc[t].narrow(0, from, n - from).max().item<float>(), 0.0f) << what << " t=" << t;
    }
    if (includes_self) {
      EXPECT_GT(jc[t][t].item<float>(), 0.0f) << what << " t=" << t;
    }
    const bool row_start = t % (width * colours) == 0;
    const int64_t before = row_start ? t - width * colours : t - 1;
    if (before >= 0) {
      EXPECT_GT(jc[t][before].item<float>(), 0.0f) << what << " t=" << t;
    }
  }
}

PixelCnnOptions tiny(Arch arch, int64_t colours, int64_t layers, int64_t hw = 6) {
  PixelCnnOptions o;
  o.arch = arch;
  o.channels = colours;
  o.height = o.width = hw;
  o.layers = layers;
  // Enough features per colour that no gradient path dies at a ReLU by chance (with 2 per colour, some
  // same-pixel dependencies of the gated net measured exactly 0 at a few pixels).
  o.hidden = 24;
  o.out_hidden = 48;
  return o;
}

TEST(PixelCnnMasks, PatternOfMaskAAndMaskB) {
  // One colour, 3x3: rows above and the left neighbour open; the centre open only for mask B.
  auto a = causal_mask({0}, {0}, 3, 3, {1, 1}, MaskType::kA)[0][0];
  auto b = causal_mask({0}, {0}, 3, 3, {1, 1}, MaskType::kB)[0][0];
  EXPECT_TRUE(a.equal(torch::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f}).view({3, 3})));
  EXPECT_TRUE(b.equal(torch::tensor({1.f, 1.f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f}).view({3, 3})));
  // RGB at the centre tap: out colour (rows) sees in colour (columns) below it (A) or up to it (B).
  auto groups = colour_groups(3, 3);
  auto ca = causal_mask(groups, groups, 1, 1, {0, 0}, MaskType::kA).view({3, 3});
  auto cb = causal_mask(groups, groups, 1, 1, {0, 0}, MaskType::kB).view({3, 3});
  EXPECT_TRUE(ca.equal(torch::tensor({0.f, 0.f, 0.f, 1.f, 0.f, 0.f, 1.f, 1.f, 0.f}).view({3, 3})));
  EXPECT_TRUE(cb.equal(torch::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 1.f, 1.f, 1.f}).view({3, 3})));
  // Hidden features: contiguous blocks per colour; a gated layer's two halves repeat the layout.
  EXPECT_EQ(colour_groups(6, 3), (std::vector<int64_t>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(colour_groups(6, 3, 2), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(colour_groups(5, 3), (std::vector<int64_t>{0, 0, 1, 1, 2}));  // uneven: 2, 2, 1
  EXPECT_THROW(colour_groups(2, 3), std::invalid_argument);
}

TEST(PixelCnnMasks, OneMaskedLayerIsCausalByGradients) {
  torch::manual_seed(1);
  for (int64_t colours : {1, 3}) {
    for (MaskType type : {MaskType::kA, MaskType::kB}) {
      MaskedConv2d conv(square_options(colours, colours, 5, type, colours));
      auto j = jacobian([&](const torch::Tensor& x) { return conv->forward(x).unsqueeze(1); }, colours, 5, 5);
      expect_causal(j, colours, 5, type == MaskType::kB,
                    std::string(type == MaskType::kA ? "A" : "B") + std::to_string(colours));
    }
  }
}

TEST(PixelCnnModel, BothArchitecturesAreCausalInGrayscaleAndRgb) {
  torch::manual_seed(2);
  for (Arch arch : {Arch::kResidual, Arch::kGated}) {
    for (int64_t colours : {1, 3}) {
      PixelCnn net(tiny(arch, colours, 3));
      auto j = jacobian([&](const torch::Tensor& x) { return net->forward(x); }, colours, 6, 6);
      expect_causal(j, colours, 6, false, (arch == Arch::kGated ? "gated " : "residual ") + std::to_string(colours));
    }
  }
}

// Every earlier sub-pixel reaches the logits of every later one through the gated stacks (7x7 image,
// first layer 7 wide, 5 layers: reach() = 8 covers it); the residual net of the same depth misses some
// (the blind spot up and to the right), which shows the check can fail.
TEST(PixelCnnModel, GatedNetHasNoBlindSpotResidualNetHasOne) {
  torch::manual_seed(3);
  for (int64_t colours : {1, 3}) {
    PixelCnn gated(tiny(Arch::kGated, colours, 5, 7));
    auto j = jacobian([&](const torch::Tensor& x) { return gated->forward(x); }, colours, 7, 7);
    const int64_t n = j.size(0);
    for (int64_t t = 1; t < n; ++t)
      EXPECT_GT(j[t].narrow(0, 0, t).min().item<float>(), 0.0f) << "gated, " << colours << " colours, t=" << t;
    PixelCnn residual(tiny(Arch::kResidual, colours, 5, 7));
    auto jr = jacobian([&](const torch::Tensor& x) { return residual->forward(x); }, colours, 7, 7);
    // Pixel (6, 0) cannot see (4, 6) — up two rows and six to the right — through 7x7 then 3x3 masks
    // that open one row above per layer but only rows ≤ i: the blind spot.
    const int64_t t = (6 * 7 + 0) * colours, s = (4 * 7 + 6) * colours;
    EXPECT_EQ(jr[t][s].item<float>(), 0.0f) << colours;
    int64_t blind = 0;
    for (int64_t u = 1; u < n; ++u) blind += (jr[u].narrow(0, 0, u) == 0).sum().item<int64_t>();
    EXPECT_GT(blind, 0) << colours;
  }
}

TEST(PixelCnnModel, LogitLayoutAndNllInNats) {
  torch::manual_seed(4);
  PixelCnn net(tiny(Arch::kResidual, 3, 1, 4));
  auto x = torch::randint(0, 256, {2, 3, 4, 4}, torch::kLong);
  auto logits = net->forward(x.to(torch::kFloat32) * (2.0 / 255) - 1);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 256, 3, 4, 4}));
  // The mean over sub-pixels of −log softmax at the target, computed element by element.
  double sum = 0;
  auto lsm = torch::log_softmax(logits, 1);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 4; ++j) sum -= lsm[b][x[b][c][i][j].item<int64_t>()][c][i][j].item<double>();
  EXPECT_NEAR(PixelCnnImpl::nll(logits, x).item<double>(), sum / (2 * 3 * 16), 1e-5);
}

// A recipe at world size one, as the trainer builds it.
struct RecipeRig {
  explicit RecipeRig(const std::map<std::string, std::string>& keys, DataShape shape) {
    info.add_keys(schema);
    add_common_keys(schema, {"pixelcnn"});
    config = Config(schema);
    for (const auto& [k, v] : keys) config.set(k, v);
    recipe = info.create(RecipeEnv{config, {{kMainStream, shape}}, torch::kCPU, *comm, sync, step});
  }
  RecipeInfo info = recipe_info();
  Schema schema;
  Config config;
  std::unique_ptr<Communicator> comm = make_world_of_one();
  GradSync sync{*comm};
  StepContext step{sync, StepOptions{}};
  std::unique_ptr<Recipe> recipe;
  PixelCnnImpl& net() { return *std::dynamic_pointer_cast<PixelCnnImpl>(recipe->networks().front().second); }
};

class FixedSource : public BatchSource {
 public:
  explicit FixedSource(torch::Tensor images) : images_(std::move(images)) {}
  Batch next() override { return Batch{images_, {}, DataPosition{0, index_++}}; }
  DataPosition position() const override { return {0, index_}; }

 private:
  torch::Tensor images_;
  int64_t index_ = 0;
};

const std::map<std::string, std::string> kTinyKeys = {
    {"pixelcnn.layers", "2"}, {"pixelcnn.hidden", "6"}, {"pixelcnn.out_hidden", "12"}};

TEST(PixelCnnRecipe, UniformLogitsScoreEightBitsPerDim) {
  torch::manual_seed(5);
  for (int64_t colours : {1, 3}) {
    RecipeRig rig(kTinyKeys, DataShape{colours, 5, 5, false});
    torch::NoGradGuard no_grad;
    for (auto& p : rig.net().named_parameters())
      if (p.key().rfind("head2.", 0) == 0) p.value().zero_();  // logits 0: p = 1/256 for every value
    FixedSource eval(torch::randint(0, 256, {4, 5, 5, colours}, torch::kUInt8));
    std::map<std::string, double> m;
    for (const auto& [k, v] : rig.recipe->evaluate(eval, 3, /*noise_key=*/0)) m[k] = v.item<double>();
    // To float32's precision: the softmax runs in float32 (log 256 there is 1.7e-7 off, relatively).
    EXPECT_NEAR(m.at("eval_bits_per_dim"), 8.0, 1e-5);
    EXPECT_NEAR(m.at("eval_loss"), 8.0, 1e-5);
    EXPECT_NEAR(m.at("eval_nats"), 25.0 * static_cast<double>(colours) * std::log(256.0), 1e-4 * colours);
  }
}

TEST(PixelCnnRecipe, TrainStepLowersTheLossOfItsBatch) {
  torch::manual_seed(6);
  auto keys = kTinyKeys;
  keys["train.lr"] = "1e-2";
  RecipeRig rig(keys, DataShape{3, 5, 5, false});
  // Images of one colour each: the model can learn that neighbours repeat (the same net in
  // pixelcnn_step.py's PyTorch: 7.99 → 2.0 bits/dim in 40 steps).
  auto v = torch::randint(0, 256, {8, 1, 1, 3}, torch::kUInt8).expand({8, 5, 5, 3}).contiguous();
  StepBatches b{{kMainStream, Batch{v, {}, {}}}};
  const double first = rig.recipe->train_step(b).front().second.item<double>();
  double last = first;
  for (int i = 0; i < 40; ++i) last = rig.recipe->train_step(b).front().second.item<double>();
  EXPECT_GT(first, 7.5);  // near uniform at the start
  EXPECT_LT(last, 4.0);
}

// The windowed sampler (rows and columns within reach(), head on one pixel) draws exactly what a naive
// sampler draws that runs the whole network on the whole image for every sub-pixel, given the same
// uniform numbers; and a head that always says v gives v everywhere.
TEST(PixelCnnSampling, WindowedSamplerMatchesTheFullImageOne) {
  torch::manual_seed(7);
  for (Arch arch : {Arch::kResidual, Arch::kGated}) {
    for (int64_t colours : {1, 3}) {
      PixelCnnOptions o = tiny(arch, colours, 2, 9);  // reach() < 8: windows smaller than the image
      PixelCnn net(o);
      ASSERT_LT(net->reach(), 8);
      const int64_t n = 3;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
      auto got = net->sample(n, gen);
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{n, 9, 9, colours}));

      torch::NoGradGuard no_grad;
      auto gen2 = at::make_generator<at::CPUGeneratorImpl>(11);
      auto u = at::rand({9 * 9 * colours, n, 1}, gen2, torch::kFloat32);
      auto img = torch::zeros({n, 9, 9, colours}, torch::kUInt8);
      int64_t t = 0;
      for (int64_t i = 0; i < 9; ++i)
        for (int64_t j = 0; j < 9; ++j)
          for (int64_t c = 0; c < colours; ++c, ++t) {
            auto logits = net->forward(uint8_to_float(img)).select(2, c).select(2, i).select(2, j);  // (n, 256)
            auto value = (torch::softmax(logits, 1).cumsum(1) < u[t]).sum(1).clamp_max(255);
            img.select(1, i).select(1, j).select(1, c).copy_(value);
          }
      EXPECT_TRUE(got.equal(img)) << (arch == Arch::kGated ? "gated " : "residual ") << colours;
      EXPECT_GT(got.to(torch::kFloat32).std().item<double>(), 10.0);  // random init: varied values
    }
  }
  PixelCnn net(tiny(Arch::kGated, 3, 2, 4));
  {
    torch::NoGradGuard no_grad;
    auto named = net->named_parameters();
    named["head2.conv.weight"].zero_();
    auto bias = named["head2.conv.bias"].zero_().view({3, 256});
    bias[0][10] = bias[1][100] = bias[2][250] = 50;  // R always 10, G 100, B 250
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto s = net->sample(2, gen);
  EXPECT_TRUE(s.select(3, 0).eq(10).all().item<bool>());
  EXPECT_TRUE(s.select(3, 1).eq(100).all().item<bool>());
  EXPECT_TRUE(s.select(3, 2).eq(250).all().item<bool>());
}

TEST(PixelCnnRecipe, RefusesWhatItCannotBuildNamingTheKey) {
  auto refusal = [](std::map<std::string, std::string> keys, int64_t colours) -> std::string {
    try {
      RecipeRig rig(keys, DataShape{colours, 8, 8, false});
    } catch (const UsageError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(refusal({{"pixelcnn.hidden", "2"}}, 3).rfind("pixelcnn.hidden: 2 is fewer than the 3 colour", 0), 0u);
  EXPECT_EQ(refusal({{"pixelcnn.hidden", "6"}, {"pixelcnn.out_hidden", "2"}}, 3).rfind("pixelcnn.out_hidden:", 0), 0u);
  EXPECT_EQ(refusal({{"pixelcnn.kernel", "4"}}, 1).rfind("pixelcnn.kernel: must be odd", 0), 0u);
  EXPECT_EQ(refusal({{"pixelcnn.first_kernel", "6"}}, 1).rfind("pixelcnn.first_kernel: must be odd", 0), 0u);
  EXPECT_EQ(refusal(kTinyKeys, 3), "accepted");
}

}  // namespace
}  // namespace gantry::pixelcnn
