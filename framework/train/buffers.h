// Buffers (BatchNorm running statistics) of modules copied aside and put back when the snapshot goes
// out of scope: for work that must leave no trace in them — sampling a generator in training mode,
// evaluating or checkpointing with statistics averaged across ranks.
//   { BufferSnapshot keep({g.ptr()}); images = g->forward(z); }  // running statistics as before
#pragma once

#include <torch/nn/module.h>
#include <torch/utils.h>

#include <memory>
#include <utility>
#include <vector>

namespace gantry {

class BufferSnapshot {
 public:
  explicit BufferSnapshot(const std::vector<std::shared_ptr<torch::nn::Module>>& modules) {
    for (const auto& m : modules)
      for (auto& b : m->buffers()) saved_.emplace_back(b, b.clone());
  }
  ~BufferSnapshot() {
    torch::NoGradGuard no_grad;
    for (auto& [live, copy] : saved_) live.copy_(copy);
  }
  BufferSnapshot(const BufferSnapshot&) = delete;
  BufferSnapshot& operator=(const BufferSnapshot&) = delete;

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // (the buffer itself, its copy)
};

}  // namespace gantry
