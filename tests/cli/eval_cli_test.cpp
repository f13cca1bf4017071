// gantry eval on real runs: a classifier (60 steps on 2000 Fashion-MNIST images), an f-GAN generator
// (20 steps), a small VAE (20 steps), a small PixelCNN (5 steps) and a tiny CycleGAN (4 steps) trained here
// by `gantry train`. The classifier's held-out metrics equal the trainer's own last evaluation (the networks
// are restored exactly); the f-GAN's sample scores (FID / KID in the classifier's features, Parzen), the
// VAE's and PixelCNN's likelihood bounds and CycleGAN's translation scores are the same on one rank and on
// two; a TorchScript feature network (the --inception path) is used as given; bad input is one line and a
// documented exit code.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "support/testing.h"

namespace gantry {
namespace {

using testing::run_command;
const std::string kGantry = GANTRY_BIN;
const std::string kMpiexec = std::string(MPIEXEC) + " --oversubscribe -n 2 " + GANTRY_BIN;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir("eval-cli");
    const testing::ScratchDir& d = *dir_;
    for (auto [split, limit] : {std::pair{"train", 2000}, std::pair{"t10k", 1000}}) {
      auto r = testing::convert_fashion_mnist(split, limit, d / split, /*labels=*/true);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    const std::string common = " --train.threads 1 --data.path " + (d / "train") + " --data.eval_path " + (d / "t10k");
    auto r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR +
                         "/experiments/classifier_fashion_mnist.ini" + common + " --run-dir " + (d / "classifier") +
                         " --train.steps 60 --train.batch_size 64 --train.eval_every 60 --train.checkpoint_every 60");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/fgan_fashion_mnist.ini" + common +
                    " --run-dir " + (d / "fgan") +
                    " --train.steps 20 --train.batch_size 64 --train.checkpoint_every 20 --fgan.g_hidden 256 "
                    "--fgan.v_hidden 64");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/vae_fashion_mnist.ini" + common +
                    " --run-dir " + (d / "vae") +
                    " --train.steps 20 --train.batch_size 64 --train.checkpoint_every 20 --train.eval_every 0"
                    " --train.sample_every 0 --vae.hidden 64 --vae.latent 8");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/pixelcnn_fashion_mnist.ini" +
                    common + " --run-dir " + (d / "pixelcnn") +
                    " --train.steps 5 --train.batch_size 64 --train.checkpoint_every 5 --train.eval_every 0"
                    " --train.sample_every 0 --pixelcnn.layers 2 --pixelcnn.hidden 8 --pixelcnn.out_hidden 16");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // A tiny CycleGAN between two synthetic colour domains (16 x 16 crops of 20 x 20 images).
    r = testing::make_colour_domains(d);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/cyclegan_fashion_mnist.ini" +
                    " --run-dir " + (d / "cyclegan") + " --data.path " + (d / "a") + " --data.b_path " + (d / "b") +
                    " --data.eval_path " + (d / "a") + " --data.b_eval_path " + (d / "b") +
                    " --data.workers 1 --train.steps 4 --train.batch_size 4 --train.threads 1"
                    " --train.checkpoint_every 4 --train.sample_every 0 --train.eval_every 0" +
                    testing::kTinyCycleGan);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* EvalCli::dir_ = nullptr;

TEST_F(EvalCli, ClassifierHeldOutMetricsEqualTheTrainersLastEvaluation) {
  const testing::ScratchDir& d = *dir_;
  auto r = run_command(kGantry + " eval --checkpoint " + (d / "classifier") + " --out " + (d / "classifier.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = read_json(d / "classifier.json");
  EXPECT_EQ(j["step"], 60);
  EXPECT_EQ(j["recipe"], "classifier");
  double accuracy = -1, loss = -1;
  std::ifstream in(d / "classifier/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto m = nlohmann::json::parse(line);
    if (m.contains("eval_accuracy")) accuracy = m["eval_accuracy"], loss = m["eval_loss"];
  }
  ASSERT_GT(accuracy, 0.5) << "the trainer evaluated at step 60";
  EXPECT_NEAR(j["values"]["eval_accuracy"].get<double>(), accuracy, 1e-12) << r.output;
  EXPECT_NEAR(j["values"]["eval_loss"].get<double>(), loss, 1e-9 * loss) << r.output;
}

TEST_F(EvalCli, SampleScoresAreTheSameOnOneRankAndTwo) {
  const testing::ScratchDir& d = *dir_;
  const std::string args = " eval --checkpoint " + (d / "fgan") + " --eval.features " + (d / "classifier") +
                           " --eval.samples 400 --eval.kid_subsets 10 --eval.kid_subset_size 200 --eval.parzen true "
                           "--eval.parzen_validation 256";
  auto one = run_command(kGantry + args + " --out " + (d / "one.json"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two = run_command(kMpiexec + args + " --out " + (d / "two.json"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto a = read_json(d / "one.json"), b = read_json(d / "two.json");
  EXPECT_EQ(a["world_size"], 1);
  EXPECT_EQ(b["world_size"], 2);
  EXPECT_NE(a["features"].get<std::string>().find("classifier.pt crc32:"), std::string::npos) << a.dump();
  EXPECT_EQ(a["values"]["samples"], 400);
  EXPECT_EQ(a["values"]["real_images"], 960);  // whole global batches of 64 from 1000 images
  EXPECT_GT(a["values"]["fid"].get<double>(), 1.0) << "20 steps of a GAN are far from the data";
  EXPECT_GT(a["values"]["kid"].get<double>(), 0.0);
  EXPECT_LT(a["values"]["parzen_ll"].get<double>(), 2000.0);
  for (const char* key : {"fid", "kid", "kid_std", "parzen_ll", "parzen_ll_se", "parzen_sigma", "samples",
                          "real_images", "eval_F", "eval_F_var"}) {
    ASSERT_TRUE(a["values"].contains(key) && b["values"].contains(key)) << key << ": " << a.dump() << b.dump();
    const double x = a["values"][key], y = b["values"][key];
    // f-GAN's own eval_F draws per rank: its generator's BatchNorm sees the rank's batch (models/fgan/README.md).
    if (std::string(key).rfind("eval_F", 0) == 0) continue;
    EXPECT_NEAR(x, y, 1e-6 * std::max(1.0, std::abs(x))) << key;
  }
}

// train.eval_every runs the same evaluation into metrics.jsonl: its FID at the last step equals gantry
// eval's on that step's checkpoint.
TEST_F(EvalCli, TrainingEvaluationsAddTheSameScores) {
  const testing::ScratchDir& d = *dir_;
  const std::string scores =
      " --eval.features " + (d / "classifier") + " --eval.samples 200 --eval.kid_subsets 5 --eval.kid_subset_size 100";
  auto r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/fgan_fashion_mnist.ini" +
                       " --train.threads 1 --data.path " + (d / "train") + " --data.eval_path " + (d / "t10k") +
                       " --run-dir " + (d / "scored") +
                       " --train.steps 10 --train.batch_size 64 --train.eval_every 5 --train.checkpoint_every 10 "
                       "--fgan.g_hidden 256 --fgan.v_hidden 64" +
                       scores);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> evals;
  std::ifstream in(d / "scored/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto m = nlohmann::json::parse(line);
    if (m.contains("fid")) evals.push_back(m);
  }
  ASSERT_EQ(evals.size(), 2u) << "evaluations at steps 5 and 10";
  EXPECT_EQ(evals[0]["step"], 5);
  EXPECT_NE(evals[1]["features"].get<std::string>().find("classifier.pt crc32:"), std::string::npos);
  EXPECT_NE(evals[0]["fid"].get<double>(), evals[1]["fid"].get<double>()) << "the generator trained in between";
  r = run_command(kGantry + " eval --checkpoint " + (d / "scored") + " --out " + (d / "scored.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = read_json(d / "scored.json");
  // The features are float32 and the two processes run the classifier with different thread counts (1
  // in training, cores / ranks here): equal to float32 rounding.
  for (const char* key : {"fid", "kid"}) {
    const double trained = evals[1][key];
    EXPECT_NEAR(j["values"][key].get<double>(), trained, 1e-6 * trained) << key;
  }
}

TEST_F(EvalCli, TorchScriptFeaturesAreUsedAsGiven) {
  const testing::ScratchDir& d = *dir_;
  // A stand-in for Inception-v3 (the same contract: (N, 3, 299, 299) in [-1, 1] → (N, d)): 8x8 average
  // pools of the image, 3·8·8 = 192 features. Scripted by the torch that matches this LibTorch.
  testing::write_bytes(d / "pool.py",
                       "import sys, torch\n"
                       "class Pool(torch.nn.Module):\n"
                       "    def forward(self, x):\n"
                       "        assert x.shape[1:] == (3, 299, 299)\n"
                       "        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)\n"
                       "torch.jit.script(Pool()).save(sys.argv[1])\n");
  auto py = run_command(std::string(GANTRY_TORCH_PYTHON) + " " + (d / "pool.py") + " " + (d / "pool.pt"));
  ASSERT_EQ(py.exit_code, 0) << py.output;
  auto r =
      run_command(kGantry + " eval --checkpoint " + (d / "fgan") + " --eval.inception " + (d / "pool.pt") +
                  " --eval.samples 200 --eval.kid_subsets 5 --eval.kid_subset_size 100 --out " + (d / "pool.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = read_json(d / "pool.json");
  EXPECT_EQ(j["features"].get<std::string>().rfind("inception " + (d / "pool.pt") + " (crc32:", 0), 0u) << j.dump();
  EXPECT_GT(j["values"]["fid"].get<double>(), 0.0);
  EXPECT_FALSE(j["values"].contains("parzen_ll"));

  testing::write_bytes(d / "flat.py",
                       "import sys, torch\n"
                       "class Flat(torch.nn.Module):\n"
                       "    def forward(self, x):\n"
                       "        return x.sum()\n"
                       "torch.jit.script(Flat()).save(sys.argv[1])\n");
  py = run_command(std::string(GANTRY_TORCH_PYTHON) + " " + (d / "flat.py") + " " + (d / "flat.pt"));
  ASSERT_EQ(py.exit_code, 0) << py.output;
  r = run_command(kGantry + " eval --checkpoint " + (d / "fgan") + " --eval.inception " + (d / "flat.pt") +
                  " --eval.samples 100");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("flat.pt: returned a 0-d output, not (N, d) features"), std::string::npos) << r.output;
}

// A translation recipe is scored by its translations of each held-out domain against the other's held-out
// images (center crops of the translations' size), both ways; the same on one rank and on two.
TEST_F(EvalCli, TranslationScoresAreTheSameOnOneRankAndTwo) {
  const testing::ScratchDir& d = *dir_;
  const std::string args = " eval --checkpoint " + (d / "cyclegan") + " --eval.features " + (d / "classifier") +
                           " --eval.kid_subsets 5 --eval.kid_subset_size 12";
  auto one = run_command(kGantry + args + " --out " + (d / "cyc1.json"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two = run_command(kMpiexec + args + " --out " + (d / "cyc2.json"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto a = read_json(d / "cyc1.json"), b = read_json(d / "cyc2.json");
  EXPECT_EQ(a["values"]["translated_a"], 24);  // whole global batches of 4
  EXPECT_EQ(a["values"]["translated_b"], 20);
  EXPECT_TRUE(a["values"].contains("eval_cycle_a")) << a.dump();
  EXPECT_FALSE(a["values"].contains("fid")) << "a translation recipe draws no samples of its own";
  for (const char* key : {"fid_a2b", "kid_a2b", "kid_a2b_std", "fid_b2a", "kid_b2a", "kid_b2a_std"}) {
    ASSERT_TRUE(a["values"].contains(key) && b["values"].contains(key)) << key << ": " << a.dump() << b.dump();
    const double x = a["values"][key], y = b["values"][key];
    EXPECT_TRUE(std::isfinite(x)) << key;
    EXPECT_NEAR(x, y, 1e-6 * std::max(1.0, std::abs(x))) << key;
  }
  EXPECT_GT(a["values"]["fid_a2b"].get<double>(), 0.0);
  EXPECT_NE(a["values"]["fid_a2b"].get<double>(), a["values"]["fid_b2a"].get<double>());

  auto r = run_command(kGantry + args + " --eval.parzen true");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("eval.parzen: recipe translates images"), std::string::npos) << r.output;
  r = run_command(kGantry + args + " --data.b_eval_path=");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("data.b_eval_path: FID / KID of translations"), std::string::npos) << r.output;
}

// The held-out likelihood bounds — the VAE's ELBO and IWAE (each image's z drawn from its own key) and
// PixelCNN's exact bits/dim — are the same on one rank and on two; the VAE's depend on run.seed.
TEST_F(EvalCli, LikelihoodsAreTheSameOnOneRankAndTwo) {
  const testing::ScratchDir& d = *dir_;
  // Relative tolerances: measured 3e-9 (VAE) and 4e-8 (PixelCNN, float32 sums); per-rank noise would move
  // the VAE's IWAE by what another seed moves it (2e-5, checked below).
  const std::vector<std::tuple<std::string, std::string, std::vector<std::string>, double>> runs = {
      {"vae",
       " --vae.iwae_k 100",  // 64 z per pass on 1 rank, 100 on 2: an image's draws must not depend on it
       {"eval_loss", "eval_recon", "eval_bits_per_dim", "eval_iwae_nats", "eval_iwae_bits_per_dim"},
       1e-7},
      {"pixelcnn", "", {"eval_loss", "eval_bits_per_dim", "eval_nats"}, 1e-6}};
  for (const auto& [run, extra, keys, tolerance] : runs) {
    const std::string args = " eval --checkpoint " + (d / run) + extra;
    auto one = run_command(kGantry + args + " --out " + (d / (run + "1.json")));
    ASSERT_EQ(one.exit_code, 0) << one.output;
    auto two = run_command(kMpiexec + args + " --out " + (d / (run + "2.json")));
    ASSERT_EQ(two.exit_code, 0) << two.output;
    const auto a = read_json(d / (run + "1.json")), b = read_json(d / (run + "2.json"));
    EXPECT_EQ(b["world_size"], 2);
    for (const std::string& key : keys) {
      ASSERT_TRUE(a["values"].contains(key) && b["values"].contains(key)) << key << ": " << a.dump() << b.dump();
      const double x = a["values"][key], y = b["values"][key];
      EXPECT_TRUE(std::isfinite(x) && x > 0) << run << " " << key << " " << x;
      EXPECT_NEAR(x, y, tolerance * std::abs(x)) << run << " " << key;
    }
  }
  const auto one = read_json(d / "vae1.json");
  const double elbo = one["values"]["eval_loss"], iwae = one["values"]["eval_iwae_nats"];
  EXPECT_LT(iwae, elbo) << "IWAE (k = 100) is the tighter bound";
  auto other = run_command(kGantry + " eval --checkpoint " + (d / "vae") + " --vae.iwae_k 100 --run.seed 7 --out " +
                           (d / "vae-seed7.json"));
  ASSERT_EQ(other.exit_code, 0) << other.output;
  const double reseeded = read_json(d / "vae-seed7.json")["values"]["eval_iwae_nats"];
  EXPECT_GT(std::abs(reseeded - iwae), 1e-6 * iwae) << "another seed draws other z";
}

TEST_F(EvalCli, BadInputIsOneLineAndAnExitCode) {
  const testing::ScratchDir& d = *dir_;
  auto r = run_command(kGantry + " eval --checkpoint " + (d / "nothing-here"));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("gantry: error: "), std::string::npos) << r.output;
  r = run_command(kGantry + " eval --checkpoint " + (d / "fgan") + " --eval.features " + (d / "fgan"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("eval.features: recipe 'fgan' has no feature embedding"), std::string::npos) << r.output;
  r = run_command(kGantry + " eval --checkpoint " + (d / "classifier") + " --eval.parzen true --eval.samples 100");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("draws no images to score"), std::string::npos) << r.output;
  r = run_command(kGantry + " eval --checkpoint " + (d / "fgan") + " --eval.parzen true --data.eval_path=");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("data.eval_path: FID, KID and Parzen compare samples with the held-out set"),
            std::string::npos)
      << r.output;
  r = run_command(kGantry + " eval --checkpoint " + (d / "fgan") + " --eval.samples many");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("eval.samples"), std::string::npos) << r.output;
  r = run_command(kGantry + " eval --checkpoint " + (d / "fgan") + " --no.such 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace gantry
