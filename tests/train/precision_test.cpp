// train.precision in the framework: parsing and refusal, the fp16 loss scaler (exact unscaling, skip on
// overflow, growth, state), and the scaler inside StepContext and a checkpoint. The StepContext tests
// declare fp16 for CUDA and run CPU tensors: CUDA autocast leaves CPU tensors alone, so the scaler's
// logic is exercised on every build (LibTorch 1.13's CPU autocast has no fp16).
#include "train/precision.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/errors.h"
#include "core/torch_compat.h"
#include "support/testing.h"
#include "train/run_state.h"
#include "train/step_context.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;

std::vector<torch::Tensor> values_of(torch::nn::Module& m) {
  std::vector<torch::Tensor> v;
  for (auto& p : m.parameters()) v.push_back(p.detach().clone());
  return v;
}
bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return a.size() == b.size();
}

TEST(Precision, ParsesAndRefusesWhatTheDeviceCannotRun) {
  EXPECT_EQ(parse_precision("fp32"), Precision::kFp32);
  EXPECT_EQ(parse_precision("bf16"), Precision::kBf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::kFp16);
  EXPECT_THROW(parse_precision("fp8"), UsageError);
  EXPECT_NO_THROW(check_precision_supported(Precision::kBf16, c10::DeviceType::CPU));
  EXPECT_NO_THROW(check_precision_supported(Precision::kFp16, c10::DeviceType::CUDA));
  if (compat::autocast_supports(c10::DeviceType::CPU, c10::ScalarType::Half)) {  // LibTorch 2.x
    EXPECT_NO_THROW(check_precision_supported(Precision::kFp16, c10::DeviceType::CPU));
  } else {  // 1.13
    try {
      check_precision_supported(Precision::kFp16, c10::DeviceType::CPU);
      ADD_FAILURE() << "fp16 on a 1.13 CPU was accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("train.precision: fp16", 0), 0u) << e.what();
    }
  }
}

TEST(Precision, AutocastRunsTheForwardInBf16UntilItEnds) {
  torch::nn::Linear lin(4, 3);
  auto x = torch::randn({2, 4});
  {
    AutocastGuard guard(Precision::kBf16, c10::DeviceType::CPU);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kBFloat16);
    guard.end();
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat32);
  }
  EXPECT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  AutocastGuard off(Precision::kFp32, c10::DeviceType::CPU);
  EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat32);
}

// The scaled backward, unscaled, is the float32 gradient bit for bit (the scale is a power of two).
TEST(LossScaler, UnscalesExactlySkipsOnOverflowAndGrows) {
  torch::manual_seed(0);
  torch::nn::Linear lin(8, 2);
  auto x = torch::randn({16, 8});
  auto loss = [&] { return lin->forward(x).pow(2).mean(); };
  loss().backward();
  std::vector<torch::Tensor> reference;
  for (auto& p : lin->parameters()) reference.push_back(p.grad().clone());

  LossScaler s({65536.0, 2.0, 0.5, 3});
  lin->zero_grad();
  s.scale(loss()).backward();
  ASSERT_TRUE(s.unscale_and_update(lin->parameters()));
  for (size_t i = 0; i < reference.size(); ++i) EXPECT_TRUE(torch::equal(lin->parameters()[i].grad(), reference[i]));
  EXPECT_EQ(s.scale_value(), 65536.0);
  EXPECT_EQ(s.growth_tracker(), 1);

  lin->parameters()[0].grad()[0][0] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(s.unscale_and_update(lin->parameters()));
  EXPECT_EQ(s.scale_value(), 32768.0);
  EXPECT_EQ(s.growth_tracker(), 0);
  EXPECT_EQ(s.skipped(), 1);
  lin->parameters()[1].grad()[0] = std::nan("");
  EXPECT_FALSE(s.unscale_and_update(lin->parameters()));
  EXPECT_EQ(s.scale_value(), 16384.0);
  EXPECT_EQ(s.skipped(), 2);

  for (int i = 0; i < 3; ++i) {  // growth_interval finite steps in a row double it
    lin->zero_grad();
    s.scale(loss()).backward();
    EXPECT_TRUE(s.unscale_and_update(lin->parameters()));
    EXPECT_EQ(s.scale_value(), i < 2 ? 16384.0 : 32768.0);
  }
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(LossScaler, DefaultsAndStateRoundTrip) {
  LossScaler s;
  EXPECT_EQ(s.scale_value(), 65536.0);  // 2^16, growth every 2000 finite steps
  torch::nn::Linear lin(2, 1);
  for (int i = 0; i < 1999; ++i) {
    lin->zero_grad();
    s.scale(lin->forward(torch::ones({1, 2})).sum()).backward();
    ASSERT_TRUE(s.unscale_and_update(lin->parameters()));
  }
  EXPECT_EQ(s.scale_value(), 65536.0);
  EXPECT_EQ(s.growth_tracker(), 1999);
  lin->zero_grad();
  s.scale(lin->forward(torch::ones({1, 2})).sum()).backward();
  EXPECT_TRUE(s.unscale_and_update(lin->parameters()));
  EXPECT_EQ(s.scale_value(), 131072.0);

  LossScaler back;
  back.restore(s.state());
  EXPECT_EQ(back.scale_value(), 131072.0);
  EXPECT_EQ(back.growth_tracker(), 0);
  EXPECT_THROW(back.restore(torch::zeros({3}, torch::kFloat64)), std::invalid_argument);  // scale 0
  EXPECT_THROW(back.restore(torch::ones({2}, torch::kFloat64)), std::invalid_argument);
}

// A one-network recipe for the checkpoint round trip.
class LinearRecipe : public Recipe {
 public:
  LinearRecipe() : net_(4, 1), opt_(net_->parameters(), 0.1) {}
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"net", net_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override { return {{"sgd", &opt_}}; }
  Losses train_step(const StepBatches&) override { return {}; }
  torch::Tensor sample(int64_t, at::Generator&) override { return {}; }
  torch::nn::Linear net_;
  torch::optim::SGD opt_;
};

// fp16 in the step context: an update whose reduced gradients overflow leaves the parameters alone and
// halves the group's scale; a finite one steps; the scaler's state goes into the checkpoint
// (scaler-<group>.pt) and comes back on a restore.
TEST(StepContextFp16, SkipsOverflowingStepsAndCheckpointsTheScaler) {
  auto comm = make_world_of_one();
  GradSync sync(*comm);
  LinearRecipe recipe;
  sync.add_group("net", {recipe.net_.ptr()});
  StepContext ctx(sync, StepOptions{1, 0, Precision::kFp16}, c10::DeviceType::CUDA);
  auto update = [&](double input) {
    return ctx.update("net", {&recipe.opt_}, [&](int64_t) {
      return Losses{{"loss", recipe.net_->forward(torch::full({8, 4}, input)).pow(2).mean()}};
    });
  };
  const auto before = values_of(*recipe.net_);
  Losses out = update(std::numeric_limits<float>::infinity());
  EXPECT_TRUE(all_equal(values_of(*recipe.net_), before));  // skipped
  ASSERT_EQ(ctx.scalers().count("net"), 1u);
  EXPECT_EQ(ctx.scalers().at("net").scale_value(), 32768.0);
  EXPECT_EQ(ctx.scalers().at("net").skipped(), 1);
  EXPECT_EQ(out[0].first, "loss");  // still reported

  update(1.0);
  const auto after = values_of(*recipe.net_);
  EXPECT_FALSE(all_equal(after, before));  // a finite step is taken
  EXPECT_EQ(ctx.scalers().at("net").growth_tracker(), 1);

  testing::ScratchDir scratch("precision");
  CheckpointMeta meta;
  meta.step = 2;
  meta.recipe = "linear";
  Snapshot snap = take_snapshot(*comm, recipe, meta, torch::kCPU, &ctx);
  ResumePoint point{scratch.path(), meta, {}};
  for (const auto& [name, bytes] : snap.files) {
    testing::write_bytes(scratch / name, bytes);
    point.files.push_back(name);
  }
  ASSERT_TRUE(fs::exists(scratch / "scaler-net.pt"));

  LinearRecipe fresh;
  GradSync sync2(*comm);
  sync2.add_group("net", {fresh.net_.ptr()});
  StepContext ctx2(sync2, StepOptions{1, 0, Precision::kFp16}, c10::DeviceType::CUDA);
  restore_checkpoint(*comm, fresh, point, torch::kCPU, 0, &ctx2);
  EXPECT_TRUE(all_equal(values_of(*fresh.net_), after));
  ASSERT_EQ(ctx2.scalers().count("net"), 1u);
  EXPECT_EQ(ctx2.scalers().at("net").scale_value(), 32768.0);
  EXPECT_EQ(ctx2.scalers().at("net").growth_tracker(), 1);
  EXPECT_EQ(ctx2.scalers().at("net").skipped(), 1);

  // A bf16 run resuming the same checkpoint has no scaler.
  GradSync sync3(*comm);
  sync3.add_group("net", {fresh.net_.ptr()});
  StepContext ctx3(sync3, StepOptions{1, 0, Precision::kBf16}, c10::DeviceType::CPU);
  restore_checkpoint(*comm, fresh, point, torch::kCPU, 0, &ctx3);
  EXPECT_TRUE(ctx3.scalers().empty());
}

// With two micro-batches, the scaled roots accumulate and unscale to the float32 step.
TEST(StepContextFp16, ScaledMicroBatchesTakeTheFloat32Step) {
  auto comm = make_world_of_one();
  auto run = [&](Precision p) {
    torch::manual_seed(3);
    LinearRecipe recipe;
    GradSync sync(*comm);
    sync.add_group("net", {recipe.net_.ptr()});
    StepContext ctx(sync, StepOptions{2, 0, p}, c10::DeviceType::CUDA);
    auto x = torch::randn({8, 4});
    ctx.update("net", {&recipe.opt_},
               [&](int64_t k) { return Losses{{"loss", recipe.net_->forward(ctx.micro(x, k)).pow(2).mean()}}; });
    return values_of(*recipe.net_);
  };
  EXPECT_TRUE(all_equal(run(Precision::kFp16), run(Precision::kFp32)));
}

}  // namespace
}  // namespace gantry
