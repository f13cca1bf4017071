#include "classifier/classifier_model.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace gantry::classifier {

namespace nn = torch::nn;

ClassifierImpl::ClassifierImpl(const ClassifierOptions& o) : options_(o) {
  if (o.height % 4 != 0 || o.width % 4 != 0)
    throw std::invalid_argument("images of " + std::to_string(o.height) + "x" + std::to_string(o.width) +
                                " (the two 2x2 poolings need sides divisible by 4)");
  auto conv = [](int64_t in, int64_t out) { return nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)); };
  body_ = register_module(
      "body", nn::Sequential(conv(o.channels, 32), nn::ReLU(), conv(32, 32), nn::ReLU(), nn::MaxPool2d(2), conv(32, 64),
                             nn::ReLU(), conv(64, 64), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten()));
  embed_ = register_module("embed", nn::Linear(64 * (o.height / 4) * (o.width / 4), o.features));
  dropout_ = register_module("dropout", nn::Dropout(o.dropout));
  head_ = register_module("head", nn::Linear(o.features, o.classes));
}

torch::Tensor ClassifierImpl::features(const torch::Tensor& x) {
  return torch::relu(embed_->forward(body_->forward(x)));
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& x) {
  return head_->forward(dropout_->forward(features(x)));
}

}  // namespace gantry::classifier
