// StepContext: what every recipe's update repeats, in one call — zero the group's gradients (GradSync::zero_grad), run
// the micro-batches (train.micro_batches: all but the last accumulate locally), backpropagate each micro-batch's loss
// scaled so the reduced gradients arrive averaged over micro-batches and ranks, reduce the GradSync group once, clip
// each optimizer's parameters after the reduction (train.clip_grad_norm), step the optimizers. A recipe writes only its
// losses:
//
//   Losses d = ctx.update("D", {opt_d}, [&](int64_t k) {
//     auto x = ctx.micro(real, k);           // this micro-batch's rows
//     return Losses{{"loss_d", loss_of(x)}}; // the first entry is minimised; the rest are reported
//   });
//
// Recipes whose backward is not "loss.backward()" (f-GAN's single step, with a gradient reversal and two
// roots) use update_with_backward and call backward on scale(root) themselves.
//
// train.precision (precision.h): each micro-batch's callback runs under autocast (bf16/fp16) until its
// first scale() call, which ends the forward: the backward and anything after it run in float32. fp16
// scales the roots by the group's LossScaler and skips the optimizer step when a reduced gradient is not
// finite. Sampling and evaluation are not updates and run in float32.
#pragma once

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dist/grad_sync.h"
#include "train/precision.h"

namespace gantry {

// Named scalars (0-dim tensors, left on the training device: no host sync inside a step), in display
// order, this rank's values. The trainer sums them and fetches them at log steps only.
using Losses = std::vector<std::pair<std::string, torch::Tensor>>;

struct StepOptions {
  int64_t micro_batches = 1;               // train.micro_batches
  double clip_grad_norm = 0;               // train.clip_grad_norm (0: off)
  Precision precision = Precision::kFp32;  // train.precision
};

// Scales the gradients of `params` so their global L2 norm is at most `max_norm`: the same arithmetic as
// torch::nn::utils::clip_grad_norm_ (norm 2, coefficient clamped to 1), which however returns the norm
// as a double and so waits for the device every step; this one leaves everything on the device.
void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

class StepContext {
 public:
  // `device`: where the recipe's networks run (the autocast device type); UsageError for a precision it
  // cannot run.
  StepContext(GradSync& sync, StepOptions options, c10::DeviceType device = c10::DeviceType::CPU);

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

  Precision precision() const { return options_.precision; }
  // fp16: the loss scaler of each group that has updated or been restored (empty for fp32 and bf16).
  const std::map<std::string, LossScaler>& scalers() const { return scalers_; }
  LossScaler& scaler(const std::string& group) { return scalers_[group]; }

 private:
  GradSync& sync_;
  StepOptions options_;
  c10::DeviceType device_;
  std::map<std::string, LossScaler> scalers_;
};

}  // namespace gantry
