// Variational auto-encoder networks and the negative ELBO (Kingma & Welling 2013).
//   arch = mlp : x (784) → hidden ReLU → (μ, log σ²) of a `latent`-d Gaussian; decoder latent → hidden
//                ReLU → D logits. The paper's MNIST model (pytorch/examples: 784-400-20).
//   arch = conv: 32x32 or 64x64, 1 or 3 channels: stride-2 4x4 convs (32·2^k channels) → FC to (μ, log σ²);
//                decoder mirrors with transposed convs.
// Decoder likelihood: Bernoulli (logits; targets are pixels in [0, 1]) or Gaussian (mean in [-1,1]
// space and one learned log-variance per channel). Loss is in nats per image.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <string>

namespace gantry::vae {

enum class Arch { kMlp, kConv };
enum class Likelihood { kBernoulli, kGaussian };

struct VaeOptions {
  Arch arch = Arch::kMlp;
  Likelihood likelihood = Likelihood::kBernoulli;
  int64_t channels = 1, height = 28, width = 28;  // image shape
  int64_t hidden = 400;                           // mlp: hidden units; conv: channels of the first conv
  int64_t latent = 20;
};

struct VaeOutput {
  torch::Tensor recon;       // decoder output (logits or means), (B, C, H, W)
  torch::Tensor mu, logvar;  // (B, latent)
};

struct ElboTerms {
  torch::Tensor loss;   // mean over the batch of −ELBO, nats per image (what backward uses)
  torch::Tensor recon;  // mean reconstruction NLL, nats per image
  torch::Tensor kl;     // mean KL(q(z|x) ‖ N(0, I)), nats per image
};

class VaeImpl : public torch::nn::Module {
 public:
  explicit VaeImpl(const VaeOptions& options);
  // x: (B, C, H, W) in [-1, 1]. `eps` is the reparameterisation noise (B, latent) or undefined (drawn).
  VaeOutput forward(const torch::Tensor& x, const torch::Tensor& eps = {});
  torch::Tensor decode(const torch::Tensor& z);        // → logits / means
  torch::Tensor mean_image(const torch::Tensor& out);  // decoder output → image in [-1, 1]
  ElboTerms elbo(const torch::Tensor& x, const VaeOutput& out) const;
  const VaeOptions& options() const { return options_; }

 private:
  VaeOptions options_;
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
  torch::nn::Linear to_mu_{nullptr}, to_logvar_{nullptr}, from_z_{nullptr};
  torch::Tensor log_sigma2_;          // Gaussian decoder: (C) learned log-variance
  int64_t feat_c_ = 0, feat_hw_ = 0;  // conv: feature map at the bottleneck
};
TORCH_MODULE(Vae);

}  // namespace gantry::vae
