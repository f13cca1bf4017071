// `gantry train` on a GPU (needs one, else exit 77): with train.deterministic a run stopped at a
// checkpoint and resumed ends bit for bit where the uninterrupted run ends (networks, both RNG files,
// logged losses); a checkpoint written on the CPU resumes on the GPU and one written on the GPU resumes
// on the CPU. DCGAN (convolutions, BatchNorm: cuDNN) on synthetic 32x32 images, a few steps.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/fs.h"
#include "support/testing.h"

namespace gantry {
namespace {

using testing::run_command;
using testing::ScratchDir;

const std::string kGantry = GANTRY_BIN;
const std::string kCpuOnly = "CUDA_VISIBLE_DEVICES= ";  // LibTorch then sees no GPU: the run uses the CPU

class CudaTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir("cuda_train");
    auto r = run_command(kGantry +
                         " data convert --quiet --format synthetic --count 512 --resolution 32 --channels 1 "
                         "--out " +
                         data());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete scratch_; }

  static std::string data() { return *scratch_ / "data"; }
  static std::string run_dir(const std::string& name) { return *scratch_ / ("run-" + name); }
  static std::string train(const std::string& run, int64_t steps, const std::string& env = "") {
    return env + kGantry + " train --config " + std::string(GANTRY_SOURCE_DIR) +
           "/experiments/dcgan_fashion_mnist.ini --data.path " + data() + " --run-dir " + run_dir(run) +
           " --train.steps " + std::to_string(steps) +
           " --train.batch_size 32 --train.log_every 2 --train.checkpoint_every 4 --train.sample_every 0"
           " --train.deterministic true --data.workers 1 --dcgan.g_width 16 --dcgan.d_width 16 --dcgan.z_dim 16";
  }
  static nlohmann::json final_manifest(const std::string& run) {
    auto dirs = list_checkpoints(run_dir(run));
    if (dirs.empty()) return {};
    return nlohmann::json::parse(read_file(dirs.front() + "/manifest.json"));
  }
  static std::string metrics(const std::string& run) { return read_file(run_dir(run) + "/metrics.jsonl"); }
  static std::string without_time(const std::string& jsonl) {  // wall time and speed differ between runs
    std::string out;
    std::istringstream in(jsonl);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      j.erase("time");
      j.erase("images_per_s");
      out += j.dump() + "\n";
    }
    return out;
  }

  static ScratchDir* scratch_;
};
ScratchDir* CudaTrain::scratch_ = nullptr;

TEST_F(CudaTrain, DeterministicResumeIsBitExact) {
  auto ref = run_command(train("ref", 8));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  ASSERT_EQ(run_command(train("split", 4)).exit_code, 0);
  auto resumed = run_command(train("split", 8));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;

  const auto a = final_manifest("ref"), b = final_manifest("split");
  ASSERT_EQ(a["step"], 8);
  ASSERT_EQ(b["step"], 8);
  ASSERT_TRUE(a["files"].contains("rng_device.pt")) << a.dump();  // a GPU run saves the CUDA generator
  // (Optimizer archives key their state by tensor address, so their bytes differ between processes.)
  for (const char* file : {"generator.pt", "discriminator.pt", "rng.pt", "rng_device.pt"})
    EXPECT_EQ(a["files"][file]["checksum"], b["files"][file]["checksum"]) << file;
  EXPECT_EQ(without_time(metrics("split")), without_time(metrics("ref")));
  // Two uninterrupted deterministic runs agree too (no autotuning picked different kernels).
  auto again = run_command(train("again", 8));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(final_manifest("again")["files"]["generator.pt"]["checksum"], a["files"]["generator.pt"]["checksum"]);
}

TEST_F(CudaTrain, CheckpointsMoveBetweenCpuAndGpu) {
  // Written on the CPU (no rng_device.pt), resumed on the GPU: the CUDA generator starts a fresh stream.
  auto cpu = run_command(train("cpu-gpu", 4, kCpuOnly));
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  EXPECT_FALSE(final_manifest("cpu-gpu")["files"].contains("rng_device.pt"));
  auto gpu = run_command(train("cpu-gpu", 8));
  ASSERT_EQ(gpu.exit_code, 0) << gpu.output;
  EXPECT_NE(gpu.output.find("resumed from"), std::string::npos) << gpu.output;
  EXPECT_TRUE(final_manifest("cpu-gpu")["files"].contains("rng_device.pt"));
  // Written on the GPU, resumed on the CPU: rng_device.pt is not read.
  ASSERT_EQ(run_command(train("gpu-cpu", 4)).exit_code, 0);
  auto back = run_command(train("gpu-cpu", 8, kCpuOnly));
  ASSERT_EQ(back.exit_code, 0) << back.output;
  EXPECT_NE(back.output.find("resumed from"), std::string::npos) << back.output;
  EXPECT_EQ(final_manifest("gpu-cpu")["step"], 8);
  EXPECT_FALSE(final_manifest("gpu-cpu")["files"].contains("rng_device.pt"));
}

}  // namespace
}  // namespace gantry
