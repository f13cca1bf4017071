// train.precision with the recipes, on the CPU: bf16's first step against fp32 on a Fashion-MNIST batch
// (losses and gradients, within measured bounds), a bf16 VAE run from the CLI that trains and resumes
// bit-exactly, the GAN recipes in bf16, and fp16 where the CPU autocast has it (LibTorch 2.x) or its
// refusal (1.13).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "core/fs.h"
#include "core/torch_compat.h"
#include "dcgan/dcgan_model.h"
#include "shards/sharded_dataset.h"
#include "support/testing.h"
#include "train/batch_source.h"
#include "train/precision.h"
#include "vae/vae_model.h"

namespace gantry {
namespace {

using testing::run_command;
using testing::ScratchDir;
namespace F = torch::nn::functional;

const std::string kGantry = GANTRY_BIN;

class PrecisionRecipes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir("precision");
    auto a = testing::convert_fashion_mnist("train", 2000, data("fm"));
    auto b = testing::convert_fashion_mnist("train", 512, data("fm32"), false, " --resolution 32");
    ASSERT_EQ(a.exit_code, 0) << a.output;
    ASSERT_EQ(b.exit_code, 0) << b.output;
  }
  static void TearDownTestSuite() { delete scratch_; }
  static std::string data(const std::string& name) { return *scratch_ / name; }
  static std::string run_dir(const std::string& name) { return *scratch_ / ("run-" + name); }

  // The first n images of a dataset as (n, C, H, W) floats in [-1, 1].
  static torch::Tensor images(const std::string& name, int64_t n) {
    auto ds = gantry::data::ShardedDataset::open(data(name));
    const auto& m = ds->manifest();
    auto raw = torch::empty({n, m.height, m.width, m.channels}, torch::kUInt8);
    for (int64_t i = 0; i < n; ++i) ds->read_image(i, raw[i].data_ptr<uint8_t>());
    return images_to_float(raw, torch::kCPU);
  }

  // gantry train with experiments/INI in run directory RUN, one thread, samples at the end only.
  static std::string train_cmd(const std::string& ini, const std::string& run, const std::string& args) {
    return kGantry + " train --config " + std::string(GANTRY_SOURCE_DIR) + "/experiments/" + ini + " --run-dir " +
           run_dir(run) + " --train.threads 1 --train.sample_every 0 " + args;
  }
  // The VAE with the Bernoulli decoder these runs' expectations were measured with.
  static std::string vae_cmd(const std::string& run, int64_t steps, const std::string& extra) {
    return train_cmd("vae_fashion_mnist.ini", run,
                     "--vae.likelihood bernoulli --data.path " + data("fm") + " --data.eval_path '' --train.steps " +
                         std::to_string(steps) +
                         " --train.batch_size 32 --train.log_every 10 --train.checkpoint_every 30 " + extra);
  }
  // Every logged training line of a run's metrics.jsonl.
  static std::vector<nlohmann::json> metrics(const std::string& run) {
    std::vector<nlohmann::json> out;
    std::ifstream in(run_dir(run) + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("images_per_s")) out.push_back(j);
    }
    return out;
  }
  // Every number in a run's metrics is finite.
  static void expect_finite(const std::string& run) {
    const auto m = metrics(run);
    ASSERT_FALSE(m.empty()) << run;
    for (const auto& j : m)
      for (const auto& [k, v] : j.items())
        if (v.is_number_float()) {
          EXPECT_TRUE(std::isfinite(v.get<double>())) << run << ": " << k;
        }
  }

  static ScratchDir* scratch_;
};
ScratchDir* PrecisionRecipes::scratch_ = nullptr;

// Loss and every parameter's gradient, flattened, of `loss_of` run in `p` (backward in float32).
std::pair<double, torch::Tensor> loss_and_gradient(torch::nn::Module& m, Precision p,
                                                   const std::function<torch::Tensor()>& loss_of) {
  m.zero_grad();
  AutocastGuard autocast(p, c10::DeviceType::CPU);
  torch::Tensor loss = loss_of();
  autocast.end();
  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);  // the loss itself is computed in float32
  loss.backward();
  std::vector<torch::Tensor> g;
  for (auto& q : m.parameters()) g.push_back(q.grad().reshape({-1}).clone());
  return {loss.item<double>(), torch::cat(g)};
}

// bf16 against fp32 for one loss: its relative difference below `loss_bound`, the gradient's relative
// error below `gradient_bound` but not zero (the forward did run in bf16). Prints the measured values.
void expect_bf16_close(const char* name, torch::nn::Module& m, const std::function<torch::Tensor()>& loss_of,
                       double loss_bound, double gradient_bound) {
  auto [l32, g32] = loss_and_gradient(m, Precision::kFp32, loss_of);
  auto [l16, g16] = loss_and_gradient(m, Precision::kBf16, loss_of);
  const double dl = std::abs(l16 - l32) / std::abs(l32), dg = ((g16 - g32).norm() / g32.norm()).item<double>();
  std::printf("%s: loss %.6f (fp32) %.6f (bf16), rel. diff %.2e; gradient rel. error %.2e\n", name, l32, l16, dl, dg);
  EXPECT_LT(dl, loss_bound) << name;
  EXPECT_LT(dg, gradient_bound) << name;
  EXPECT_GT(dg, 1e-5) << name;
}

// One step's loss and gradients in bf16 autocast against float32, on 128 Fashion-MNIST images.
// Measured (the test prints them), LibTorch 1.13 / 2.15: VAE (784-400-20) loss rel. diff 3.9e-6 / 3.9e-6,
// gradient rel. error 1.0e-2 / 4.5e-3; DCGAN 32x32 discriminator loss 2.6e-3 / 3.3e-4, gradient
// 5.4e-2 / 2.4e-2. Bounds: bf16 keeps 8
// significant bits (unit roundoff 2^-9 ≈ 2e-3 per rounded value, errors partly cancelling over fp32
// accumulations), so a loss within 1% and gradients within 5% (VAE) / 10% (DCGAN, two BatchNorm-free conv
// stacks in bf16 deeper than the VAE's two layers) hold with margin, while a forward left in fp32 (0) or
// a broken autocast (garbage, or the error of fp16 scaled wrongly: O(1)) would not pass both the lower
// and upper checks.
TEST_F(PrecisionRecipes, Bf16FirstStepMatchesFp32WithinMeasuredBounds) {
  {
    auto x = images("fm", 128);
    torch::manual_seed(1);
    vae::VaeOptions o;
    o.likelihood = vae::Likelihood::kBernoulli;  // the decoder the bounds were measured with
    vae::Vae model(o);
    auto eps = torch::randn({128, 20});
    expect_bf16_close(
        "vae", *model, [&] { return model->elbo(x, model->forward(x, eps)).loss; }, 1e-2, 5e-2);
  }
  {
    auto x = images("fm32", 128);
    torch::manual_seed(2);
    dcgan::DcganOptions o;
    o.resolution = 32;
    o.channels = 1;
    o.g_width = o.d_width = 32;
    dcgan::Generator g(o);
    dcgan::Discriminator d(o);
    dcgan::dcgan_init(*g);
    dcgan::dcgan_init(*d);
    auto fake = g->forward(torch::rand({128, 100}) * 2 - 1).detach();
    auto loss = [&] {
      auto lr = d->forward(x), lf = d->forward(fake);
      return F::binary_cross_entropy_with_logits(lr, torch::ones_like(lr)) +
             F::binary_cross_entropy_with_logits(lf, torch::zeros_like(lf));
    };
    expect_bf16_close("dcgan discriminator", *d, loss, 1e-2, 1e-1);
  }
}

// A bf16 VAE run from the CLI: the loss falls, stays near the fp32 run's, and an interrupted and resumed
// run ends with the same networks, bit for bit, as the uninterrupted one.
TEST_F(PrecisionRecipes, Bf16VaeTrainsAndResumesBitExactly) {
  auto straight = run_command(vae_cmd("bf16", 60, "--train.precision bf16"));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  ASSERT_EQ(run_command(vae_cmd("fp32", 60, "")).exit_code, 0);
  ASSERT_EQ(run_command(vae_cmd("split", 30, "--train.precision bf16")).exit_code, 0);
  auto resumed = run_command(vae_cmd("split", 60, "--train.precision bf16"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(read_file(run_dir("bf16") + "/config.ini").find("precision = bf16"), std::string::npos);

  vae::VaeOptions bernoulli;
  bernoulli.likelihood = vae::Likelihood::kBernoulli;
  vae::Vae a(bernoulli), b(bernoulli);
  load_from_file(a.ptr(), run_dir("bf16") + "/checkpoints/step-00000060/vae.pt");
  load_from_file(b.ptr(), run_dir("split") + "/checkpoints/step-00000060/vae.pt");
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();

  const auto m16 = metrics("bf16"), m32 = metrics("fp32");
  ASSERT_EQ(m16.size(), 6u);
  ASSERT_EQ(m32.size(), 6u);
  const double first = m16.front()["loss"], last = m16.back()["loss"], last32 = m32.back()["loss"];
  std::printf("vae bf16: loss %.2f at step 10, %.2f at step 60 (fp32: %.2f)\n", first, last, last32);
  EXPECT_LT(last, 0.8 * first);
  EXPECT_LT(std::abs(last - last32) / last32, 0.02);
}

// fp16 on the CPU: LibTorch 2.x's CPU autocast has it (the run reports its loss scale and checkpoints the
// scaler); 1.13's has not, and the run is refused before it starts, naming the key.
TEST_F(PrecisionRecipes, Fp16OnTheCpuRunsWhereAutocastHasItAndIsRefusedWhereNot) {
  auto r = run_command(vae_cmd("fp16", 30, "--train.precision fp16"));
  if (compat::autocast_supports(c10::DeviceType::CPU, c10::ScalarType::Half)) {
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto m = metrics("fp16");
    ASSERT_EQ(m.size(), 3u);
    // 2^16 halved once per skipped step (no growth within 2000 steps).
    const int64_t skipped = m.back()["skipped_steps_vae"];
    EXPECT_EQ(m.back()["loss_scale_vae"].get<double>(), std::ldexp(1.0, 16 - static_cast<int>(skipped)));
    EXPECT_LT(skipped, 10);
    EXPECT_LT(m.back()["loss"].get<double>(), m.front()["loss"].get<double>());
    EXPECT_TRUE(std::filesystem::exists(run_dir("fp16") + "/checkpoints/step-00000030/scaler-vae.pt"));
  } else {
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("gantry: error: train.precision: fp16"), std::string::npos) << r.output;
  }
}

// The GAN recipes honour bf16: DCGAN (BatchNorm, two players) and f-GAN's single step (gradient
// reversal, its backward inside the recipe) train with finite losses.
TEST_F(PrecisionRecipes, GansTrainInBf16) {
  auto d = run_command(train_cmd("dcgan_fashion_mnist.ini", "dcgan",
                                 "--data.path " + data("fm32") +
                                     " --train.steps 10 --train.batch_size 16 --train.log_every 5"
                                     " --train.checkpoint_every 10 --dcgan.g_width 8 --dcgan.d_width 8"
                                     " --train.precision bf16"));
  ASSERT_EQ(d.exit_code, 0) << d.output;
  expect_finite("dcgan");
  EXPECT_TRUE(metrics("dcgan").back().contains("loss_d"));
  EXPECT_TRUE(std::filesystem::exists(run_dir("dcgan") + "/samples/step-00000010.png"));  // sampling in fp32

  auto f = run_command(train_cmd("fgan_gauss_mixture.ini", "fgan",
                                 "--train.steps 40 --train.batch_size 128 --train.log_every 20"
                                 " --train.checkpoint_every 40 --train.eval_every 0 --train.precision bf16"));
  ASSERT_EQ(f.exit_code, 0) << f.output;
  expect_finite("fgan");
  EXPECT_GT(std::abs(metrics("fgan").back()["mu"].get<double>()), 1e-3);  // the generator moved
}

}  // namespace
}  // namespace gantry
