// `gantry train` with the PixelCNN recipe on 2 ranks (mpiexec), on tiny 8x8 datasets this test makes:
// the run stays finite, learns, evaluates and samples, and a run stopped at step 10 and resumed ends
// bit-identical (network, Adam state, logged losses) to an uninterrupted one. The residual net on
// grayscale ramps (it must learn them), the gated one on RGB noise (`data convert --format synthetic`).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>

#include "checkpoint/checkpoint.h"
#include "core/fs.h"
#include "support/testing.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::ScratchDir;

const std::string kGantry = GANTRY_BIN;

// A plain (not gzipped) idx3 file of n 8x8 images: a 4x4 white square (255) at one of 16 places on black
// (0), so that a few steps learn much (two values, and a pixel mostly repeats its neighbours).
void write_idx(const std::string& path, int n, int first) {
  std::string s;
  for (uint32_t v : {0x00000803u, static_cast<uint32_t>(n), 8u, 8u})
    for (int shift : {24, 16, 8, 0}) s.push_back(static_cast<char>((v >> shift) & 0xFF));
  for (int k = first; k < first + n; ++k)
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) {
        const int top = k % 4, left = (k / 4) % 4;
        const bool in = i >= top && i < top + 4 && j >= left && j < left + 4;
        s.push_back(static_cast<char>(in ? 255 : 0));
      }
  testing::write_bytes(path, s);
}

class PixelCnnTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir("pixelcnn");
    write_idx(*scratch_ / "gray-train.idx", 256, 0);
    write_idx(*scratch_ / "gray-eval.idx", 64, 1000);
    for (const char* split : {"gray-train", "gray-eval"}) {
      auto r = run_command(kGantry + " data convert --quiet --format idx --images " + (*scratch_ / split) +
                           ".idx --out " + (*scratch_ / split));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    for (auto [split, count, seed] : {std::tuple{"rgb-train", 256, 1}, std::tuple{"rgb-eval", 64, 2}}) {
      auto r = run_command(kGantry + " data convert --quiet --format synthetic --channels 3 --resolution 8 --count " +
                           std::to_string(count) + " --seed " + std::to_string(seed) + " --out " + (*scratch_ / split));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete scratch_; }

  static std::string run_dir(const std::string& name) { return *scratch_ / ("run-" + name); }
  static std::string cmd(const std::string& run, int steps, const std::string& arch, const std::string& data) {
    return std::string(MPIEXEC) + " --oversubscribe -n 2 " + kGantry + " train --config " + GANTRY_SOURCE_DIR +
           "/experiments/pixelcnn_fashion_mnist.ini --data.path " + (*scratch_ / (data + "-train")) +
           " --data.eval_path " + (*scratch_ / (data + "-eval")) + " --run-dir " + run_dir(run) + " --train.steps " +
           std::to_string(steps) +
           " --train.batch_size 16 --train.threads 1 --data.workers 1 --train.log_every 5"
           " --train.checkpoint_every 10 --train.sample_every 15 --train.eval_every 10 --train.eval_batches 2"
           " --train.lr 1e-2 --train.lr_schedule constant --pixelcnn.layers 2 --pixelcnn.hidden 8"
           " --pixelcnn.out_hidden 16 --pixelcnn.arch " +
           arch;
  }
  // step:checksum of a file of the newest checkpoint.
  static std::string final_checksum(const std::string& run, const std::string& file) {
    auto dirs = list_checkpoints(run_dir(run));
    if (dirs.empty()) return "none";
    auto j = nlohmann::json::parse(read_file(dirs.front() + "/manifest.json"));
    return j["step"].dump() + ":" + j["files"][file]["checksum"].get<std::string>();
  }
  // The metrics.jsonl records of a run, keyed by (kind, step): kind "train" or "eval".
  using Records = std::map<std::pair<std::string, int64_t>, nlohmann::json>;
  static Records metrics(const std::string& run) {
    Records out;
    std::ifstream in(run_dir(run) + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      out[{j.contains("loss") ? "train" : "eval", j["step"].get<int64_t>()}] = j;
    }
    return out;
  }

  static ScratchDir* scratch_;
};
ScratchDir* PixelCnnTrain::scratch_ = nullptr;

TEST_F(PixelCnnTrain, TwoRanksStayFiniteLearnAndResumeBitExactly) {
  for (const auto& [arch, data] : {std::pair<std::string, std::string>{"residual", "gray"}, {"gated", "rgb"}}) {
    auto whole = run_command(cmd(arch + "-a", 20, arch, data));
    ASSERT_EQ(whole.exit_code, 0) << whole.output;
    ASSERT_EQ(run_command(cmd(arch + "-b", 10, arch, data)).exit_code, 0);
    auto resumed = run_command(cmd(arch + "-b", 20, arch, data));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
    // The network's archive, bit for bit. (Adam's archive is not byte-stable between processes; its state
    // shows in the losses after the resume, compared below, and in the next steps' weights.)
    EXPECT_EQ(final_checksum(arch + "-b", "pixelcnn.pt"), final_checksum(arch + "-a", "pixelcnn.pt")) << arch;

    auto a = metrics(arch + "-a"), b = metrics(arch + "-b");
    auto value = [](Records& m, const char* kind, int64_t step, const char* key) {
      auto it = m.find({kind, step});
      return it == m.end() || !it->second.contains(key) ? std::nan("") : it->second[key].get<double>();
    };
    for (int64_t step : {5, 10, 15, 20}) {
      const double loss = value(a, "train", step, "loss");
      EXPECT_TRUE(std::isfinite(loss)) << arch << " step " << step;
      EXPECT_EQ(loss, value(b, "train", step, "loss")) << arch << " step " << step;
    }
    const double dims = data == "rgb" ? 3 * 64 : 64;
    if (data == "gray") {  // starts near 8 bits/dim (uniform over 256 values) and learns the squares
      EXPECT_GT(value(a, "train", 5, "loss"), 5.0);
      EXPECT_LT(value(a, "train", 20, "loss"), value(a, "train", 5, "loss") - 3.0);  // measured 7.6 → 2.1
    }
    for (int64_t step : {10, 20}) {
      const double bpd = value(a, "eval", step, "eval_bits_per_dim");
      EXPECT_TRUE(std::isfinite(bpd)) << arch << " step " << step;
      if (data == "gray") {
        EXPECT_LT(bpd, step == 10 ? 6.5 : 3.0);  // measured 4.4, 1.3
      }
      EXPECT_NEAR(value(a, "eval", step, "eval_nats"), bpd * dims * std::log(2.0), 1e-6) << arch;
      EXPECT_EQ(bpd, value(b, "eval", step, "eval_bits_per_dim")) << arch << " step " << step;
    }
    EXPECT_TRUE(fs::exists(run_dir(arch + "-a") + "/samples/step-00000015.png")) << arch;
    EXPECT_TRUE(fs::exists(run_dir(arch + "-a") + "/samples/step-00000020.png")) << arch;
  }
}

// One-line usage errors, exit 2, naming the key.
TEST_F(PixelCnnTrain, UnbuildableSettingsExitTwoNamingTheKey) {
  auto r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/pixelcnn_fashion_mnist.ini" +
                       " --data.path " + (*scratch_ / "gray-train") + " --data.eval_path \"\" --run-dir " +
                       run_dir("bad") + " --pixelcnn.kernel 4 --train.steps 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("gantry: error: pixelcnn.kernel: must be odd"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace gantry
