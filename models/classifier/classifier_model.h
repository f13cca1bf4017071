// The image classifier whose penultimate features gantry's evaluation measures GAN samples in (Fréchet
// distance and KID, models/classifier/README.md): two blocks of two 3x3 convolutions (32 then 64
// channels, ReLU, 2x2 max-pooling), a `features`-unit ReLU layer (the embedding), dropout, and a linear
// layer to the class logits. Any square size divisible by 4, any channel count.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

namespace gantry::classifier {

struct ClassifierOptions {
  int64_t channels = 1, height = 28, width = 28;  // image shape
  int64_t classes = 10;
  int64_t features = 128;  // width of the embedding layer
  double dropout = 0.5;
};

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierOptions& options);
  torch::Tensor features(const torch::Tensor& x);  // (B, C, H, W) in [-1, 1] → (B, features), after ReLU
  torch::Tensor forward(const torch::Tensor& x);   // → (B, classes) logits
  const ClassifierOptions& options() const { return options_; }

 private:
  ClassifierOptions options_;
  torch::nn::Sequential body_{nullptr};
  torch::nn::Linear embed_{nullptr}, head_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Classifier);

}  // namespace gantry::classifier
