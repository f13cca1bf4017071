// StepContext: what every recipe's update repeats, in one call — zero the group's gradients (GradSync::zero_grad), run the
// micro-batches (train.micro_batches: all but the last accumulate locally), backpropagate each
// micro-batch's loss scaled so the reduced gradients arrive averaged over micro-batches and ranks, reduce
// the GradSync group once, clip each optimizer's parameters after the reduction (train.clip_grad_norm),
// step the optimizers. A recipe writes only its losses:
//
//   Losses d = ctx.update("D", {opt_d}, [&](int64_t k) {
//     auto x = ctx.micro(real, k);           // this micro-batch's rows
//     return Losses{{"loss_d", loss_of(x)}}; // the first entry is minimised; the rest are reported
//   });
//
// Recipes whose backward is not "loss.backward()" (f-GAN's single step, with a gradient reversal and two
// roots) use update_with_backward and call backward on scale(root) themselves.
#pragma once

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dist/grad_sync.h"

namespace gantry {

// Named scalars (0-dim tensors, left on the training device: no host sync inside a step), in display
// order, this rank's values. The trainer sums them and fetches them at log steps only.
using Losses = std::vector<std::pair<std::string, torch::Tensor>>;

struct StepOptions {
  int64_t micro_batches = 1;  // train.micro_batches
  double clip_grad_norm = 0;  // train.clip_grad_norm (0: off)
};

class StepContext {
 public:
  StepContext(GradSync& sync, StepOptions options);

  int64_t micro_batches() const { return options_.micro_batches; }
  // Micro-batch k's rows of a tensor that holds this rank's batch along dim 0 (the whole tensor when
  // there is one micro-batch). UsageError when the rows do not divide into micro-batches.
  torch::Tensor micro(const torch::Tensor& rank_batch, int64_t k) const;

  // One update of GradSync group `group` and `optimizers` (their parameters are the group's): for each
  // micro-batch k, `losses(k)` builds the forward pass and returns named scalars, the first of which is
  // minimised. Returns each scalar's mean over the micro-batches, detached.
  Losses update(const std::string& group, const std::vector<torch::optim::Optimizer*>& optimizers,
                const std::function<Losses(int64_t k)>& losses);

  // The same for an update that runs its own backward: `backward(k, scale)` calls .backward() (or
  // torch::autograd::backward) on scale(root) for every root of micro-batch k, and returns named scalars
  // to report.
  using Scale = std::function<torch::Tensor(const torch::Tensor&)>;
  Losses update_with_backward(const std::string& group, const std::vector<torch::optim::Optimizer*>& optimizers,
                              const std::function<Losses(int64_t k, const Scale& scale)>& backward);

 private:
  GradSync& sync_;
  StepOptions options_;
};

}  // namespace gantry
