// The trainer in-process: a small linear recipe on two synthetic data streams, the world-of-one
// communicator, a scratch run directory. Cadences, retention, the resume decision, exact resume (networks,
// optimizer, recipe state, both streams' positions), micro-batches, the loss meter's averages and a stop
// at a signal.
#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "checkpoint/checkpoint.h"
#include "core/errors.h"
#include "core/fs.h"
#include "support/testing.h"
#include "train/device_setup.h"
#include "train/run_state.h"
#include "train/signals.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// Batches of (1, 2, 2) images from (seed, stream, position): rank rows of a global batch, `epoch_size`
// samples an epoch.
class FakeSource : public BatchSource {
 public:
  FakeSource(uint64_t stream, int64_t global, int64_t epoch_size, DataPosition start)
      : stream_(stream), global_(global), epoch_size_(epoch_size), position_(start) {}
  Batch next() override {
    auto gen = batch_generator(3, stream_, position_);
    Batch b{at::randn({global_, 1, 2, 2}, gen, torch::kFloat32), {}, position_};
    position_.index += global_;
    if (position_.index >= epoch_size_) position_ = {position_.epoch + 1, 0};
    return b;
  }
  DataPosition position() const override { return position_; }
  int64_t steps_per_epoch() const override { return epoch_size_ / global_; }

 private:
  uint64_t stream_;
  int64_t global_, epoch_size_;
  DataPosition position_;
};

// y = w·x + b fitted to the pixel sum, on the "train" and "extra" streams together. It reports the main
// stream's position index (to check the loss meter's averages) and keeps recipe state: a shared step
// counter and a per-rank sum of the extra stream's pixels.
struct Observed {  // what a finished run's recipe held (the trainer owns and destroys the recipe)
  torch::Tensor weights;
  int64_t calls = 0;
  double extra_sum = 0;
};

class ToyRecipe : public Recipe {
 public:
  ToyRecipe(const RecipeEnv& env, Observed& observed)
      : observed_(observed), step_(env.step), net_(torch::nn::LinearOptions(4, 1)) {
    opt_ = std::make_unique<torch::optim::Adam>(net_->parameters(), torch::optim::AdamOptions(0.05));
    env.sync.add_group("net", {net_.ptr()});
  }
  ~ToyRecipe() override {
    observed_ = {net_->weight.detach().clone(), calls_.item<int64_t>(), extra_sum_.item<double>()};
  }
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"net", net_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override { return {{"adam", opt_.get()}}; }
  RecipeState state() override { return {{{"calls", calls_}}, {{"extra_sum", extra_sum_}}}; }
  void restore(const RecipeState& s) override {
    ASSERT_EQ(s.shared.size(), 1u);
    calls_ = s.shared[0].second.clone();
    ASSERT_EQ(s.per_rank.size(), 1u);
    extra_sum_ = s.per_rank[0].second.clone();
  }
  Losses train_step(const StepBatches& batches) override {
    const Batch& main = batches.at(kMainStream);
    const Batch& extra = batches.at("extra");
    auto x = torch::cat({main.images, extra.images}).reshape({-1, 4});
    calls_ += 1;
    extra_sum_ += extra.images.sum().to(torch::kFloat64);
    if (raise_at_ > 0 && calls_.item<int64_t>() == raise_at_) std::raise(SIGTERM);
    Losses out = step_.update("net", {opt_.get()}, [&](int64_t k) {
      auto xs = step_.micro(x, k);
      return Losses{{"loss", (net_->forward(xs).squeeze(1) - xs.sum(1)).pow(2).mean()}};
    });
    out.emplace_back("index", torch::tensor(static_cast<double>(main.position.index)));
    return out;
  }
  torch::Tensor sample(int64_t n, at::Generator& gen) override { return at::rand({n, 1, 2, 2}, gen) * 2 - 1; }

  torch::Tensor calls_ = torch::zeros({}, torch::kInt64);
  torch::Tensor extra_sum_ = torch::zeros({}, torch::kFloat64);
  int64_t raise_at_ = 0;

 private:
  Observed& observed_;
  StepContext& step_;
  torch::nn::Linear net_;
  std::unique_ptr<torch::optim::Adam> opt_;
};

class TrainerTest : public ::testing::Test {
 protected:
  TrainerTest() : comm_(make_world_of_one()) {
    add_common_keys(schema_, {"toy"});
    clear_stop_request();
  }

  Config config(const std::vector<std::pair<std::string, std::string>>& keys) {
    Config c(schema_);
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"train.batch_size", "8"},
                                                                               {"train.steps", "40"},
                                                                               {"train.log_every", "5"},
                                                                               {"train.checkpoint_every", "10"},
                                                                               {"train.sample_every", "0"},
                                                                               {"train.eval_every", "0"},
                                                                               {"train.keep_last", "2"}})
      c.set(k, v);
    for (const auto& [k, v] : keys) c.set(k, v);
    return c;
  }

  // Runs to train.steps in `run` (resume: auto | none | PATH); the recipe is kept for inspection.
  int train(const Config& c, const std::string& run, const std::string& resume = "auto", int64_t raise_at = 0) {
    TrainSetup s{c, *comm_, scratch_ / run, resume, torch::kCPU, {}, {}, {}, {}, {}};
    for (auto [name, stream, epoch] :
         {std::tuple{std::string(kMainStream), 1, 64}, std::tuple{std::string("extra"), 2, 24}}) {
      StreamSource src;
      src.name = name;
      src.shape = {1, 2, 2, false};
      src.make_train = [stream = stream, epoch = epoch, &c](const DataPosition& p) {
        return std::make_unique<FakeSource>(stream, c.int64("train.batch_size"), epoch, p);
      };
      s.streams.push_back(src);
    }
    s.make_recipe = [this, raise_at](const RecipeEnv& env) {
      auto r = std::make_unique<ToyRecipe>(env, seen_);
      r->raise_at_ = raise_at;
      return r;
    };
    return run_training(s);
  }

  std::vector<nlohmann::json> metrics(const std::string& run) {
    std::vector<nlohmann::json> out;
    std::ifstream in(scratch_ / run + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  Schema schema_;
  std::unique_ptr<Communicator> comm_;
  ScratchDir scratch_{"trainer"};
  Observed seen_;
};

TEST(Cadence, DueAtMultiplesAndAtTheEnd) {
  Cadence c{5, 4, 6, 10};
  EXPECT_TRUE(c.log(5, 12));
  EXPECT_FALSE(c.log(6, 12));
  EXPECT_TRUE(c.log(12, 12));  // the last step is always logged and checkpointed
  EXPECT_TRUE(c.checkpoint(12, 12));
  EXPECT_TRUE(c.checkpoint(10, 12));
  EXPECT_FALSE(c.checkpoint(11, 12));
  EXPECT_TRUE(c.sample(8, 12));
  EXPECT_FALSE(c.sample(12, 12));  // the end has its own samples and evaluation
  EXPECT_TRUE(c.eval(6, 12));
  EXPECT_FALSE(c.eval(12, 12));
  EXPECT_FALSE((Cadence{5, 0, 0, 10}.sample(10, 12)));  // 0: only at the end
}

// Two networks in one group (f-GAN's single step), one SGD optimizer each with lr 1: each network's
// parameters move by its own gradient clipped to train.clip_grad_norm.
TEST(StepContext, ClipsEachOptimizersGradientsAfterTheReduction) {
  auto comm = make_world_of_one();
  GradSync sync(*comm);
  torch::manual_seed(0);
  torch::nn::Linear a(8, 8), b(8, 1);
  sync.add_group("a+b", {a.ptr(), b.ptr()});
  torch::optim::SGD opt_a(a->parameters(), 1.0), opt_b(b->parameters(), 1.0);
  StepContext ctx(sync, StepOptions{1, 0.25});
  auto flat = [](torch::nn::Module& m) {
    std::vector<torch::Tensor> v;
    for (auto& p : m.parameters()) v.push_back(p.detach().reshape({-1}).clone());
    return torch::cat(v);
  };
  const auto a0 = flat(*a), b0 = flat(*b);
  auto x = torch::randn({16, 8}) * 10;
  Losses out = ctx.update("a+b", {&opt_a, &opt_b}, [&](int64_t) {
    return Losses{{"loss", b->forward(a->forward(x)).pow(2).mean()}};
  });
  EXPECT_NEAR((flat(*a) - a0).norm().item<double>(), 0.25, 1e-5);
  EXPECT_NEAR((flat(*b) - b0).norm().item<double>(), 0.25, 1e-5);
  EXPECT_EQ(out[0].first, "loss");
  EXPECT_FALSE(out[0].second.requires_grad());  // reported values are detached
}

// StepContext's clipping is torch::nn::utils::clip_grad_norm_'s arithmetic, bit for bit, without its
// host synchronisation (it returns the norm as a double); gradients below the bound stay as they are.
TEST(StepContext, ClippingEqualsLibTorchsBitForBit) {
  for (double max_norm : {0.01, 0.5, 1e6}) {
    torch::manual_seed(3);
    std::vector<torch::Tensor> mine, theirs;
    for (auto shape : {std::vector<int64_t>{7, 5}, {5}, {3, 2, 4}}) {
      auto p = torch::randn(shape).requires_grad_();
      p.mutable_grad() = torch::randn(shape) * 3;
      auto q = p.detach().clone().requires_grad_();
      q.mutable_grad() = p.grad().clone();
      mine.push_back(p);
      theirs.push_back(q);
    }
    mine.push_back(torch::zeros({2}).requires_grad_());  // no gradient: skipped by both
    theirs.push_back(torch::zeros({2}).requires_grad_());
    const auto before = mine[0].grad().clone();
    clip_grad_norm(mine, max_norm);
    torch::nn::utils::clip_grad_norm_(theirs, max_norm);
    for (size_t i = 0; i + 1 < mine.size(); ++i)
      EXPECT_TRUE(torch::equal(mine[i].grad(), theirs[i].grad())) << "max_norm " << max_norm << ", tensor " << i;
    EXPECT_FALSE(mine.back().grad().defined());
    if (max_norm == 1e6)
      EXPECT_TRUE(torch::equal(mine[0].grad(), before));
    else
      EXPECT_FALSE(torch::equal(mine[0].grad(), before));
  }
}

// train.deterministic: parsed into TrainOptions, mapped to LibTorch's settings (cuDNN autotuning only
// for CUDA runs that are not deterministic), applied to the global context by the trainer.
TEST_F(TrainerTest, DeterministicFlagIsParsedAndApplied) {
  const KernelSettings saved = current_kernel_settings();
  EXPECT_FALSE(parse_train_options(config({})).deterministic);
  EXPECT_TRUE(parse_train_options(config({{"train.deterministic", "true"}})).deterministic);
  EXPECT_EQ(kernel_settings(true, torch::kCPU), (KernelSettings{true, true, false}));
  EXPECT_EQ(kernel_settings(true, torch::Device("cuda:1")), (KernelSettings{true, true, false}));
  EXPECT_EQ(kernel_settings(false, torch::Device("cuda:0")), (KernelSettings{false, false, true}));
  EXPECT_EQ(kernel_settings(false, torch::kCPU), (KernelSettings{false, false, false}));
  for (const KernelSettings& s : {KernelSettings{true, true, false}, KernelSettings{false, false, true}}) {
    apply_kernel_settings(s);
    EXPECT_EQ(current_kernel_settings(), s);
  }
  // A run applies its setting before the first step, and a deterministic run trains as usual.
  apply_kernel_settings({});
  ASSERT_EQ(train(config({{"train.deterministic", "true"}, {"train.steps", "10"}}), "det"), 0);
  EXPECT_EQ(current_kernel_settings(), (KernelSettings{true, true, false}));
  ASSERT_EQ(train(config({{"train.steps", "10"}}), "nondet"), 0);
  EXPECT_EQ(current_kernel_settings(), (KernelSettings{false, false, false}));  // a CPU run: no autotuning
  apply_kernel_settings(saved);
}

// The CPU generator's state goes through a checkpoint on disk (rng.pt) and comes back on restore: the
// numbers drawn after the restore are those the run drew after taking the snapshot. (The CUDA
// generator's rng_device.pt takes the same path on a GPU: tests/cuda/cuda_train_test.cpp.)
TEST_F(TrainerTest, RngStateRoundTripsThroughACheckpoint) {
  const Config c = config({});
  GradSync sync(*comm_);
  StepContext step(sync, StepOptions{});
  RecipeEnv env{c, {{kMainStream, DataShape{1, 2, 2, false}}}, torch::kCPU, *comm_, sync, step};
  Observed observed;
  ToyRecipe recipe(env, observed);
  torch::manual_seed(1234);
  torch::rand({5});  // somewhere in the stream
  CheckpointMeta meta{7, {}, {{kMainStream, {}}, {"extra", {}}}, 1, "toy", c.to_ini(), {}, {}};
  Snapshot snap = take_snapshot(*comm_, recipe, meta, torch::kCPU);
  const torch::Tensor after_snapshot = torch::rand({16});
  Checkpointer::persist(scratch_ / "rng", snap, Retention{});
  torch::manual_seed(99);  // anything else
  ASSERT_FALSE(torch::equal(torch::rand({16}), after_snapshot));
  ResumePoint from = decide_resume(*comm_, scratch_ / "rng", "auto", "toy");
  ASSERT_FALSE(from.dir.empty());
  EXPECT_FALSE(fs::exists(fs::path(from.dir) / "rng_device.pt"));  // a CPU run has no device generator
  restore_checkpoint(*comm_, recipe, from, torch::kCPU, 0);
  EXPECT_TRUE(torch::equal(torch::rand({16}), after_snapshot));
}

TEST(RngStreams, KeyedSeedsDifferAcrossPurposesRanksAndSeeds) {
  std::set<uint64_t> seen;
  for (uint64_t seed : {0, 1})
    for (auto stream : {RngStream::kTrain, RngStream::kSample, RngStream::kEval})
      for (uint64_t rank : {0, 1, 2}) seen.insert(rng_seed(seed, stream, rank));
  EXPECT_EQ(seen.size(), 18u);
  EXPECT_EQ(stream_seed(7, kMainStream), 7u);  // the main stream keeps run.seed: old runs resume alike
  EXPECT_NE(stream_seed(7, "a"), stream_seed(7, "b"));
}

// The factor at 0-based step s of a 10-step run: warm-up, then hold, then the decay to 0 at the end.
TEST(LrSchedule, HoldKeepsTheFullRateThenLinearOrCosineDecaysToZero) {
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 0, 10, 0), 1.0);  // no hold: as before
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 5, 10, 0), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 9, 10, 0), 0.1);
  for (int64_t s = 0; s <= 4; ++s) EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, s, 10, 0, 4), 1.0) << s;
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 7, 10, 0, 4), 0.5);  // 1 at step 4, 0 at step 10
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 9, 10, 0, 4), 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kCosine, 7, 10, 0, 4), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 0, 10, 2, 2), 0.5);  // warm-up first, then the hold
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 3, 10, 2, 2), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kLinear, 7, 10, 2, 2), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(LrSchedule::kConstant, 9, 10, 0, 4), 1.0);
}

TEST_F(TrainerTest, HeldLinearScheduleSetsTheLearningRatesAndConstantRefusesAHold) {
  ASSERT_EQ(train(config({{"train.lr_schedule", "linear"}, {"train.lr_hold_steps", "20"}}), "held"), 0);
  const auto m = metrics("held");
  ASSERT_EQ(m.size(), 8u);
  // Logged after steps 5, 10, ... 40: the rate of the step just taken (0-based 4, 9, ... 39). Adam's lr 0.05.
  for (size_t i = 0; i < m.size(); ++i) {
    const int64_t s = 5 * static_cast<int64_t>(i + 1) - 1;
    const double factor = s <= 20 ? 1.0 : 1.0 - static_cast<double>(s - 20) / 20.0;
    EXPECT_NEAR(m[i]["lr"].get<double>(), 0.05 * factor, 1e-12) << "step " << s;
  }
  EXPECT_THROW(parse_train_options(config({{"train.lr_hold_steps", "20"}})), UsageError);
}

TEST_F(TrainerTest, CheckpointsMetricsAndRetentionFollowTheCadences) {
  ASSERT_EQ(train(config({{"train.keep_every", "20"}}), "run"), 0);
  // keep_last 2 → steps 40 and 30; keep_every 20 → 20 too.
  std::vector<std::string> names;
  for (const auto& d : list_checkpoints(scratch_ / "run")) names.push_back(fs::path(d).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"step-00000040", "step-00000030", "step-00000020"}));
  EXPECT_EQ(read_file(scratch_ / "run/checkpoints/LATEST"), "step-00000040\n");
  const auto m = metrics("run");
  ASSERT_EQ(m.size(), 8u);  // every 5 steps
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i]["step"], 5 * static_cast<int64_t>(i + 1));
  // The meter averages over the steps since the last log: steps 1..5 saw index 0, 8, 16, 24, 32.
  EXPECT_DOUBLE_EQ(m[0]["index"].get<double>(), 16.0);
  // Steps 6..10: 40, 48, 56 (then the epoch of 64 wraps) 0, 8.
  EXPECT_DOUBLE_EQ(m[1]["index"].get<double>(), (40 + 48 + 56 + 0 + 8) / 5.0);
  EXPECT_EQ(m[7]["epoch"], 5);  // 40 steps × 8 = 320 samples = 5 epochs of 64
  EXPECT_EQ(seen_.calls, 40);
}

TEST_F(TrainerTest, ResumeContinuesExactlyWithRecipeStateAndEveryStreamsPosition) {
  ASSERT_EQ(train(config({}), "straight"), 0);
  const torch::Tensor straight = seen_.weights;
  const double straight_extra = seen_.extra_sum;

  ASSERT_EQ(train(config({{"train.steps", "20"}}), "split"), 0);
  auto manifest = nlohmann::json::parse(read_file(scratch_ / "split/checkpoints/step-00000020/manifest.json"));
  EXPECT_EQ(manifest["data_positions"]["extra"]["epoch"], 6);  // 20 steps × 8 = 160 = 6 epochs of 24 + 16
  EXPECT_EQ(manifest["data_positions"]["extra"]["index"], 16);
  EXPECT_EQ(manifest["data_positions"]["train"]["index"], 32);
  EXPECT_TRUE(manifest["files"].contains("state-calls.pt"));
  EXPECT_TRUE(manifest["files"].contains("state_local-extra_sum.pt"));
  ASSERT_EQ(train(config({}), "split"), 0);  // resume auto from step 20
  EXPECT_TRUE(torch::equal(seen_.weights, straight));
  EXPECT_EQ(seen_.calls, 40);                  // shared state came back
  EXPECT_EQ(seen_.extra_sum, straight_extra);  // per-rank state and the extra stream's place
  // The metrics history is whole: 4 lines before the resume, 4 after, no step twice.
  const auto m = metrics("split");
  ASSERT_EQ(m.size(), 8u);
  EXPECT_EQ(m[4]["step"], 25);
}

TEST_F(TrainerTest, ResumeDecision) {
  EXPECT_TRUE(decide_resume(*comm_, scratch_ / "nothing", "auto", "toy").dir.empty());
  EXPECT_THROW(decide_resume(*comm_, scratch_ / "nothing", scratch_ / "nothing/checkpoints/step-1", "toy"),
               CheckpointError);
  ASSERT_EQ(train(config({{"train.steps", "10"}}), "run"), 0);
  EXPECT_TRUE(decide_resume(*comm_, scratch_ / "run", "none", "toy").dir.empty());
  ResumePoint p = decide_resume(*comm_, scratch_ / "run", "auto", "toy");
  EXPECT_EQ(p.meta.step, 10);
  EXPECT_EQ(fs::path(p.dir).filename(), "step-00000010");
  try {
    decide_resume(*comm_, scratch_ / "run", "auto", "vae");
    FAIL() << "a checkpoint of another recipe was accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("recipe 'toy'"), std::string::npos) << e.what();
  }
  // A run already at train.steps has nothing to do.
  EXPECT_EQ(train(config({{"train.steps", "10"}}), "run"), 0);
  EXPECT_EQ(seen_.calls, 10);
}

TEST_F(TrainerTest, MicroBatchesTakeTheSameStep) {
  ASSERT_EQ(train(config({{"train.steps", "10"}}), "one"), 0);
  const torch::Tensor one = seen_.weights;
  ASSERT_EQ(train(config({{"train.steps", "10"}, {"train.micro_batches", "4"}}), "four"), 0);
  EXPECT_LT((seen_.weights - one).abs().max().item<double>(), 1e-5);
  EXPECT_GT((one - torch::zeros_like(one)).abs().max().item<double>(), 0);
  EXPECT_THROW(train(config({{"train.micro_batches", "3"}}), "three"), UsageError);  // 8 rows per rank
}

// The stop vote started at the end of step 7 (the signal came during it) is read at the end of step 8:
// the run stops there, within two steps, with a checkpoint.
TEST_F(TrainerTest, SignalStopsAtTheNextStepBoundaryWithACheckpoint) {
  EXPECT_EQ(train(config({}), "stop", "auto", /*raise_at=*/7), static_cast<int>(ExitCode::kStopped));
  EXPECT_EQ(seen_.calls, 8);
  const auto dirs = list_checkpoints(scratch_ / "stop");
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(fs::path(dirs.front()).filename(), "step-00000008");
  clear_stop_request();
  ASSERT_EQ(train(config({}), "stop"), 0);  // and the run completes from there
  EXPECT_EQ(seen_.calls, 40);
}

}  // namespace
}  // namespace gantry
