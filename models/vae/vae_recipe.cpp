#include "vae/vae_recipe.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "report/image.h"
#include "vae/vae_model.h"

namespace gantry::vae {

namespace {

class VaeRecipe : public Recipe {
 public:
  explicit VaeRecipe(const RecipeEnv& env)
      : sync_(env.sync),
        device_(env.device),
        rank_(env.comm.rank()),
        world_(env.comm.world_size()),
        seed_(static_cast<uint64_t>(env.config.int64("run.seed"))),
        micro_(env.config.int64("train.micro_batches")),
        clip_(env.config.real("train.clip_grad_norm")) {
    const Config& c = env.config;
    VaeOptions o;
    o.arch = c.str("vae.arch") == "conv" ? Arch::kConv : Arch::kMlp;
    std::string lik = c.str("vae.likelihood");
    if (lik == "auto") lik = env.shape.channels == 1 ? "bernoulli" : "gaussian";
    o.likelihood = lik == "bernoulli" ? Likelihood::kBernoulli : Likelihood::kGaussian;
    o.channels = env.shape.channels;
    o.height = env.shape.height;
    o.width = env.shape.width;
    o.hidden = c.int64("vae.hidden");
    o.latent = c.int64("vae.latent");
    try {
      model_ = Vae(o);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("vae.arch: ") + e.what());
    }
    model_->to(device_);
    optimizer_ = std::make_unique<torch::optim::Adam>(
        model_->parameters(), torch::optim::AdamOptions(c.real("train.lr")).betas({c.real("vae.beta1"), 0.999}));
    dims_ = static_cast<double>(o.channels * o.height * o.width);
    sync_.add_group("vae", {model_.ptr()});
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"vae", model_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam", optimizer_.get()}};
  }

  // Gradient of the mean negative ELBO over this rank's batch, in `micro_` micro-batches: all but the
  // last accumulate locally, the last one's backward reduces the sum (GradSync accumulation).
  Losses train_step(const Batch& batch) override {
    auto x = images_to_float(batch.images, device_);
    const int64_t b = x.size(0);
    if (b % micro_ != 0)
      throw UsageError("train.micro_batches: " + std::to_string(micro_) + " does not divide the per-rank batch " +
                       std::to_string(b));
    auto noise = step_noise(batch, b);
    optimizer_->zero_grad();
    double loss = 0, recon = 0, kl = 0;
    const int64_t m = b / micro_;
    for (int64_t k = 0; k < micro_; ++k) {
      sync_.set_accumulating(k + 1 < micro_);
      sync_.arm("vae");
      auto xs = x.narrow(0, k * m, m);
      auto terms = model_->elbo(xs, model_->forward(xs, noise.narrow(0, k * m, m)));
      sync_.average_loss(terms.loss / static_cast<double>(micro_)).backward();
      sync_.finish("vae");
      loss += terms.loss.item<double>() / static_cast<double>(micro_);
      recon += terms.recon.item<double>() / static_cast<double>(micro_);
      kl += terms.kl.item<double>() / static_cast<double>(micro_);
    }
    if (clip_ > 0) sync_.clip_grad_norm("vae", clip_);
    optimizer_->step();
    return {{"loss", loss}, {"recon", recon}, {"kl", kl}};
  }

  // Reparameterisation noise for the whole global batch, drawn from (seed, data position) and sliced
  // to this rank's rows: a step's noise does not depend on the number of ranks (1 rank x B and
  // W ranks x B/W take the same step) and a resumed run draws what the uninterrupted one drew.
  torch::Tensor step_noise(const Batch& batch, int64_t local) const {
    auto gen = batch_generator(seed_, /*stream=*/0x5AE, batch.position);
    return rank_rows(at::randn({local * world_, model_->options().latent}, gen, torch::kFloat32), rank_, world_)
        .to(device_);
  }

  torch::Tensor sample(int64_t n) override {
    torch::NoGradGuard no_grad;
    auto z = torch::randn({n, model_->options().latent}).to(device_);
    return model_->mean_image(model_->decode(z)).cpu();
  }

  // Held-out negative ELBO (one posterior sample per image), and bits/dim = nats / (D ln 2).
  Losses evaluate(BatchSource& eval, int64_t batches) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    double sum = 0, recon = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < batches; ++i) {
      Batch b = eval.next();
      auto x = images_to_float(b.images, device_);
      auto terms = model_->elbo(x, model_->forward(x));
      sum += terms.loss.item<double>() * static_cast<double>(x.size(0));
      recon += terms.recon.item<double>() * static_cast<double>(x.size(0));
      n += x.size(0);
    }
    model_->train();
    double nelbo = sum / static_cast<double>(n);
    return {{"eval_loss", nelbo},
            {"eval_recon", recon / static_cast<double>(n)},
            {"eval_bits_per_dim", nelbo / (dims_ * std::log(2.0))}};
  }

  void write_visuals(const std::string& prefix, const Batch& batch) override {
    torch::NoGradGuard no_grad;
    auto x = images_to_float(batch.images, device_).narrow(0, 0, std::min<int64_t>(batch.images.size(0), 32));
    auto out = model_->forward(x);
    auto recon = model_->mean_image(out.recon);
    // Rows alternate: originals, reconstructions (8 per row).
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < x.size(0); i += 8) {
      int64_t k = std::min<int64_t>(8, x.size(0) - i);
      rows.push_back(x.narrow(0, i, k).cpu());
      rows.push_back(recon.narrow(0, i, k).cpu());
    }
    save_grid(prefix + ".png", torch::cat(rows), 8);
  }

 private:
  GradSync& sync_;
  torch::Device device_;
  Vae model_{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer_;
  double dims_ = 1;
  int rank_, world_;
  uint64_t seed_;
  int64_t micro_;
  double clip_;
};

}  // namespace

RecipeInfo recipe_info() {
  return {"vae",
          [](Schema& s) {
            s.add_string("vae.arch", "mlp", "mlp (paper: 784-400-20) or conv (32x32 / 64x64 images)", {"mlp", "conv"})
                .add_string("vae.likelihood", "auto",
                            "decoder: bernoulli ([0,1] pixels), gaussian, auto (bernoulli for 1 channel)",
                            {"auto", "bernoulli", "gaussian"})
                .add_int("vae.hidden", 400, "mlp: hidden units; conv: channels of the first conv", 1)
                .add_int("vae.latent", 20, "latent dimensions", 1)
                .add_real("vae.beta1", 0.9, "Adam beta1", 0, 1);
          },
          [](const RecipeEnv& env) { return std::make_unique<VaeRecipe>(env); },
          {}};
}

}  // namespace gantry::vae
