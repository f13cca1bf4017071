// Variational auto-encoder networks and the negative ELBO (Kingma & Welling 2013).
//   arch = mlp : x (784) → hidden ReLU → (μ, log σ²) of a `latent`-d Gaussian; decoder latent → hidden
//                ReLU → D logits. The paper's MNIST model (pytorch/examples: 784-400-20).
//   arch = conv: 32x32 or 64x64, 1 or 3 channels: stride-2 4x4 convs (32·2^k channels) → FC to (μ, log σ²);
//                decoder mirrors with transposed convs.
// Decoder likelihood p(x|z):
//   logistic    : a discretised logistic over the 256 stored values per sub-pixel (mean, log-scale): a
//                 normalised distribution of the 8-bit image, so −ELBO / (D ln 2) bounds its bits/dim;
//   categorical : a 256-way softmax per sub-pixel (256 decoder outputs per sub-pixel); also normalised;
//   bernoulli   : logits, targets are pixels in [0, 1] (pytorch/examples' continuous BCE; not a
//                 distribution of the 8-bit image: nats only, no bits/dim);
//   gaussian    : mean in [-1, 1] space and one learned log-variance per channel (a density of
//                 continuous pixels without dequantisation: nats only, no bits/dim).
// Losses are in nats per image.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

namespace gantry::vae {

enum class Arch { kMlp, kConv };
enum class Likelihood { kBernoulli, kGaussian, kLogistic, kCategorical };

// Decoder outputs per sub-pixel: 1 (Bernoulli logit, Gaussian mean), 2 (logistic mean, log-scale), 256.
int64_t outputs_per_subpixel(Likelihood likelihood);
// Whether −log p(x|z) is a code length of the stored 8-bit image (so bits/dim compares with PixelCNN's).
inline bool is_discrete(Likelihood likelihood) {
  return likelihood == Likelihood::kLogistic || likelihood == Likelihood::kCategorical;
}

struct VaeOptions {
  Arch arch = Arch::kMlp;
  Likelihood likelihood = Likelihood::kLogistic;
  int64_t channels = 1, height = 28, width = 28;  // image shape
  int64_t hidden = 400;                           // mlp: hidden units; conv: channels of the first conv
  int64_t latent = 20;
};

struct VaeOutput {
  torch::Tensor recon;       // decoder output (B, C·K, H, W), K = outputs_per_subpixel, grouped per channel
  torch::Tensor mu, logvar;  // (B, latent)
};

struct ElboTerms {      // float64 scalars
  torch::Tensor loss;   // mean over the batch of −ELBO, nats per image (what backward uses)
  torch::Tensor recon;  // mean reconstruction NLL, nats per image
  torch::Tensor kl;     // mean KL(q(z|x) ‖ N(0, I)), nats per image
};

class VaeImpl : public torch::nn::Module {
 public:
  explicit VaeImpl(const VaeOptions& options);
  // x: (B, C, H, W) in [-1, 1]. `eps` is the reparameterisation noise (B, latent) or undefined (drawn).
  VaeOutput forward(const torch::Tensor& x, const torch::Tensor& eps = {});
  torch::Tensor decode(const torch::Tensor& z);        // (N, latent) → decoder output (N, C·K, H, W)
  torch::Tensor mean_image(const torch::Tensor& out);  // decoder output → image in [-1, 1]
  // −log p(x|z) per image (B), nats, from the decoder output for z: float32 terms, float64 sums.
  torch::Tensor nll(const torch::Tensor& x, const torch::Tensor& out) const;
  ElboTerms elbo(const torch::Tensor& x, const VaeOutput& out) const;
  // The importance-weighted bound (Burda, Grosse & Salakhutdinov 2016) per image (B), nats:
  // log (1/k Σ_i p(x|z_i) p(z_i) / q(z_i|x)), z_i ~ q(z|x), image b's noise drawn from row_gens[b]
  // (row_generators: per-sample numbers, the same on every world size); k = 1 is the ELBO with a sampled
  // KL. Decodes about `rows` samples at a time.
  torch::Tensor iwae(const torch::Tensor& x, int64_t k, std::vector<at::Generator>& row_gens, int64_t rows = 4096);
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
