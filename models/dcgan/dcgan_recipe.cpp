#include "dcgan/dcgan_recipe.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "train/fused_adam.h"
#include "dcgan/dcgan_model.h"
#include "train/buffers.h"

namespace gantry::dcgan {

namespace {

namespace F = torch::nn::functional;

class DcganRecipe : public Recipe {
 public:
  explicit DcganRecipe(const RecipeEnv& env)
      : step_(env.step),
        device_(env.device),
        rank_(env.comm.rank()),
        world_(env.comm.world_size()),
        seed_(static_cast<uint64_t>(env.config.int64("run.seed"))),
        uniform_(env.config.str("dcgan.z") == "uniform"),
        ema_decay_(env.config.real("dcgan.ema")) {
    const Config& c = env.config;
    if (env.shape().height != env.shape().width) throw UsageError(at(c.str("data.path"), "DCGAN needs square images"));
    o_.resolution = env.shape().height;
    o_.channels = env.shape().channels;
    o_.z_dim = c.int64("dcgan.z_dim");
    o_.g_width = c.int64("dcgan.g_width");
    o_.d_width = c.int64("dcgan.d_width");
    try {
      g_ = Generator(o_);
      d_ = Discriminator(o_);
    } catch (const std::invalid_argument& e) {
      throw UsageError(at(c.str("data.path"), e.what()));
    }
    dcgan_init(*g_);
    dcgan_init(*d_);
    g_->to(device_);
    d_->to(device_);
    auto adam = [&](torch::nn::Module& m) {
      return std::make_unique<FusedAdam>(
          m.parameters(), torch::optim::AdamOptions(c.real("train.lr")).betas({c.real("dcgan.beta1"), 0.999}));
    };
    opt_g_ = adam(*g_);
    opt_d_ = adam(*d_);
    if (ema_decay_ > 0) {
      ema_ = Generator(o_);
      ema_->to(device_);
      copy_state(*g_, *ema_);
    }
    env.sync.add_group("D", {d_.ptr()});
    env.sync.add_group("G", {g_.ptr()});
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> n = {{"generator", g_.ptr()},
                                                                                 {"discriminator", d_.ptr()}};
    if (ema_) n.emplace_back("generator_ema", ema_.ptr());
    return n;
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam_g", opt_g_.get()}, {"adam_d", opt_d_.get()}};
  }

  Losses train_step(const StepBatches& batches) override {
    const Batch& batch = batches.at(kMainStream);
    auto real = images_to_float(batch.images, device_);
    auto z = step_noise(batch, real.size(0));

    // Discriminator: real and (detached) fake batches, D's gradients reduced, D steps. The generated
    // micro-batches keep their graphs for the generator's step.
    std::vector<torch::Tensor> fakes;
    Losses d = step_.update("D", {opt_d_.get()}, [&](int64_t k) {
      fakes.push_back(g_->forward(step_.micro(z, k)));
      auto logit_real = d_->forward(step_.micro(real, k));
      auto logit_fake = d_->forward(fakes.back().detach());
      auto loss_d = F::binary_cross_entropy_with_logits(logit_real, torch::ones_like(logit_real)) +
                    F::binary_cross_entropy_with_logits(logit_fake, torch::zeros_like(logit_fake));
      return Losses{{"loss_d", loss_d},
                    {"d_real", torch::sigmoid(logit_real).mean()},
                    {"d_fake", torch::sigmoid(logit_fake).mean()}};
    });

    // Generator: non-saturating loss −log D(G(z)); backward flows through D, but only G is reduced.
    Losses g = step_.update("G", {opt_g_.get()}, [&](int64_t k) {
      auto logit_gen = d_->forward(fakes[static_cast<size_t>(k)]);
      return Losses{{"loss_g", F::binary_cross_entropy_with_logits(logit_gen, torch::ones_like(logit_gen))}};
    });
    if (ema_) update_ema();
    return {d[0], g[0], d[1], d[2]};
  }

  // Samples from a fixed latent batch (the trainer passes the same generator state at every grid), in
  // training mode as DCGAN samples are usually drawn; BatchNorm statistics are restored afterwards so
  // sampling leaves no trace in the networks.
  torch::Tensor sample(int64_t n, at::Generator& gen) override {
    torch::NoGradGuard no_grad;
    Generator& g = ema_ ? ema_ : g_;
    BufferSnapshot keep({g.ptr()});
    return g->forward(latent(n, gen).to(device_)).cpu();
  }

 private:
  torch::Tensor latent(int64_t n, at::Generator gen) const {
    return uniform_ ? at::rand({n, o_.z_dim}, gen, torch::kFloat32) * 2 - 1
                    : at::randn({n, o_.z_dim}, gen, torch::kFloat32);
  }

  // Latent noise for the whole global batch from (seed, data position), sliced to this rank's rows:
  // independent of the number of ranks, and replayed exactly after a resume.
  torch::Tensor step_noise(const Batch& batch, int64_t local) const {
    auto gen = batch_generator(seed_, /*stream=*/0xDC6A4, batch.position);
    return rank_rows(latent(local * world_, gen), rank_, world_).to(device_, /*non_blocking=*/true);
  }

  static void copy_state(torch::nn::Module& from, torch::nn::Module& to) {
    torch::NoGradGuard no_grad;
    auto src = from.named_parameters(), dst = to.named_parameters();
    for (auto& p : src) dst[p.key()].copy_(p.value());
    auto sb = from.named_buffers(), db = to.named_buffers();
    for (auto& b : sb) db[b.key()].copy_(b.value());
  }

  void update_ema() {
    torch::NoGradGuard no_grad;
    auto src = g_->named_parameters(), dst = ema_->named_parameters();
    for (auto& p : src) dst[p.key()].mul_(ema_decay_).add_(p.value(), 1.0 - ema_decay_);
    auto sb = g_->named_buffers(), db = ema_->named_buffers();
    for (auto& b : sb) db[b.key()].copy_(b.value());
  }

  StepContext& step_;
  torch::Device device_;
  int rank_, world_;
  uint64_t seed_;
  bool uniform_;
  double ema_decay_;
  DcganOptions o_;
  Generator g_{nullptr}, ema_{nullptr};
  Discriminator d_{nullptr};
  std::unique_ptr<FusedAdam> opt_g_, opt_d_;
};

}  // namespace

RecipeInfo recipe_info() {
  return {"dcgan",
          [](Schema& s) {
            s.add_string("dcgan.z", "uniform", "latent distribution: uniform on [-1,1] (the paper) or normal",
                         {"uniform", "normal"})
                .add_int("dcgan.z_dim", 100, "latent dimensions", 1)
                .add_int("dcgan.g_width", 128, "generator channels before the output layer (x8 at 4x4 for 64x64)", 1)
                .add_int("dcgan.d_width", 128,
                         "discriminator channels at its first layer (128: the generator mirrored)", 1)
                .add_real("dcgan.beta1", 0.5, "Adam beta1", 0, 1)
                .add_real("dcgan.ema", 0,
                          "decay of an exponential moving average of the generator for sampling (0: off)", 0, 0.99999);
          },
          [](const RecipeEnv& env) { return std::make_unique<DcganRecipe>(env); },
          {}};
}

}  // namespace gantry::dcgan
