#include "pixelcnn/pixelcnn_recipe.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "core/errors.h"
#include "pixelcnn/pixelcnn_model.h"
#include "train/fused_adam.h"

namespace gantry::pixelcnn {

namespace {

// The stored values (B, H, W, C) uint8 on `device`: the network's input in [-1, 1] (B, C, H, W) and the
// targets (B, C, H, W) int64.
struct Inputs {
  torch::Tensor x, target;
};
Inputs inputs(const torch::Tensor& images, const torch::Device& device) {
  if (images.scalar_type() != torch::kUInt8)
    throw std::logic_error("pixelcnn: the train stream must arrive as uint8 (StreamSpec BatchFormat::kUint8)");
  auto u8 = images.to(device, /*non_blocking=*/true);
  return {uint8_to_float(u8), u8.permute({0, 3, 1, 2}).to(torch::kLong)};
}

class PixelCnnRecipe : public Recipe {
 public:
  explicit PixelCnnRecipe(const RecipeEnv& env) : step_(env.step), device_(env.device) {
    const Config& c = env.config;
    PixelCnnOptions o;
    o.arch = c.str("pixelcnn.arch") == "gated" ? Arch::kGated : Arch::kResidual;
    o.channels = env.shape().channels;
    o.height = env.shape().height;
    o.width = env.shape().width;
    o.layers = c.int64("pixelcnn.layers");
    o.hidden = c.int64("pixelcnn.hidden");
    o.first_kernel = c.int64("pixelcnn.first_kernel");
    o.kernel = c.int64("pixelcnn.kernel");
    o.out_hidden = c.int64("pixelcnn.out_hidden");
    try {
      model_ = PixelCnn(o);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("pixelcnn.") + e.what());  // "pixelcnn.kernel: must be odd ..."
    }
    model_->to(device_);
    optimizer_ = std::make_unique<FusedAdam>(
        model_->parameters(), torch::optim::AdamOptions(c.real("train.lr")).betas({c.real("pixelcnn.beta1"), 0.999}));
    dims_ = static_cast<double>(o.channels * o.height * o.width);
    env.sync.add_group("pixelcnn", {model_.ptr()});
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"pixelcnn", model_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam", optimizer_.get()}};
  }

  // Mean NLL of this rank's batch in bits/dim (nats per sub-pixel / ln 2); the minimised loss.
  Losses train_step(const StepBatches& batches) override {
    const Inputs in = inputs(batches.at(kMainStream).images, device_);
    return step_.update("pixelcnn", {optimizer_.get()}, [&](int64_t k) {
      auto logits = model_->forward(step_.micro(in.x, k));
      return Losses{{"loss", PixelCnnImpl::nll(logits, step_.micro(in.target, k)) / std::log(2.0)}};
    });
  }

  torch::Tensor sample(int64_t n, at::Generator& gen) override { return uint8_to_float(model_->sample(n, gen)).cpu(); }

  // Held-out NLL: bits/dim (eval_loss, the training loss's unit, and eval_bits_per_dim) and nats per
  // image (eval_nats), summed in float64 over every sub-pixel of `batches` batches.
  Losses evaluate(BatchSource& eval, int64_t batches, uint64_t) override {
    torch::NoGradGuard no_grad;
    auto nats = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kFloat64));
    int64_t images = 0;
    for (int64_t i = 0; i < batches; ++i) {
      const Inputs in = inputs(eval.next().images, device_);
      nats += PixelCnnImpl::nll(model_->forward(in.x), in.target).to(torch::kFloat64) *
              static_cast<double>(in.target.numel());
      images += in.x.size(0);
    }
    auto per_image = nats / static_cast<double>(images);
    auto bpd = per_image / (dims_ * std::log(2.0));
    return {{"eval_loss", bpd}, {"eval_bits_per_dim", bpd}, {"eval_nats", per_image}};
  }

 private:
  StepContext& step_;
  torch::Device device_;
  PixelCnn model_{nullptr};
  std::unique_ptr<FusedAdam> optimizer_;
  double dims_ = 1;
};

}  // namespace

RecipeInfo recipe_info() {
  RecipeInfo info{"pixelcnn",
                  [](Schema& s) {
                    s.add_string("pixelcnn.arch", "residual",
                                 "residual (PixelCNN of Pixel RNN, 2016) or gated (Gated PixelCNN: vertical and "
                                 "horizontal stacks, no blind spot)",
                                 {"residual", "gated"})
                        .add_int("pixelcnn.layers", 15, "residual blocks / gated layers", 1)
                        .add_int("pixelcnn.hidden", 128,
                                 "h: residual blocks carry 2h features (h inside); gated: features per stack "
                                 "(split into one group per colour)",
                                 1)
                        .add_int("pixelcnn.first_kernel", 7, "kernel of the first (mask A) layer, odd", 1)
                        .add_int("pixelcnn.kernel", 3, "kernel of the later masked convolutions, odd", 1)
                        .add_int("pixelcnn.out_hidden", 1024, "features of the first of the two 1x1 output layers", 1)
                        .add_real("pixelcnn.beta1", 0.9, "Adam beta1", 0, 1);
                  },
                  [](const RecipeEnv& env) { return std::make_unique<PixelCnnRecipe>(env); },
                  {}};
  info.streams = {StreamSpec{kMainStream, BatchFormat::kUint8}};
  return info;
}

}  // namespace gantry::pixelcnn
