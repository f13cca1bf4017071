// Mixed precision (train.precision): autocast around a recipe's forward passes, and fp16's dynamic loss
// scaling, one LossScaler per GradSync group. StepContext uses both; recipes see neither. Master weights,
// gradients and optimizer state stay float32; a low-precision loss root is cast to float32 before scaling.
//
//   AutocastGuard autocast(Precision::kBf16, torch::kCPU);  // forward ops in bf16 until it ends
//   LossScaler s;  auto root = s.scale(loss);  root.backward();  // (reduce the gradients)
//   if (s.unscale_and_update(params)) optimizer.step();          // false: inf/NaN, step skipped, scale halved
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gantry {

enum class Precision { kFp32, kBf16, kFp16 };

Precision parse_precision(const std::string& name);  // fp32 | bf16 | fp16 (the schema restricts the choices)
std::string precision_name(Precision p);
// UsageError naming train.precision when autocast on `device` cannot run `p` with this LibTorch.
void check_precision_supported(Precision p, c10::DeviceType device);

// Autocast on one device type for the guard's lifetime (nothing for fp32); end() stops it early (the
// backward must not run under autocast). On the outermost exit the cache of down-cast weights is cleared,
// so the next forward after an optimizer step casts the updated weights.
class AutocastGuard {
 public:
  AutocastGuard(Precision p, c10::DeviceType device);
  ~AutocastGuard() { end(); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;
  void end();

 private:
  c10::DeviceType device_;
  bool active_ = false, was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Float;
};

// Every 4-D parameter and buffer of `m` (convolution weights) in `format` (e.g. ChannelsLast), values
// unchanged; optimizer state created afterwards follows the parameters' layout.
void to_memory_format(torch::nn::Module& m, c10::MemoryFormat format);

// Dynamic loss scaling as torch.cuda.amp.GradScaler does it: multiply the loss by `scale` before
// backward, divide the gradients by it after the reduction; on inf/NaN skip the step and halve the scale,
// after `growth_interval` finite steps in a row double it. The scale is a power of two, so scaling and
// unscaling are exact.
struct LossScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0, backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // finite steps in a row before the scale grows
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions options = {});

  // The backward root: loss in float32, times the scale (no host sync).
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Divides every defined gradient of `params` by the scale and updates the scale; true when all were
  // finite (step), false when one was not (skip: the caller leaves the parameters alone). Called after the
  // all-reduce, so an overflow on any rank is seen by every rank and all decide alike without a
  // collective. One host read (the inf/NaN flag), as GradScaler's step() does.
  bool unscale_and_update(const std::vector<torch::Tensor>& params);

  double scale_value() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }  // finite steps since the last change
  int64_t skipped() const { return skipped_; }                // steps skipped, over the whole run

  // (3,) float64 [scale, growth tracker, skipped steps] — a checkpoint's scaler-<group>.pt.
  torch::Tensor state() const;
  void restore(const torch::Tensor& state);  // std::invalid_argument when it is not such a tensor

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0, skipped_ = 0;
};

}  // namespace gantry
