// BatchNorm: batch normalisation over dim 1 of an (N, C, ...) input whose training statistics can span
// every rank (dist.sync_batchnorm). Recipes use it wherever they batch-normalise, for 2-D (N, C) and
// 4-D (N, C, H, W) inputs alike. Its parameters and buffers are LibTorch's BatchNorm1d/2d's under the
// same names (weight, bias, running_mean, running_var, num_batches_tracked), so checkpoints are the same.
//
// Without a BatchNormSync, or while it is not enabled, it is exactly torch::nn::BatchNorm: statistics of
// this rank's batch. While enabled (the trainer enables it for the length of each train step when
// dist.sync_batchnorm is on), a training forward pass normalises with the mean and biased variance of
// the global batch:
//   forward   each rank's per-channel Σx and Σx² (float64) and its row count: one all-reduce (sum) of
//             2C+1 values per layer and pass;
//   backward  the gradient of those sums, all-reduced the same way (what Σdy and Σdy·x̂ are in the
//             usual formula), so every rank's input gradient is that of the global loss; GradSync's
//             averaging of the parameter gradients then gives W ranks what one rank with the whole batch
//             gets (tests/models/dcgan_sync_bn_mpi_test.cpp: to 1e-5).
// Running statistics are updated from the global values: identical on every rank. Two small
// collectives per layer and pass, O(log W) messages each and nothing gathered into one rank; they go
// through the job's one communicator in issue order with GradSync's (the same order on every rank).
// Sampling (rank 0 alone) and evaluation (each rank's own held-out batches) run with it disabled.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace gantry {

// The synchronisation every BatchNorm of a run shares: a communicator, and whether the statistics span
// the ranks now.
class BatchNormSync {
 public:
  explicit BatchNormSync(Communicator& comm) : comm_(comm) {}
  Communicator* active() const { return enabled_ ? &comm_ : nullptr; }

  // Statistics span the ranks while a Scope lives; a null `sync` makes it a no-op.
  class Scope {
   public:
    explicit Scope(BatchNormSync* sync) : sync_(sync) {
      if (sync_) sync_->enabled_ = true;
    }
    ~Scope() {
      if (sync_) sync_->enabled_ = false;
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    BatchNormSync* sync_;
  };

 private:
  Communicator& comm_;
  bool enabled_ = false;
};

struct BatchNormOptions {
  BatchNormOptions(int64_t features) : features(features) {}  // NOLINT: BatchNorm(64) reads as LibTorch's
  int64_t features;
  double eps = 1e-5;
  double momentum = 0.1;
};

class BatchNormImpl : public torch::nn::Cloneable<BatchNormImpl> {
 public:
  explicit BatchNormImpl(const BatchNormOptions& options);
  void reset() override;
  // (N, C, ...) → the same shape. std::invalid_argument for another channel count or fewer than 2 dims.
  torch::Tensor forward(const torch::Tensor& x);
  void set_sync(std::shared_ptr<BatchNormSync> sync) { sync_ = std::move(sync); }

  BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor synchronised_forward(const torch::Tensor& x, Communicator& comm);
  std::shared_ptr<BatchNormSync> sync_;
};
TORCH_MODULE(BatchNorm);

// Gives every gantry BatchNorm inside `module` the synchronisation `sync` (null: none) and returns how
// many there are. UsageError naming `network` and the layer when `module` holds one of LibTorch's own
// BatchNorm layers, which cannot synchronise (dist.sync_batchnorm would otherwise be silently ignored).
int64_t attach_batchnorm_sync(torch::nn::Module& module, const std::shared_ptr<BatchNormSync>& sync,
                              const std::string& network);

}  // namespace gantry
