// DCGAN networks (Radford, Metz & Chintala 2015) for 32x32 or 64x64 images, 1 or 3 channels.
//   Generator:     z (B, z_dim) → project (linear) and reshape to 4x4 x (g_width·2^k) → BN, ReLU →
//                  k transposed convs 4x4 / stride 2 halving channels (BN, ReLU) → channels, tanh.
//                  64x64: 4x4x1024 → 8x8x512 → 16x16x256 → 32x32x128 → 64x64x3 with g_width 128.
//   Discriminator: k+1 convs 4x4 / stride 2 from d_width channels, doubling (BN except on the first),
//                  64x64: 128 → 256 → 512 → 1024 with d_width 128, the generator mirrored (the authors' code),
//                  LeakyReLU 0.2 → a 4x4 valid conv to one logit. No pooling, no hidden FC layers.
// Weights N(0, 0.02), BatchNorm scale N(1, 0.02) and shift 0 (dcgan_init). BatchNorm is gantry's
// (dist/batch_norm.h): local statistics, or the global batch's with dist.sync_batchnorm.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "dist/batch_norm.h"

namespace gantry::dcgan {

struct DcganOptions {
  int64_t resolution = 64;  // 32 or 64
  int64_t channels = 3;
  int64_t z_dim = 100;
  int64_t g_width = 128;  // generator channels at the last hidden layer (4x4 stage has g_width·2^k)
  int64_t d_width = 128;  // discriminator channels at the first layer (128: mirrors the generator)
};

class GeneratorImpl : public torch::nn::Module {
 public:
  explicit GeneratorImpl(const DcganOptions& o);
  torch::Tensor forward(const torch::Tensor& z);  // (B, z_dim) → (B, C, R, R) in [-1, 1]
 private:
  torch::nn::Linear project_{nullptr};
  BatchNorm project_bn_{nullptr};
  torch::nn::Sequential body_{nullptr};
  int64_t c0_ = 0;  // channels at 4x4
};
TORCH_MODULE(Generator);

class DiscriminatorImpl : public torch::nn::Module {
 public:
  explicit DiscriminatorImpl(const DcganOptions& o);
  torch::Tensor forward(const torch::Tensor& x);  // (B, C, R, R) → (B) logits
 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(Discriminator);

// N(0, 0.02) for conv / linear weights (biases 0), N(1, 0.02) for BatchNorm scales.
void dcgan_init(torch::nn::Module& module);

}  // namespace gantry::dcgan
