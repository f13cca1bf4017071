// Small networks and helpers shared by the dist tests (world-of-one and MPI).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace gantry::testing {

// Linear → [BatchNorm] → ReLU → Linear → [BatchNorm] → ReLU → Linear. A Linear feeding BatchNorm has
// no bias: that bias's gradient is exactly zero, and Adam would turn its rounding noise into steps.
struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t in, int64_t hidden, int64_t out, bool batch_norm = true) : bn(batch_norm) {
    fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(in, hidden).bias(!bn)));
    if (bn) bn1 = register_module("bn1", torch::nn::BatchNorm1d(hidden));
    fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(hidden, hidden).bias(!bn)));
    if (bn) bn2 = register_module("bn2", torch::nn::BatchNorm1d(hidden));
    fc3 = register_module("fc3", torch::nn::Linear(hidden, out));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = fc1(x);
    if (bn) x = bn1(x);
    x = fc2(torch::relu(x));
    if (bn) x = bn2(x);
    return fc3(torch::relu(x));
  }
  bool bn;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  torch::nn::BatchNorm1d bn1{nullptr}, bn2{nullptr};
};
TORCH_MODULE(Mlp);

// (N, 1, 8, 8) → (N, 3).
struct ConvNetImpl : torch::nn::Module {
  ConvNetImpl() {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).stride(2).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3).stride(2).padding(1)));
    fc = register_module("fc", torch::nn::Linear(8 * 2 * 2, 3));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(c2(torch::relu(c1(x))));
    return fc(x.flatten(1));
  }
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ConvNet);

// Two heads; `use_b` decides whether head b takes part (a parameter without gradient in a step).
struct BranchyImpl : torch::nn::Module {
  BranchyImpl() {
    trunk = register_module("trunk", torch::nn::Linear(6, 6));
    a = register_module("a", torch::nn::Linear(6, 2));
    b = register_module("b", torch::nn::Linear(6, 2));
    never = register_module("never", torch::nn::Linear(6, 2));
  }
  torch::Tensor forward(torch::Tensor x, bool use_b) {
    x = torch::relu(trunk(x));
    return use_b ? a(x) + b(x) : a(x);
  }
  torch::nn::Linear trunk{nullptr}, a{nullptr}, b{nullptr}, never{nullptr};
};
TORCH_MODULE(Branchy);

// A deep stack of equal Linear layers: with small buckets, the first bucket is full long before
// backward reaches the first layer.
struct TowerImpl : torch::nn::Module {
  TowerImpl(int64_t width, int depth) {
    for (int i = 0; i < depth; ++i)
      layers.push_back(register_module(std::string("l").append(std::to_string(i)), torch::nn::Linear(width, width)));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& l : layers) x = torch::tanh(l(x));
    return x;
  }
  std::vector<torch::nn::Linear> layers;
};
TORCH_MODULE(Tower);

template <typename M>
std::shared_ptr<torch::nn::Module> as_module(const M& holder) {
  return holder.ptr();
}

// Largest |a - b| over two parameter lists.
inline double max_param_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  return worst;
}

inline std::vector<torch::Tensor> grads_of(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.grad().defined() ? p.grad().detach().clone() : torch::zeros_like(p));
  return out;
}

}  // namespace gantry::testing
