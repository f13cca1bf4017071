#include "vae/vae_recipe.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "report/image.h"
#include "train/fused_adam.h"
#include "vae/vae_model.h"

namespace gantry::vae {

namespace {

class VaeRecipe : public Recipe {
 public:
  explicit VaeRecipe(const RecipeEnv& env)
      : step_(env.step),
        device_(env.device),
        rank_(env.comm.rank()),
        world_(env.comm.world_size()),
        seed_(static_cast<uint64_t>(env.config.int64("run.seed"))) {
    const Config& c = env.config;
    VaeOptions o;
    o.arch = c.str("vae.arch") == "conv" ? Arch::kConv : Arch::kMlp;
    std::string lik = c.str("vae.likelihood");
    o.likelihood = lik == "bernoulli"     ? Likelihood::kBernoulli
                   : lik == "gaussian"    ? Likelihood::kGaussian
                   : lik == "categorical" ? Likelihood::kCategorical
                                          : Likelihood::kLogistic;
    o.channels = env.shape().channels;
    o.height = env.shape().height;
    o.width = env.shape().width;
    o.hidden = c.int64("vae.hidden");
    o.latent = c.int64("vae.latent");
    try {
      model_ = Vae(o);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("vae.arch: ") + e.what());
    }
    model_->to(device_);
    optimizer_ = std::make_unique<FusedAdam>(
        model_->parameters(), torch::optim::AdamOptions(c.real("train.lr")).betas({c.real("vae.beta1"), 0.999}));
    dims_ = o.channels * o.height * o.width;
    iwae_k_ = c.int64("vae.iwae_k");
    env.sync.add_group("vae", {model_.ptr()});
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"vae", model_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam", optimizer_.get()}};
  }

  // Gradient of the mean negative ELBO over this rank's batch (in train.micro_batches micro-batches).
  Losses train_step(const StepBatches& batches) override {
    const Batch& batch = batches.at(kMainStream);
    auto x = images_to_float(batch.images, device_);
    auto noise = step_noise(batch, x.size(0));
    return step_.update("vae", {optimizer_.get()}, [&](int64_t k) {
      auto xs = step_.micro(x, k);
      auto terms = model_->elbo(xs, model_->forward(xs, step_.micro(noise, k)));
      return Losses{{"loss", terms.loss}, {"recon", terms.recon}, {"kl", terms.kl}};
    });
  }

  // Reparameterisation noise for the whole global batch, drawn from (seed, data position) and sliced
  // to this rank's rows: a step's noise does not depend on the number of ranks (1 rank x B and
  // W ranks x B/W take the same step) and a resumed run draws what the uninterrupted one drew.
  torch::Tensor step_noise(const Batch& batch, int64_t local) const {
    auto gen = batch_generator(seed_, /*stream=*/0x5AE, batch.position);
    return rank_rows(at::randn({local * world_, model_->options().latent}, gen, torch::kFloat32), rank_, world_)
        .to(device_, /*non_blocking=*/true);
  }

  torch::Tensor latent_noise(int64_t n, at::Generator& gen) const {
    return at::randn({n, model_->options().latent}, gen, torch::kFloat32).to(device_);
  }

  torch::Tensor sample(int64_t n, at::Generator& gen) override {
    torch::NoGradGuard no_grad;
    auto z = latent_noise(n, gen);
    return model_->mean_image(model_->decode(z)).cpu();
  }

  // Held-out negative ELBO (closed-form KL, one posterior sample per image) in nats per image, and with
  // vae.iwae_k > 0 the importance-weighted bound. Bits/dim (nats / (D ln 2)) only for the decoders that
  // are distributions of the 8-bit image (logistic, categorical): then both are bounds on its code length.
  // Each image's z draws are its own (row_generators), so the bounds are the same on every world size.
  Losses evaluate(BatchSource& eval, int64_t batches, uint64_t noise_key) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    auto zero = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kFloat64));
    auto sum = zero.clone(), recon = zero.clone(), iwae = zero.clone();
    int64_t n = 0;
    for (int64_t i = 0; i < batches; ++i) {
      Batch b = eval.next();
      auto x = images_to_float(b.images, device_);
      auto gens = row_generators(noise_key, b, rank_);
      auto terms = model_->elbo(x, model_->forward(x, row_normal(gens, {model_->options().latent}).to(device_)));
      sum += terms.loss.to(torch::kFloat64) * static_cast<double>(x.size(0));
      recon += terms.recon.to(torch::kFloat64) * static_cast<double>(x.size(0));
      if (iwae_k_ > 0) iwae -= model_->iwae(x, iwae_k_, gens).sum();
      n += x.size(0);
    }
    model_->train();
    const double count = static_cast<double>(n);
    Losses out{{"eval_loss", sum / count}, {"eval_recon", recon / count}};
    if (iwae_k_ > 0) out.emplace_back("eval_iwae_nats", iwae / count);
    if (is_discrete(model_->options().likelihood)) {
      out.emplace_back("eval_bits_per_dim", sum / count / (dims_ * std::log(2.0)));
      if (iwae_k_ > 0) out.emplace_back("eval_iwae_bits_per_dim", iwae / count / (dims_ * std::log(2.0)));
    }
    return out;
  }

  void write_visuals(const std::string& prefix, const StepBatches& batches, at::Generator& gen) override {
    torch::NoGradGuard no_grad;
    const Batch& batch = batches.at(kMainStream);
    auto x = images_to_float(batch.images, device_).narrow(0, 0, std::min<int64_t>(batch.images.size(0), 32));
    auto out = model_->forward(x, latent_noise(x.size(0), gen));
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
  StepContext& step_;
  torch::Device device_;
  Vae model_{nullptr};
  std::unique_ptr<FusedAdam> optimizer_;
  double dims_ = 1;
  int64_t iwae_k_ = 0;
  int rank_, world_;
  uint64_t seed_;
};

}  // namespace

RecipeInfo recipe_info() {
  return {"vae",
          [](Schema& s) {
            s.add_string("vae.arch", "mlp", "mlp (paper: 784-400-20) or conv (32x32 / 64x64 images)", {"mlp", "conv"})
                .add_string("vae.likelihood", "logistic",
                            "decoder p(x|z): logistic or categorical (distributions of the 8-bit image: "
                            "bits/dim), bernoulli ([0,1] pixels) or gaussian (nats only)",
                            {"logistic", "categorical", "bernoulli", "gaussian"})
                .add_int("vae.hidden", 400, "mlp: hidden units; conv: channels of the first conv", 1)
                .add_int("vae.latent", 20, "latent dimensions", 1)
                .add_int("vae.iwae_k", 0, "held-out importance-weighted bound with k samples (0: ELBO only)", 0)
                .add_real("vae.beta1", 0.9, "Adam beta1", 0, 1);
          },
          [](const RecipeEnv& env) { return std::make_unique<VaeRecipe>(env); },
          {}};
}

}  // namespace gantry::vae
