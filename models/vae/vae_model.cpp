#include "vae/vae_model.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "eval/likelihood.h"
#include "train/batch_source.h"

namespace gantry::vae {

namespace nn = torch::nn;

int64_t outputs_per_subpixel(Likelihood likelihood) {
  switch (likelihood) {
    case Likelihood::kLogistic: return 2;
    case Likelihood::kCategorical: return kPixelLevels;
    default: return 1;
  }
}

VaeImpl::VaeImpl(const VaeOptions& o) : options_(o) {
  const int64_t d = o.channels * o.height * o.width, k = outputs_per_subpixel(o.likelihood);
  if (o.arch == Arch::kMlp) {
    encoder_ = register_module("encoder", nn::Sequential(nn::Flatten(), nn::Linear(d, o.hidden), nn::ReLU()));
    to_mu_ = register_module("to_mu", nn::Linear(o.hidden, o.latent));
    to_logvar_ = register_module("to_logvar", nn::Linear(o.hidden, o.latent));
    decoder_ = register_module("decoder",
                               nn::Sequential(nn::Linear(o.latent, o.hidden), nn::ReLU(), nn::Linear(o.hidden, d * k)));
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
      int64_t out = i + 1 < layers ? c / 2 : o.channels * k;
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
  const int64_t k = outputs_per_subpixel(o.likelihood);
  if (o.arch == Arch::kMlp) return decoder_->forward(z).view({z.size(0), o.channels * k, o.height, o.width});
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

// (B, C·K, H, W) → (B, C, K, H, W): the K outputs of each sub-pixel.
static torch::Tensor per_subpixel(const torch::Tensor& out, const VaeOptions& o) {
  return out.view({out.size(0), o.channels, -1, o.height, o.width});
}

// The logistic's log-scale is clamped below as in PixelCNN++ (e^-7 ≈ 0.001 of the [-1, 1] range).
static torch::Tensor logistic_log_scale(const torch::Tensor& k2) {
  return k2.select(2, 1).clamp_min(-7);
}

torch::Tensor VaeImpl::mean_image(const torch::Tensor& out) {
  switch (options_.likelihood) {
    case Likelihood::kBernoulli: return torch::sigmoid(out) * 2 - 1;
    case Likelihood::kLogistic: return per_subpixel(out, options_).select(2, 0).clamp(-1, 1);
    case Likelihood::kCategorical: {
      auto p = torch::softmax(per_subpixel(out, options_).to(torch::kFloat32), 2);
      auto levels = torch::arange(kPixelLevels, p.options()).view({1, 1, -1, 1, 1}) * (2.0 / 255.0) - 1;
      return (p * levels).sum(2);
    }
    default: return out.clamp(-1, 1);
  }
}

torch::Tensor VaeImpl::nll(const torch::Tensor& x, const torch::Tensor& low) const {
  const auto& o = options_;
  // In float32 from outputs an autocast forward may leave in bf16/fp16 (no-op in fp32).
  auto out = low.to(torch::kFloat32);
  switch (o.likelihood) {
    case Likelihood::kBernoulli: {
      auto target = (x + 1) * 0.5;  // pixels in [0, 1]
      auto per = torch::binary_cross_entropy_with_logits(out, target, {}, {}, at::Reduction::None);
      return per.to(torch::kFloat64).flatten(1).sum(1);
    }
    case Likelihood::kGaussian: {
      auto ls2 = log_sigma2_.view({1, -1, 1, 1});
      auto per = 0.5 * (std::log(2 * M_PI) + ls2 + (x - out).pow(2) * torch::exp(-ls2));
      return per.to(torch::kFloat64).flatten(1).sum(1);
    }
    case Likelihood::kLogistic: {
      auto k2 = per_subpixel(out, o);
      return discretized_logistic_nll(k2.select(2, 0), logistic_log_scale(k2), pixel_values(x));
    }
    case Likelihood::kCategorical: return categorical_nll(per_subpixel(out, o), pixel_values(x));
  }
  throw std::logic_error("vae: unknown likelihood");
}

ElboTerms VaeImpl::elbo(const torch::Tensor& x, const VaeOutput& out) const {
  auto nll_mean = nll(x, out.recon).mean();
  auto mu = out.mu.to(torch::kFloat64), logvar = out.logvar.to(torch::kFloat64);
  // KL(N(μ, σ²) ‖ N(0, 1)) in closed form: −½ Σ (1 + log σ² − μ² − σ²)
  auto kl = -0.5 * torch::sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.size(0);
  // Summed in float64, returned in float32 (the unit every loss of a step has; 1e-7 relative).
  return {(nll_mean + kl).to(torch::kFloat32), nll_mean.to(torch::kFloat32), kl.to(torch::kFloat32)};
}

torch::Tensor VaeImpl::iwae(const torch::Tensor& x, int64_t k, std::vector<at::Generator>& row_gens, int64_t rows) {
  TORCH_CHECK(static_cast<int64_t>(row_gens.size()) == x.size(0), "vae iwae: one generator per image");
  // Each image's ε drawn in blocks of 16 samples whatever the chunk: the chunk depends on how many images
  // share a pass (the world size), and LibTorch's randn of n·L values is not n draws of L.
  constexpr int64_t kBlock = 16;
  torch::Tensor pending = torch::empty({x.size(0), 0, options_.latent});
  const auto draw = [&](int64_t n) {  // the next n standard normal ε per image, (B, n, latent)
    std::vector<torch::Tensor> blocks{pending};
    for (int64_t have = pending.size(1); have < n; have += kBlock)
      blocks.push_back(row_normal(row_gens, {kBlock, options_.latent}));
    torch::Tensor all = torch::cat(blocks, 1);
    pending = all.narrow(1, n, all.size(1) - n);
    return all.narrow(1, 0, n);
  };
  torch::NoGradGuard no_grad;
  const int64_t b = x.size(0);
  auto h = encoder_->forward(x);
  auto mu = to_mu_->forward(h).to(torch::kFloat32), logvar = to_logvar_->forward(h).to(torch::kFloat32);
  auto sigma = torch::exp(0.5 * logvar).unsqueeze(1);  // (B, 1, L)
  const int64_t chunk = std::max<int64_t>(1, std::min(k, rows / b));
  std::vector<torch::Tensor> log_w;  // (B, chunk) each
  for (int64_t done = 0; done < k; done += chunk) {
    const int64_t n = std::min(chunk, k - done);
    auto eps = draw(n).to(x.device());
    auto z = mu.unsqueeze(1) + sigma * eps;  // (B, n, L)
    // log p(z) − log q(z|x): the Gaussians' normalisers cancel; what is left per latent dimension is
    // −z²/2 + ε²/2 + log σ.
    auto log_prior_over_q = (0.5 * (eps.pow(2) - z.pow(2)) + 0.5 * logvar.unsqueeze(1)).sum(2);
    auto xs = x.unsqueeze(1).expand({b, n, x.size(1), x.size(2), x.size(3)}).flatten(0, 1);
    auto log_px = -nll(xs, decode(z.flatten(0, 1))).view({b, n});
    log_w.push_back(log_px + log_prior_over_q);
  }
  return log_mean_exp(torch::cat(log_w, 1).to(torch::kFloat64));
}

}  // namespace gantry::vae
