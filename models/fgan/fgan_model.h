// f-GAN networks (Nowozin, Cseke & Tomioka 2016). A generator maps noise z to samples; a variational
// function V_ω maps samples to one real number each, with no output activation (the divergence's g_f
// is applied by the objective, fgan_step.h).
//   MNIST pair (paper, Sec. 4 / appendix):
//     MlpGenerator    z ~ U(-1,1)^100 → Linear 1200 → BN → ReLU → Linear 1200 → BN → ReLU → Linear 784 → sigmoid
//     MlpVariational  784 → Linear 240 → ELU → Linear 240 → ELU → Linear 1
//     weights U(−init_scale, init_scale), biases 0: 0.05 in the generator, 0.005 in the variational function,
//     the initialisation of Goodfellow et al. 2014's MNIST GAN (adversarial repository, mnist.yaml, pylearn2's
//     `irange`: uniform in ±irange), which f-GAN reuses.
//   1-D experiment (paper, Sec. 5.1): GaussianGenerator x = μ + σ·z, z ~ N(0, 1), learned (μ, log σ);
//     a small MLP variational function (1 → 64 → 64 → 1, tanh).
//   LSUN: the DCGAN generator and discriminator (models/dcgan), the discriminator's logit being V.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <string>

namespace gantry::fgan {

struct MlpGeneratorOptions {
  int64_t z_dim = 100, hidden = 1200, out = 784;
  double init_scale = 0.05;  // weights U(-init_scale, init_scale), biases 0; 0: LibTorch's default initialisation
};

class MlpGeneratorImpl : public torch::nn::Module {
 public:
  explicit MlpGeneratorImpl(const MlpGeneratorOptions& o);
  torch::Tensor forward(const torch::Tensor& z);  // (B, z_dim) → (B, out) in (0, 1)
 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(MlpGenerator);

struct MlpVariationalOptions {
  int64_t in = 784, hidden = 240, layers = 2;  // hidden layers
  std::string activation = "elu";              // elu | tanh
  double init_scale = 0.005;                   // as MlpGeneratorOptions::init_scale
};

class MlpVariationalImpl : public torch::nn::Module {
 public:
  explicit MlpVariationalImpl(const MlpVariationalOptions& o);
  torch::Tensor forward(const torch::Tensor& x);  // (B, in) → (B)
 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(MlpVariational);

class GaussianGeneratorImpl : public torch::nn::Module {
 public:
  GaussianGeneratorImpl(double mu = 0.0, double sigma = 1.0);
  torch::Tensor forward(const torch::Tensor& z);  // (B, 1) standard normal → (B, 1) = μ + σ z
  double mu() const;
  double sigma() const;
  // The same as 0-dim tensors on the parameters' device (no host sync), detached.
  torch::Tensor mu_tensor() const;
  torch::Tensor sigma_tensor() const;

 private:
  torch::Tensor mu_, log_sigma_;
};
TORCH_MODULE(GaussianGenerator);

}  // namespace gantry::fgan
