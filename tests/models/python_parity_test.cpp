// Every recipe's networks in PyTorch (models/python/gantry_torch) against gantry's own: each recipe trains
// 3 steps with `gantry train` on tiny data and small widths (weights and BatchNorm statistics no longer the
// initial ones); this test builds the C++ networks, restores them from the checkpoint as the recipe does,
// runs them on fixed inputs and saves inputs and outputs (torch::pickle_save, one file per run); then
// tests/models/python_parity.py loads the same checkpoint with gantry_torch.load and requires every output
// to agree: max |python - c++| <= 1e-5 * max(1, max |c++|). BatchNorm networks are compared in eval mode
// and with batch statistics (training mode: how gantry samples its GAN generators).
// The comparison is shown to fail when one output bias moves by 1e-3, and a checkpoint that does not fit is
// refused with the archive and key named.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "classifier/classifier_model.h"
#include "cyclegan/cyclegan_model.h"
#include "dcgan/dcgan_model.h"
#include "fgan/fgan_model.h"
#include "pixelcnn/pixelcnn_model.h"
#include "support/testing.h"
#include "train/batch_source.h"
#include "vae/vae_model.h"

namespace gantry {
namespace {

using testing::run_command;
const std::string kGantry = GANTRY_BIN;
const std::string kScript = std::string(GANTRY_SOURCE_DIR) + "/tests/models/python_parity.py";
constexpr int64_t kBatch = 6;  // inputs per network (BatchNorm in training mode needs more than one)

using Named = c10::Dict<std::string, torch::Tensor>;

// A run: its configuration (the recipe's section and data; the [train] section is common) and the C++
// side, which reads the checkpoint directory and fills the named inputs ("in.*") and outputs.
struct Case {
  std::string name, ini;
  std::function<void(const std::string& checkpoint, Named& out)> compute;
};

template <class Net>
Net restored(Net net, const std::string& checkpoint, const std::string& name) {
  load_from_file(net.ptr(), checkpoint + "/" + name + ".pt");
  net->eval();
  return net;
}

// The network in eval mode (running statistics) and in training mode (the batch's statistics).
void both_modes(torch::nn::AnyModule net, const torch::Tensor& in, const std::string& name, Named& out) {
  net.ptr()->eval();
  out.insert(name + ".eval", net.forward(in));
  net.ptr()->train();
  out.insert(name + ".batch", net.forward(in));
  net.ptr()->eval();
}

torch::Tensor images(int64_t c, int64_t hw) {
  return torch::rand({kBatch, c, hw, hw}) * 2 - 1;
}

void vae_outputs(const vae::VaeOptions& o, const std::string& ckpt, Named& out) {
  auto net = restored(vae::Vae(o), ckpt, "vae");
  auto x = images(o.channels, o.height), eps = torch::randn({kBatch, o.latent}), z = torch::randn({kBatch, o.latent});
  out.insert("in.x", x);
  out.insert("in.eps", eps);
  out.insert("in.z", z);
  auto r = net->forward(x, eps);
  out.insert("vae.recon", r.recon);
  out.insert("vae.mu", r.mu);
  out.insert("vae.logvar", r.logvar);
  auto decoded = net->decode(z);
  out.insert("vae.decode", decoded);
  out.insert("vae.mean_image", net->mean_image(decoded));
}

void gan_outputs(torch::nn::AnyModule g, torch::nn::AnyModule d, const torch::Tensor& z, const torch::Tensor& x,
                 const std::string& d_name, Named& out) {
  out.insert("in.z", z);
  out.insert("in.x", x);
  both_modes(std::move(g), z, "generator", out);
  both_modes(std::move(d), x, d_name, out);
}

// The DCGAN networks of the dcgan and fgan (model = dcgan) runs, and their keys.
const char* kDcganWidths = "z_dim = 16\ng_width = 8\nd_width = 8\n";
dcgan::DcganOptions small_dcgan() {
  dcgan::DcganOptions o;
  o.resolution = 32;
  o.channels = 3;
  o.z_dim = 16;
  o.g_width = o.d_width = 8;
  return o;
}

const char* kTrain =
    "[train]\nsteps = 3\nbatch_size = 8\nlog_every = 1\nsample_every = 0\ncheckpoint_every = 3\nthreads = 1\n";

std::vector<Case> cases(const testing::ScratchDir& d) {
  std::vector<Case> all;
  auto data = [&](const std::string& set) { return "workers = 1\npath = " + (d / set) + "\n"; };
  // VAE: the MLP with the logistic decoder (the paper's network), the conv net with the Gaussian one, an
  // MLP on colour images with the categorical one.
  for (auto [name, arch, lik, set, c, hw] : {std::tuple{"vae_mlp", "mlp", "logistic", "fm28", 1, 28},
                                             std::tuple{"vae_conv", "conv", "gaussian", "syn32", 3, 32},
                                             std::tuple{"vae_categorical", "mlp", "categorical", "syn8", 3, 8}}) {
    vae::VaeOptions o;
    o.arch = std::string(arch) == "conv" ? vae::Arch::kConv : vae::Arch::kMlp;
    o.likelihood = std::string(lik) == "logistic"   ? vae::Likelihood::kLogistic
                   : std::string(lik) == "gaussian" ? vae::Likelihood::kGaussian
                                                    : vae::Likelihood::kCategorical;
    o.channels = c;
    o.height = o.width = hw;
    o.hidden = 8;
    o.latent = 4;
    all.push_back({name,
                   std::string("[run]\nrecipe = vae\n[data]\n") + data(set) + "[vae]\narch = " + arch +
                       "\nlikelihood = " + lik + "\nhidden = 8\nlatent = 4\n",
                   [o](const std::string& ckpt, Named& out) { vae_outputs(o, ckpt, out); }});
  }
  // DCGAN with an averaged generator (generator_ema).
  all.push_back({"dcgan", "[run]\nrecipe = dcgan\n[data]\n" + data("syn32") + "[dcgan]\nema = 0.9\n" + kDcganWidths,
                 [](const std::string& ckpt, Named& out) {
                   const dcgan::DcganOptions o = small_dcgan();
                   auto g = restored(dcgan::Generator(o), ckpt, "generator");
                   auto ema = restored(dcgan::Generator(o), ckpt, "generator_ema");
                   auto dis = restored(dcgan::Discriminator(o), ckpt, "discriminator");
                   auto z = torch::rand({kBatch, o.z_dim}) * 2 - 1;
                   gan_outputs(torch::nn::AnyModule(g), torch::nn::AnyModule(dis), z, images(3, 32), "discriminator",
                               out);
                   both_modes(torch::nn::AnyModule(ema), z, "generator_ema", out);
                 }});
  // f-GAN: the paper's MNIST pair, the DCGAN pair, the 1-D model (its own data).
  all.push_back({"fgan_mlp",
                 "[run]\nrecipe = fgan\n[data]\n" + data("fm28") +
                     "[fgan]\nmodel = mlp\nz_dim = 8\ng_hidden = 16\nv_hidden = 8\n",
                 [](const std::string& ckpt, Named& out) {
                   fgan::MlpGeneratorOptions go;
                   go.z_dim = 8;
                   go.hidden = 16;
                   fgan::MlpVariationalOptions vo;
                   vo.hidden = 8;
                   auto g = restored(fgan::MlpGenerator(go), ckpt, "generator");
                   auto v = restored(fgan::MlpVariational(vo), ckpt, "variational");
                   gan_outputs(torch::nn::AnyModule(g), torch::nn::AnyModule(v), torch::rand({kBatch, 8}) * 2 - 1,
                               torch::rand({kBatch, 784}), "variational", out);
                 }});
  all.push_back({"fgan_dcgan",
                 "[run]\nrecipe = fgan\n[data]\n" + data("syn32") + "[fgan]\nmodel = dcgan\n" + kDcganWidths,
                 [](const std::string& ckpt, Named& out) {
                   const dcgan::DcganOptions o = small_dcgan();
                   auto g = restored(dcgan::Generator(o), ckpt, "generator");
                   auto v = restored(dcgan::Discriminator(o), ckpt, "variational");
                   gan_outputs(torch::nn::AnyModule(g), torch::nn::AnyModule(v), torch::rand({kBatch, 16}) * 2 - 1,
                               images(3, 32), "variational", out);
                 }});
  all.push_back({"fgan_gaussian", "[run]\nrecipe = fgan\n[fgan]\nmodel = gaussian\nv_hidden = 8\n",
                 [](const std::string& ckpt, Named& out) {
                   fgan::MlpVariationalOptions vo;
                   vo.in = 1;
                   vo.hidden = 8;
                   vo.activation = "tanh";
                   auto g = restored(fgan::GaussianGenerator(), ckpt, "generator");
                   auto v = restored(fgan::MlpVariational(vo), ckpt, "variational");
                   gan_outputs(torch::nn::AnyModule(g), torch::nn::AnyModule(v), torch::randn({kBatch, 1}),
                               torch::randn({kBatch, 1}) * 2, "variational", out);
                 }});
  // PixelCNN, both architectures, on colour images (the masks' colour groups).
  for (auto [name, arch] : {std::pair{"pixelcnn_residual", "residual"}, std::pair{"pixelcnn_gated", "gated"}}) {
    pixelcnn::PixelCnnOptions o;
    o.arch = std::string(arch) == "gated" ? pixelcnn::Arch::kGated : pixelcnn::Arch::kResidual;
    o.channels = 3;
    o.height = o.width = 8;
    o.layers = 2;
    o.hidden = 6;
    o.first_kernel = 5;
    o.out_hidden = 12;
    all.push_back({name,
                   "[run]\nrecipe = pixelcnn\n[data]\n" + data("syn8") + "[pixelcnn]\narch = " + arch +
                       "\nlayers = 2\nhidden = 6\nfirst_kernel = 5\nout_hidden = 12\n",
                   [o](const std::string& ckpt, Named& out) {
                     auto net = restored(pixelcnn::PixelCnn(o), ckpt, "pixelcnn");
                     auto x = uint8_to_float(torch::randint(0, 256, {kBatch, 8, 8, 3}, torch::kUInt8));
                     out.insert("in.x", x);
                     out.insert("pixelcnn.logits", net->forward(x));
                     // The sampler, from a CPU generator seeded 11 (Python: run.sample(2, seed=11)).
                     at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
                     out.insert("pixelcnn.sample", uint8_to_float(net->sample(2, gen)));
                   }});
  }
  // CycleGAN between colour (A) and gray (B) images.
  all.push_back({"cyclegan",
                 "[run]\nrecipe = cyclegan\n[data]\n" + data("syn16a") + "b_path = " + (d / "syn16b") +
                     "\n[cyclegan]\ng_width = 4\nd_width = 4\nresidual_blocks = 2\nd_layers = 2\n"
                     "lambda_identity = 0\npool_size = 4\n",
                 [](const std::string& ckpt, Named& out) {
                   cyclegan::GeneratorOptions go;
                   go.width = 4;
                   go.blocks = 2;
                   go.in_channels = 3;
                   go.out_channels = 1;
                   auto g = restored(cyclegan::Generator(go), ckpt, "generator_a2b");
                   std::swap(go.in_channels, go.out_channels);
                   auto f = restored(cyclegan::Generator(go), ckpt, "generator_b2a");
                   cyclegan::DiscriminatorOptions dopt;
                   dopt.width = 4;
                   dopt.layers = 2;
                   dopt.channels = 3;
                   auto d_a = restored(cyclegan::Discriminator(dopt), ckpt, "discriminator_a");
                   dopt.channels = 1;
                   auto d_b = restored(cyclegan::Discriminator(dopt), ckpt, "discriminator_b");
                   auto a = images(3, 16), b = images(1, 16);
                   out.insert("in.a", a);
                   out.insert("in.b", b);
                   out.insert("generator_a2b.eval", g->forward(a));
                   out.insert("generator_b2a.eval", f->forward(b));
                   out.insert("discriminator_a.eval", d_a->forward(a));
                   out.insert("discriminator_b.eval", d_b->forward(b));
                 }});
  all.push_back({"classifier", "[run]\nrecipe = classifier\n[data]\n" + data("fm28") + "[classifier]\nfeatures = 16\n",
                 [](const std::string& ckpt, Named& out) {
                   classifier::ClassifierOptions o;
                   o.features = 16;
                   auto net = restored(classifier::Classifier(o), ckpt, "classifier");
                   auto x = images(1, 28);
                   out.insert("in.x", x);
                   out.insert("classifier.features", net->features(x));
                   out.insert("classifier.logits", net->forward(x));
                 }});
  return all;
}

class PythonParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir("python-parity");
    const testing::ScratchDir& d = *dir_;
    const std::string fm = "/usr/share/datasets/fashion-mnist/train-";
    const std::vector<std::string> datasets = {
        "--format idx --limit 64 --images " + fm + "images-idx3-ubyte.gz --labels " + fm + "labels-idx1-ubyte.gz",
        "--format synthetic --count 32 --resolution 32 --channels 3 --seed 1",
        "--format synthetic --count 32 --resolution 8 --channels 3 --seed 2",
        "--format synthetic --count 32 --resolution 16 --channels 3 --seed 3",
        "--format synthetic --count 32 --resolution 16 --channels 1 --seed 4"};
    const std::vector<std::string> names = {"fm28", "syn32", "syn8", "syn16a", "syn16b"};
    for (size_t i = 0; i < names.size(); ++i) {
      auto r = run_command(kGantry + " data convert --quiet " + datasets[i] + " --out " + (d / names[i]));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    torch::NoGradGuard no_grad;
    for (const Case& c : cases(d)) {
      testing::write_bytes(d / (c.name + ".ini"), c.ini + kTrain);
      auto r = run_command(kGantry + " train --config " + (d / (c.name + ".ini")) + " --run-dir " + (d / c.name));
      ASSERT_EQ(r.exit_code, 0) << c.name << ": " << r.output;
      torch::manual_seed(7);
      Named out;
      c.compute(d / (c.name + "/checkpoints/step-00000003"), out);
      const std::vector<char> bytes = torch::pickle_save(c10::IValue(out));
      testing::write_bytes(d / (c.name + ".pt"), std::string(bytes.begin(), bytes.end()));
      names_ += " " + c.name;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  // The build's Python (GANTRY_TORCH_PYTHON), or another torch's: GANTRY_PARITY_PYTHON=/path/to/python.
  static testing::CommandResult python(const std::string& mode) {
    const char* other = std::getenv("GANTRY_PARITY_PYTHON");
    const std::string interpreter = other && *other ? other : GANTRY_TORCH_PYTHON;
    return run_command(interpreter + " " + kScript + " " + mode + " " + dir_->path() + names_);
  }

  static testing::ScratchDir* dir_;
  static std::string names_;
};
testing::ScratchDir* PythonParity::dir_ = nullptr;
std::string PythonParity::names_;

TEST_F(PythonParity, EveryRecipesNetworksAgreeWithTheCppOnes) {
  auto r = python("compare");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::cout << r.output;
  for (const char* net : {"vae.recon", "generator_ema.batch", "variational.eval", "pixelcnn.logits",
                          "discriminator_b.eval", "classifier.features"})
    EXPECT_NE(r.output.find(net), std::string::npos) << net << " was not compared:\n" << r.output;
}

TEST_F(PythonParity, AnOutputBiasMovedBy1e3IsCaught) {
  auto r = python("perturb");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("every perturbation caught"), std::string::npos) << r.output;
}

TEST_F(PythonParity, ACheckpointThatDoesNotFitIsRefusedNamingArchiveAndKey) {
  auto r = python("refusals");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace gantry
