// End-to-end tests of `gantry train` (VAE on a slice of Fashion-MNIST): exact resume, signals, a killed
// rank, a corrupt checkpoint, 1 rank vs 2 ranks, and configuration errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/optim/adam.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "core/fs.h"
#include "core/torch_compat.h"
#include "dcgan/dcgan_model.h"
#include "fgan/fgan_model.h"
#include "report/doctor.h"
#include "support/testing.h"
#include "vae/vae_model.h"

extern char** environ;

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::ScratchDir;

const std::string kGantry = GANTRY_BIN;
const std::string kMpirun = std::string(MPIEXEC) + " --oversubscribe";
constexpr int kSteps = 1500;

// A process in the background (sh -c), output to a file.
class Background {
 public:
  explicit Background(const std::string& cmd) {
    std::string line = cmd;
    const char* argv[] = {"/bin/sh", "-c", line.c_str(), nullptr};
    if (posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) pid_ = -1;
  }
  ~Background() {
    if (pid_ > 0 && !done_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Exit code, or -1 when still running after `seconds`.
  int wait(double seconds) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
};

class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir("train");
    // 6000 training and 1000 held-out images keep each run to seconds.
    auto a = testing::convert_fashion_mnist("train", 6000, data("train"), /*labels=*/true);
    auto b = testing::convert_fashion_mnist("t10k", 1000, data("t10k"), /*labels=*/true);
    auto c = testing::convert_fashion_mnist("train", 2000, data("train32"), false, " --resolution 32");
    ASSERT_EQ(a.exit_code, 0) << a.output;
    ASSERT_EQ(b.exit_code, 0) << b.output;
    ASSERT_EQ(c.exit_code, 0) << c.output;
    // The uninterrupted reference: 2 ranks, kSteps steps.
    auto r = run_command(train_cmd(2, "ref", kSteps));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete scratch_; }

  static std::string data(const std::string& split) { return *scratch_ / ("fm-" + split); }
  static std::string run_dir(const std::string& name) { return *scratch_ / ("run-" + name); }
  static std::string train_cmd(int ranks, const std::string& run, int64_t steps, const std::string& extra = "") {
    std::string base = kGantry + " train --config " + std::string(GANTRY_SOURCE_DIR) +
                       "/experiments/vae_fashion_mnist.ini --data.path " + data("train") + " --data.eval_path " +
                       data("t10k") + " --run-dir " + run_dir(run) + " --train.steps " + std::to_string(steps) +
                       " --train.batch_size 32 --train.threads 1 --train.log_every 20 --train.checkpoint_every 200"
                       " --train.sample_every 300 --train.eval_every 700 --train.eval_batches 4 " +
                       extra;
    return ranks == 1 ? base : kMpirun + " -n " + std::to_string(ranks) + " " + base;
  }
  // (step, loss) of every training line of a run's metrics.jsonl, in file order.
  static std::vector<std::pair<int64_t, double>> train_metrics(const std::string& run) {
    std::vector<std::pair<int64_t, double>> out;
    std::ifstream in(run_dir(run) + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) out.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
    }
    return out;
  }
  // Checksum of a network archive in the newest checkpoint of a run.
  static std::string final_checksum(const std::string& run, const std::string& file = "vae.pt") {
    auto dirs = list_checkpoints(run_dir(run));
    if (dirs.empty()) return "none";
    auto j = nlohmann::json::parse(read_file(dirs.front() + "/manifest.json"));
    return j["step"].dump() + ":" + j["files"][file]["checksum"].get<std::string>();
  }
  // Two runs that took the same steps up to floating-point summation order. Adam divides each
  // gradient element by its own running magnitude, so elements whose gradient nearly cancels turn
  // rounding differences into visible ones within a few steps. Measured on this test's data after 10
  // steps: the same 1-rank run with 1 vs 2 LibTorch threads (summation order alone) differs by up to
  // 3e-4 in a few elements, 5e-7 on average per tensor; a real discrepancy — the same run with random
  // flips, i.e. other pixels than the reference saw — by 1e-2 at most and 1e-3 on average. The bounds
  // sit between the two.
  static void expect_same_steps(vae::Vae& a, vae::Vae& b) {
    auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto& p : pa) {
      auto diff = (p.value() - pb[p.key()]).abs();
      EXPECT_LT(diff.mean().item<double>(), 1e-5) << p.key();
      EXPECT_LT(diff.max().item<double>(), 2e-3) << p.key();
    }
  }
  static int64_t latest_step(const std::string& run) {
    auto dirs = list_checkpoints(run_dir(run));
    return dirs.empty() ? -1 : nlohmann::json::parse(read_file(dirs.front() + "/manifest.json"))["step"].get<int64_t>();
  }
  // Pid of one rank process of a run (not mpirun).
  static pid_t rank_pid(const std::string& run) {
    auto r = run_command("pgrep -f '^" + kGantry + " train .*" + run_dir(run) + " ' | head -n 1");
    return static_cast<pid_t>(std::atoi(r.output.c_str()));
  }
  static bool wait_for_checkpoint(const std::string& run, double seconds) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (latest_step(run) > 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  static ScratchDir* scratch_;
};
ScratchDir* TrainCli::scratch_ = nullptr;

TEST_F(TrainCli, RunDirectoryHasWhatTheContractSays) {
  fs::path run = run_dir("ref");
  for (const char* p : {"config.ini", "metrics.jsonl", "checkpoints/LATEST", "logs/rank-0.log", "logs/rank-1.log",
                        "samples/step-00000300.png", "samples/step-00001500.png"})
    EXPECT_TRUE(fs::exists(run / p)) << p;
  EXPECT_EQ(read_file((run / "checkpoints/LATEST").string()), "step-00001500\n");
  // keep_last 3: 1100? no — 1000, 1200, 1400 … newest three of the 200-step cadence plus the final one.
  auto dirs = list_checkpoints(run.string());
  ASSERT_EQ(dirs.size(), 3u);
  EXPECT_EQ(fs::path(dirs[0]).filename(), "step-00001500");
  EXPECT_EQ(fs::path(dirs[1]).filename(), "step-00001400");
  // metrics.jsonl: a record per logged step with the contract's keys, and held-out evaluations.
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  int train_lines = 0, eval_lines = 0;
  double first_loss = 0, last_loss = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("eval_loss")) {
      ++eval_lines;
      EXPECT_GT(j["eval_bits_per_dim"].get<double>(), 0.0);
      continue;
    }
    for (const char* k : {"step", "epoch", "time", "images_per_s", "lr", "loss"}) EXPECT_TRUE(j.contains(k)) << line;
    if (train_lines++ == 0) first_loss = j["loss"];
    last_loss = j["loss"];
  }
  EXPECT_EQ(train_lines, kSteps / 20);
  EXPECT_EQ(eval_lines, 3);  // steps 700, 1400 and the end
  EXPECT_LT(last_loss, first_loss - 50) << "the VAE should learn: negative ELBO falls";
  // Python-readable archives are checked by torch.jit.load in the README; here: C++ loads them back.
  vae::Vae model(vae::VaeOptions{});
  load_from_file(model.ptr(), (run / "checkpoints/step-00001500/vae.pt").string());
}

TEST_F(TrainCli, PlotDrawsTheCurvesOfARun) {
  const std::string plot = "/usr/bin/python3 " + std::string(GANTRY_SOURCE_DIR) + "/launch/plot.py ";
  auto r = run_command(plot + run_dir("ref"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string png = testing::read_bytes(run_dir("ref") + "/curves.png");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  ScratchDir empty;
  auto bad = run_command(plot + empty.path());
  EXPECT_EQ(bad.exit_code, 3) << bad.output;
  EXPECT_NE(bad.output.find("plot: error: " + empty.path() + "/metrics.jsonl"), std::string::npos) << bad.output;
}

TEST_F(TrainCli, ResumeAtTheSameWorldSizeIsBitExact) {
  ASSERT_EQ(run_command(train_cmd(2, "split", 600)).exit_code, 0);
  auto r = run_command(train_cmd(2, "split", kSteps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos);
  EXPECT_EQ(final_checksum("split"), final_checksum("ref"));
  // Both halves' metrics are there, once each, with the uninterrupted run's values (only rank 0 writes
  // the file; a resume keeps the lines up to its checkpoint).
  const auto split = train_metrics("split");
  EXPECT_EQ(split.size(), static_cast<size_t>(kSteps / 20));
  EXPECT_EQ(split, train_metrics("ref"));
  // Each rank's log records both sessions: where each starts and what that rank runs on.
  for (int rank : {0, 1}) {
    std::ifstream log(run_dir("split") + "/logs/rank-" + std::to_string(rank) + ".log");
    std::vector<std::string> sessions;
    for (std::string line; std::getline(log, line);)
      if (line.rfind("session from step ", 0) == 0) sessions.push_back(line);
    ASSERT_EQ(sessions.size(), 2u) << "rank " << rank;
    for (int i = 0; i < 2; ++i) {
      const std::string head = "session from step " + std::string(i == 0 ? "0" : "600") + ", rank " +
                               std::to_string(rank) + " of 2; host: " + host_name() + "; ";
      EXPECT_EQ(sessions[i].rfind(head, 0), 0u) << sessions[i];
      EXPECT_NE(sessions[i].find("; intra-op threads: 1; CPU: " + cpu_description() + "; BLAS: "), std::string::npos)
          << sessions[i];
    }
  }
  // Optimizer archives key their state by tensor address, so compare the Adam state itself.
  vae::Vae a(vae::VaeOptions{}), b(vae::VaeOptions{});
  torch::optim::Adam oa(a->parameters()), ob(b->parameters());
  load_from_file(oa, run_dir("split") + "/checkpoints/step-00001500/adam.optim.pt");
  load_from_file(ob, run_dir("ref") + "/checkpoints/step-00001500/adam.optim.pt");
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    auto& sa = static_cast<torch::optim::AdamParamState&>(*oa.state().at(compat::optim_state_key(pa[i])));
    auto& sb = static_cast<torch::optim::AdamParamState&>(*ob.state().at(compat::optim_state_key(pb[i])));
    EXPECT_EQ(sa.step(), kSteps);
    EXPECT_TRUE(torch::equal(sa.exp_avg(), sb.exp_avg())) << "parameter " << i;
    EXPECT_TRUE(torch::equal(sa.exp_avg_sq(), sb.exp_avg_sq())) << "parameter " << i;
  }
}

TEST_F(TrainCli, ResumeOnOtherKernelsSaysItIsNotBitForBit) {
  // A checkpoint records the threads and kernels it was written with (manifest "machine"); a resume on the
  // same says nothing, one on another kind of machine says that the bits will differ, and goes on.
  ASSERT_EQ(run_command(train_cmd(1, "kernels", 4)).exit_code, 0);
  const std::string manifest = run_dir("kernels") + "/checkpoints/step-00000004/manifest.json";
  auto j = nlohmann::json::parse(read_file(manifest));
  EXPECT_EQ(j["machine"].get<std::string>().rfind("intra-op threads: 1; CPU: " + cpu_description() + "; BLAS: ", 0), 0u)
      << j["machine"];
  auto same = run_command(train_cmd(1, "kernels", 6));
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("resumed from"), std::string::npos) << same.output;
  EXPECT_EQ(same.output.find("other kernels"), std::string::npos) << same.output;
  const std::string other = run_dir("kernels") + "/checkpoints/step-00000006/manifest.json";
  j = nlohmann::json::parse(read_file(other));
  j["machine"] = "intra-op threads: 1; CPU: Elsewhere (avx2)";
  testing::write_bytes(other, j.dump(2) + "\n");
  auto moved = run_command(train_cmd(1, "kernels", 8));
  ASSERT_EQ(moved.exit_code, 0) << moved.output;
  EXPECT_NE(moved.output.find("resumed on other kernels than step-00000006 was written with (then: intra-op threads: "
                              "1; CPU: Elsewhere (avx2); now: intra-op threads: 1; CPU: " +
                              cpu_description()),
            std::string::npos)
      << moved.output;
  EXPECT_EQ(latest_step("kernels"), 8);
}

TEST_F(TrainCli, SigtermOnOneRankCheckpointsExits75AndResumesExactly) {
  Background job(train_cmd(2, "term", kSteps) + " > " + run_dir("term") + ".out 2>&1");
  ASSERT_TRUE(wait_for_checkpoint("term", 60));
  pid_t pid = rank_pid("term");
  ASSERT_GT(pid, 0);
  kill(pid, SIGTERM);
  int code = job.wait(60);
  EXPECT_EQ(code, 75) << testing::read_bytes(run_dir("term") + ".out");
  int64_t stopped_at = latest_step("term");
  EXPECT_GT(stopped_at, 0);
  EXPECT_LT(stopped_at, kSteps);
  auto r = run_command(train_cmd(2, "term", kSteps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(final_checksum("term"), final_checksum("ref"));
}

TEST_F(TrainCli, KilledRankEndsTheJobAndResumeAutoCompletesIt) {
  Background job(train_cmd(2, "kill", kSteps) + " > " + run_dir("kill") + ".out 2>&1");
  ASSERT_TRUE(wait_for_checkpoint("kill", 60));
  pid_t pid = rank_pid("kill");
  ASSERT_GT(pid, 0);
  auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGKILL);
  int code = job.wait(60);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1) << "job still running 60 s after a rank died";
  EXPECT_LT(took, 60.0);
  EXPECT_LT(latest_step("kill"), kSteps);
  auto r = run_command(train_cmd(2, "kill", kSteps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(final_checksum("kill"), final_checksum("ref"));
}

TEST_F(TrainCli, CorruptNewestCheckpointFallsBackToTheOneBefore) {
  ASSERT_EQ(run_command(train_cmd(1, "corrupt", 400)).exit_code, 0);
  // Flip one byte of the newest checkpoint's network archive (size unchanged).
  std::string victim = run_dir("corrupt") + "/checkpoints/step-00000400/vae.pt";
  std::string bytes = testing::read_bytes(victim);
  bytes[bytes.size() / 2] ^= 0x5A;
  testing::write_bytes(victim, bytes);
  auto r = run_command(train_cmd(1, "corrupt", 500));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step-00000400/vae.pt: checksum"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resumed from " + run_dir("corrupt") + "/checkpoints/step-00000200 at step 200"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(latest_step("corrupt"), 500);
  // An explicit --resume of a corrupt checkpoint is an error (exit 4), not a silent fresh start.
  std::string newest = run_dir("corrupt") + "/checkpoints/step-00000500";
  std::string nb = testing::read_bytes(newest + "/vae.pt");
  nb[nb.size() / 3] ^= 0x11;
  testing::write_bytes(newest + "/vae.pt", nb);
  auto t0 = std::chrono::steady_clock::now();
  auto e = run_command(train_cmd(2, "corrupt2", 600, "--resume " + newest + " --dist.timeout_s 60"));
  EXPECT_EQ(e.exit_code, 4) << e.output;
  EXPECT_NE(e.output.find("gantry: error: " + newest + "/vae.pt: checksum"), std::string::npos) << e.output;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0)
      << "every rank must stop with rank 0's error, not wait for a collective";
}

TEST_F(TrainCli, OneRankWithBatchBMatchesTwoRanksWithHalfEach) {
  ASSERT_EQ(run_command(train_cmd(1, "w1", 10, "--train.batch_size 64")).exit_code, 0);
  ASSERT_EQ(run_command(train_cmd(2, "w2", 10, "--train.batch_size 64")).exit_code, 0);
  vae::Vae a(vae::VaeOptions{}), b(vae::VaeOptions{});
  load_from_file(a.ptr(), run_dir("w1") + "/checkpoints/step-00000010/vae.pt");
  load_from_file(b.ptr(), run_dir("w2") + "/checkpoints/step-00000010/vae.pt");
  expect_same_steps(a, b);
}

TEST_F(TrainCli, MicroBatchesAccumulateToTheSameStep) {
  ASSERT_EQ(run_command(train_cmd(2, "m1", 10, "--train.batch_size 64")).exit_code, 0);
  auto r = run_command(train_cmd(2, "m2", 10, "--train.batch_size 64 --train.micro_batches 4"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  vae::Vae a(vae::VaeOptions{}), b(vae::VaeOptions{});
  load_from_file(a.ptr(), run_dir("m1") + "/checkpoints/step-00000010/vae.pt");
  load_from_file(b.ptr(), run_dir("m2") + "/checkpoints/step-00000010/vae.pt");
  expect_same_steps(a, b);
  // A wrong split (say, only the last micro-batch's gradient) moves the parameters by ~1e-3 in 10 steps.
  auto bad = run_command(train_cmd(2, "m3", 10, "--train.batch_size 64 --train.micro_batches 3"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("train.micro_batches: 3 does not divide the per-rank batch 32"), std::string::npos)
      << bad.output;
}

// Every recipe honours train.micro_batches through the step context: one rank with the batch in two
// micro-batches takes the step two ranks take with one half each (the same rows meet the same
// BatchNorm batches), for DCGAN (two players, alternating updates) and f-GAN (the single step); and one
// rank with the whole batch takes the step of two ranks with dist.sync_batchnorm.
TEST_F(TrainCli, GanMicroBatchesOnOneRankMatchTwoRanks) {
  auto max_diff = [](torch::nn::Module& a, torch::nn::Module& b) {
    auto pa = a.named_parameters(), pb = b.named_parameters();
    double worst = 0;
    for (const auto& p : pa) worst = std::max(worst, (p.value() - pb[p.key()]).abs().max().item<double>());
    return worst;
  };
  const std::string dcgan = " train --config " + std::string(GANTRY_SOURCE_DIR) +
                            "/experiments/dcgan_fashion_mnist.ini --data.path " + data("train32") +
                            " --train.steps 6 --train.batch_size 16 --train.threads 1 --train.checkpoint_every 6"
                            " --train.log_every 1 --train.sample_every 0 --dcgan.g_width 8 --dcgan.d_width 8"
                            " --run-dir ";
  ASSERT_EQ(run_command(kGantry + dcgan + run_dir("dm1") + " --train.micro_batches 2").exit_code, 0);
  ASSERT_EQ(run_command(kMpirun + " -n 2 " + kGantry + dcgan + run_dir("dm2")).exit_code, 0);
  ASSERT_EQ(run_command(kGantry + dcgan + run_dir("dm0")).exit_code, 0);  // one micro-batch of 16: not the same
  // ... but what two ranks see with BatchNorm statistics over both halves (dist.sync_batchnorm, below).
  ASSERT_EQ(
      run_command(kMpirun + " -n 2 " + kGantry + dcgan + run_dir("dm2s") + " --dist.sync_batchnorm true").exit_code, 0);
  dcgan::DcganOptions o;
  o.resolution = 32;
  o.channels = 1;
  o.g_width = o.d_width = 8;
  dcgan::Generator g1(o), g2(o), g0(o);
  dcgan::Discriminator d1(o), d2(o);
  load_from_file(g1.ptr(), run_dir("dm1") + "/checkpoints/step-00000006/generator.pt");
  load_from_file(g2.ptr(), run_dir("dm2") + "/checkpoints/step-00000006/generator.pt");
  load_from_file(g0.ptr(), run_dir("dm0") + "/checkpoints/step-00000006/generator.pt");
  load_from_file(d1.ptr(), run_dir("dm1") + "/checkpoints/step-00000006/discriminator.pt");
  load_from_file(d2.ptr(), run_dir("dm2") + "/checkpoints/step-00000006/discriminator.pt");
  EXPECT_LT(max_diff(*g1, *g2), 1e-4);
  EXPECT_LT(max_diff(*d1, *d2), 1e-4);
  EXPECT_GT(max_diff(*g1, *g0), 1e-3);  // BatchNorm over 16 rows instead of 8: a different step
  // dist.sync_batchnorm through the CLI: the first step's discriminator outputs (before any update) on 2
  // ranks are one rank's on the whole batch, and not what per-rank statistics give. (Whole trajectories
  // are compared in test_dcgan_mpi: here Adam's first step, lr·sign(g), turns the last-bit difference of
  // an entry whose gradient is ~0 into a 2·lr difference, which the GAN then spreads.)
  auto first_step = [&](const std::string& run) {
    std::ifstream in(run_dir(run) + "/metrics.jsonl");
    std::string line;
    std::getline(in, line);
    return nlohmann::json::parse(line);
  };
  const auto one = first_step("dm0"), synced = first_step("dm2s"), local = first_step("dm2");
  for (const char* k : {"loss_d", "d_real", "d_fake"}) {
    EXPECT_NEAR(synced[k].get<double>(), one[k].get<double>(), 1e-6) << k;
    EXPECT_GT(std::abs(local[k].get<double>() - one[k].get<double>()), 1e-4) << k;
  }

  const std::string fgan = " train --config " + std::string(GANTRY_SOURCE_DIR) +
                           "/experiments/fgan_gauss_mixture.ini --train.steps 20 --train.batch_size 128"
                           " --train.threads 1 --train.checkpoint_every 20 --train.eval_every 0 --run-dir ";
  ASSERT_EQ(run_command(kGantry + fgan + run_dir("fm1") + " --train.micro_batches 2").exit_code, 0);
  ASSERT_EQ(run_command(kMpirun + " -n 2 " + kGantry + fgan + run_dir("fm2")).exit_code, 0);
  fgan::MlpVariationalOptions vo;
  vo.in = 1;
  vo.hidden = 64;
  vo.activation = "tanh";
  fgan::MlpVariational v1(vo), v2(vo);
  fgan::GaussianGenerator q1, q2;
  load_from_file(v1.ptr(), run_dir("fm1") + "/checkpoints/step-00000020/variational.pt");
  load_from_file(v2.ptr(), run_dir("fm2") + "/checkpoints/step-00000020/variational.pt");
  load_from_file(q1.ptr(), run_dir("fm1") + "/checkpoints/step-00000020/generator.pt");
  load_from_file(q2.ptr(), run_dir("fm2") + "/checkpoints/step-00000020/generator.pt");
  EXPECT_LT(max_diff(*v1, *v2), 1e-5);
  EXPECT_LT(max_diff(*q1, *q2), 1e-5);
  EXPECT_GT(std::abs(q1->mu()), 1e-3);  // the generator moved
}

// DCGAN: two players, alternating steps, BatchNorm in both, D run twice per step — on 2 ranks the run
// stays finite and a resumed run is bit-identical to an uninterrupted one.
TEST_F(TrainCli, DcganOnTwoRanksStaysFiniteAndResumesExactly) {
  auto cmd = [&](const std::string& run, int steps) {
    return kMpirun + " -n 2 " + kGantry + " train --config " + std::string(GANTRY_SOURCE_DIR) +
           "/experiments/dcgan_fashion_mnist.ini --data.path " + data("train32") + " --run-dir " + run_dir(run) +
           " --train.steps " + std::to_string(steps) +
           " --train.batch_size 16 --train.threads 1 --train.log_every 5 --train.checkpoint_every 20"
           " --train.sample_every 15 --dcgan.g_width 8 --dcgan.d_width 8 --dcgan.ema 0.9";
  };
  auto whole = run_command(cmd("dcgan-a", 40));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  ASSERT_EQ(run_command(cmd("dcgan-b", 20)).exit_code, 0);
  auto resumed = run_command(cmd("dcgan-b", 40));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  for (const char* file : {"generator.pt", "discriminator.pt", "generator_ema.pt"})
    EXPECT_EQ(final_checksum("dcgan-b", file), final_checksum("dcgan-a", file)) << file;
  std::ifstream in(run_dir("dcgan-a") + "/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k : {"loss_d", "loss_g", "d_real", "d_fake"}) {
      ASSERT_TRUE(j.contains(k)) << line;
      EXPECT_TRUE(std::isfinite(j[k].get<double>())) << line;
    }
    ++lines;
  }
  EXPECT_EQ(lines, 8);
  EXPECT_TRUE(fs::exists(run_dir("dcgan-a") + "/samples/step-00000015.png"));
}

TEST_F(TrainCli, FganOneDimensionalRunOnTwoRanksResumesExactly) {
  // The recipe's own data source (the 1-D mixture): no data.path, resumes at the same stream position,
  // the held-out evaluation logs theta next to theta*, and no sample grid (the samples are not images).
  // Constant learning rate: a linear schedule depends on train.steps, which the first leg shortens.
  auto cmd = [&](const std::string& run, int steps) {
    return kMpirun + " -n 2 " + kGantry + " train --config " + std::string(GANTRY_SOURCE_DIR) +
           "/experiments/fgan_gauss_mixture.ini --run-dir " + run_dir(run) + " --train.steps " + std::to_string(steps) +
           " --train.batch_size 128 --train.threads 1 --train.checkpoint_every 60"
           " --train.eval_every 60 --train.log_every 20 --train.lr_schedule constant --fgan.divergence reverse_kl";
  };
  auto whole = run_command(cmd("fgan-a", 120));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  ASSERT_EQ(run_command(cmd("fgan-b", 60)).exit_code, 0);
  auto resumed = run_command(cmd("fgan-b", 120));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  for (const char* file : {"generator.pt", "variational.pt"})
    EXPECT_EQ(final_checksum("fgan-b", file), final_checksum("fgan-a", file)) << file;
  EXPECT_NE(whole.output.find("eval_mu_star 1.578"), std::string::npos) << whole.output;
  EXPECT_FALSE(fs::exists(run_dir("fgan-a") + "/samples/step-00000120.png"));
}

// The machine, not the user: a run directory or dataset output that cannot be created exits 5 with the
// OS's reason (root can write anywhere, so the failure is a path under a file, which no one can).
TEST_F(TrainCli, EnvironmentFailuresExitFiveWithTheOsReason) {
  auto r = run_command(kGantry + " train --config " + std::string(GANTRY_SOURCE_DIR) +
                       "/experiments/vae_fashion_mnist.ini --data.path " + data("train") +
                       " --data.eval_path \"\" --train.steps 2 --run-dir /dev/null/run");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("gantry: error: /dev/null/run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Not a directory"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  auto c = testing::convert_fashion_mnist("t10k", 10, "/dev/null/fm");
  EXPECT_EQ(c.exit_code, 5) << c.output;
  EXPECT_NE(c.output.find("Not a directory"), std::string::npos) << c.output;
}

TEST_F(TrainCli, ConfigurationErrorsExitTwoWithOneLine) {
  ScratchDir dir;
  testing::write_bytes(dir / "bad.ini", "[train]\nstepz = 3\n");
  auto unknown = run_command(kGantry + " train --config " + (dir / "bad.ini"));
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("gantry: error: " + (dir / "bad.ini") + ": unknown key 'train.stepz'"),
            std::string::npos)
      << unknown.output;
  auto divide = run_command(train_cmd(2, "divide", 10, "--train.batch_size 63"));
  EXPECT_EQ(divide.exit_code, 2);
  EXPECT_NE(divide.output.find("train.batch_size: 63 does not divide by the world size 2"), std::string::npos)
      << divide.output;
  auto value = run_command(train_cmd(1, "value", 10, "--train.lr fast"));
  EXPECT_EQ(value.exit_code, 2);
  EXPECT_NE(value.output.find("train.lr: expected a number, got 'fast'"), std::string::npos) << value.output;
  auto missing = run_command(train_cmd(1, "missing", 10, "--data.path /nonexistent"));
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.output.find("/nonexistent: no such dataset directory"), std::string::npos) << missing.output;
  auto help = run_command(kGantry + " train --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--vae.latent"), std::string::npos);
  EXPECT_NE(help.output.find("--dist.bucket_mb"), std::string::npos);
}

}  // namespace
}  // namespace gantry
