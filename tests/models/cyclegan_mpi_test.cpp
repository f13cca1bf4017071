// CycleGAN end to end under `mpiexec -n 2 gantry train`: two synthetic domains of different sizes
// (24 and 20 images of 20x20, random 16x16 crops), tiny networks, pools of 3 (full after two steps, so
// the random choices run). A run stopped at step 6 and resumed to 12 ends bit-identical to an
// uninterrupted 12-step run: networks, both ranks' pools, both streams' positions, every logged loss.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "core/fs.h"
#include "support/testing.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::ScratchDir;

const std::string kGantry = GANTRY_BIN;

class CycleGanMpi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir("cyclegan");
    auto r = testing::make_colour_domains(*scratch_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete scratch_; }

  static std::string run_dir(const std::string& run) { return *scratch_ / ("run-" + run); }
  // Held learning rate for 6 steps, then linear decay: a first leg of 6 steps takes the same steps.
  static testing::CommandResult train(const std::string& run, int steps) {
    return run_command(std::string(MPIEXEC) + " --oversubscribe -n 2 " + kGantry + " train --config " +
                       GANTRY_SOURCE_DIR + "/experiments/cyclegan_fashion_mnist.ini --run-dir " + run_dir(run) +
                       " --data.path " + (*scratch_ / "a") + " --data.b_path " + (*scratch_ / "b") +
                       " --data.eval_path " + (*scratch_ / "a") + " --data.workers 1 --train.steps " +
                       std::to_string(steps) +
                       " --train.batch_size 4 --train.threads 1 --train.log_every 2 --train.checkpoint_every 6"
                       " --train.sample_every 4 --train.eval_every 0 --train.eval_batches 2"
                       " --train.lr_schedule linear --train.lr_hold_steps 6" +
                       testing::kTinyCycleGan);
  }
  static nlohmann::json manifest(const std::string& run, int step) {
    return nlohmann::json::parse(read_file(run_dir(run) + "/checkpoints/" + checkpoint_name(step) + "/manifest.json"));
  }
  // The training lines of metrics.jsonl (evaluations are separate lines), and the evaluations.
  static std::vector<nlohmann::json> metrics(const std::string& run, bool eval = false) {
    std::vector<nlohmann::json> out;
    std::ifstream in(run_dir(run) + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("eval_cycle_a") == eval) out.push_back(j);
    }
    return out;
  }

  static ScratchDir* scratch_;
};
ScratchDir* CycleGanMpi::scratch_ = nullptr;

TEST_F(CycleGanMpi, TwoRanksStayFiniteAndResumeBitExactlyPoolsAndStreamsIncluded) {
  auto whole = train("whole", 12);
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  ASSERT_EQ(train("split", 6).exit_code, 0);
  auto resumed = train("split", 12);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;

  const auto want = manifest("whole", 12), got = manifest("split", 12);
  for (const char* file :
       {"generator_a2b.pt", "generator_b2a.pt", "discriminator_a.pt", "discriminator_b.pt", "state_local-pool_a.pt",
        "state_local-pool_a_count.pt", "state_local-pool_b.pt", "state_local-pool_b_count.pt", "state-visual_a.pt"}) {
    ASSERT_TRUE(want["files"].contains(file)) << file;
    EXPECT_EQ(got["files"][file]["checksum"], want["files"][file]["checksum"]) << file;
  }
  // The networks moved between the checkpoints, so equal files are not two copies of a start.
  EXPECT_NE(manifest("whole", 6)["files"]["generator_a2b.pt"]["checksum"],
            want["files"]["generator_a2b.pt"]["checksum"]);
  // Both streams: A (24 images, 6 steps of 4 an epoch) is at the start of epoch 2, B (20: 5 steps) 2 steps in.
  EXPECT_EQ(want["data_positions"], got["data_positions"]);
  EXPECT_EQ(want["data_positions"]["train"], (nlohmann::json{{"epoch", 2}, {"index", 0}}));
  EXPECT_EQ(want["data_positions"]["b"], (nlohmann::json{{"epoch", 2}, {"index", 8}}));

  // Each rank's pool is full (3) and its own: the two ranks hold different images.
  const std::string ckpt = run_dir("whole") + "/checkpoints/step-00000012/";
  EXPECT_TRUE(torch::equal(load_tensor(ckpt + "state_local-pool_b_count.pt"), torch::full({2, 1}, 3, torch::kInt64)));
  const torch::Tensor pools = load_tensor(ckpt + "state_local-pool_b.pt");  // (rank, 3, C, 16, 16)
  ASSERT_EQ(pools.sizes(), (std::vector<int64_t>{2, 3, 3, 16, 16}));
  EXPECT_FALSE(torch::equal(pools[0], pools[1]));
  EXPECT_GT(pools.abs().min().item<float>() + pools.abs().max().item<float>(), 0.0f);

  // Every logged loss is finite and the same in both runs; the rate is held, then decays.
  const auto a = metrics("whole"), b = metrics("split");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    for (const char* k : {"loss_d", "loss_g", "loss_d_a", "loss_d_b", "gan_g", "gan_f", "cycle_a", "cycle_b",
                          "identity_a", "identity_b"}) {
      ASSERT_TRUE(a[i].contains(k)) << a[i].dump();
      EXPECT_TRUE(std::isfinite(a[i][k].get<double>())) << a[i].dump();
      EXPECT_EQ(a[i][k], b[i][k]) << k << " at step " << a[i]["step"];
    }
  }
  EXPECT_DOUBLE_EQ(a[2]["lr"].get<double>(), 2e-4);                      // step 6 (0-based 5): held
  EXPECT_DOUBLE_EQ(a[5]["lr"].get<double>(), 2e-4 * (1.0 - 5.0 / 6.0));  // step 12 (0-based 11)
  EXPECT_TRUE(fs::exists(run_dir("whole") + "/samples/step-00000004.png"));
  // The held-out cycle error of domain A at the end: |F(G(a)) - a| in pixels of [-1, 1].
  const auto evals = metrics("whole", true);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_GT(evals[0]["eval_cycle_a"].get<double>(), 0.0);
  EXPECT_LT(evals[0]["eval_cycle_a"].get<double>(), 2.0);
}

}  // namespace
}  // namespace gantry
