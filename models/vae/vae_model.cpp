#include "vae/vae_model.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace gantry::vae {

namespace nn = torch::nn;

VaeImpl::VaeImpl(const VaeOptions& o) : options_(o) {
  const int64_t d = o.channels * o.height * o.width;
  if (o.arch == Arch::kMlp) {
    encoder_ = register_module("encoder", nn::Sequential(nn::Flatten(), nn::Linear(d, o.hidden), nn::ReLU()));
    to_mu_ = register_module("to_mu", nn::Linear(o.hidden, o.latent));
    to_logvar_ = register_module("to_logvar", nn::Linear(o.hidden, o.latent));
    decoder_ =
        register_module("decoder", nn::Sequential(nn::Linear(o.latent, o.hidden), nn::ReLU(), nn::Linear(o.hidden, d)));
  } else {
    if (o.height != o.width || (o.height != 32 && o.height != 64))
      throw std::invalid_argument("vae.arch = conv needs 32x32 or 64x64 images, got " + std::to_string(o.height) + "x" +
                                  std::to_string(o.width) + " (convert with --resolution 32)");
    // 4x4 stride-2 convs down to 4x4: 32→16→8→4 (3 layers) or 64→…→4 (4 layers); channels hidden·2^k.
    int layers = o.height == 32 ? 3 : 4;
    nn::Sequential enc, dec;
    int64_t c = o.channels, width = o.hidden;
    for (int i = 0; i < layers; ++i) {
      enc->push_back(nn::Conv2d(nn::Conv2dOptions(c, width, 4).stride(2).padding(1)));
      enc->push_back(nn::ReLU());
      c = width;
      if (i + 1 < layers) width *= 2;
    }
    enc->push_back(nn::Flatten());
    feat_c_ = c;
    feat_hw_ = 4;
    encoder_ = register_module("encoder", enc);
    to_mu_ = register_module("to_mu", nn::Linear(c * 16, o.latent));
    to_logvar_ = register_module("to_logvar", nn::Linear(c * 16, o.latent));
    from_z_ = register_module("from_z", nn::Linear(o.latent, c * 16));
    for (int i = 0; i < layers; ++i) {
      int64_t out = i + 1 < layers ? c / 2 : o.channels;
      dec->push_back(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(c, out, 4).stride(2).padding(1)));
      if (i + 1 < layers) dec->push_back(nn::ReLU());
      c = out;
    }
    decoder_ = register_module("decoder", dec);
  }
  if (o.likelihood == Likelihood::kGaussian) log_sigma2_ = register_parameter("log_sigma2", torch::zeros({o.channels}));
}

torch::Tensor VaeImpl::decode(const torch::Tensor& z) {
  const auto& o = options_;
  if (o.arch == Arch::kMlp) return decoder_->forward(z).view({z.size(0), o.channels, o.height, o.width});
  auto h = torch::relu(from_z_->forward(z)).view({z.size(0), feat_c_, feat_hw_, feat_hw_});
  return decoder_->forward(h);
}

VaeOutput VaeImpl::forward(const torch::Tensor& x, const torch::Tensor& eps) {
  auto h = encoder_->forward(x);
  VaeOutput out;
  out.mu = to_mu_->forward(h);
  out.logvar = to_logvar_->forward(h);
  auto noise = eps.defined() ? eps : torch::randn_like(out.mu);
  auto z = out.mu + torch::exp(0.5 * out.logvar) * noise;  // reparameterisation trick
  out.recon = decode(z);
  return out;
}

torch::Tensor VaeImpl::mean_image(const torch::Tensor& out) {
  if (options_.likelihood == Likelihood::kBernoulli) return torch::sigmoid(out) * 2 - 1;
  return out.clamp(-1, 1);
}

ElboTerms VaeImpl::elbo(const torch::Tensor& x, const VaeOutput& low) const {
  const int64_t b = x.size(0);
  // The loss in float32 from outputs an autocast forward may leave in bf16/fp16 (no-op in fp32).
  const VaeOutput out{low.recon.to(torch::kFloat32), low.mu.to(torch::kFloat32), low.logvar.to(torch::kFloat32)};
  torch::Tensor nll;
  if (options_.likelihood == Likelihood::kBernoulli) {
    auto target = (x + 1) * 0.5;  // pixels in [0, 1]
    nll = torch::binary_cross_entropy_with_logits(out.recon, target, {}, {}, at::Reduction::Sum) / b;
  } else {
    auto ls2 = log_sigma2_.view({1, -1, 1, 1});
    auto per = 0.5 * (std::log(2 * M_PI) + ls2 + (x - out.recon).pow(2) * torch::exp(-ls2));
    nll = per.sum() / b;
  }
  // KL(N(μ, σ²) ‖ N(0, 1)) in closed form: −½ Σ (1 + log σ² − μ² − σ²)
  auto kl = -0.5 * torch::sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp()) / b;
  return {nll + kl, nll, kl};
}

}  // namespace gantry::vae
