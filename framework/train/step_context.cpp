#include "train/step_context.h"

#include <torch/torch.h>

#include "core/errors.h"

namespace gantry {

void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  for (const auto& g : grads) norms.push_back(g.norm(2));
  const torch::Tensor total = norms.size() == 1 ? norms.front() : torch::stack(norms).norm(2);
  const torch::Tensor coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  torch::NoGradGuard no_grad;
  for (auto& g : grads) g.mul_(coef);
}

namespace {

std::vector<torch::Tensor> parameters_of(const std::vector<torch::optim::Optimizer*>& optimizers) {
  std::vector<torch::Tensor> params;
  for (auto* opt : optimizers)
    for (auto& g : opt->param_groups())
      for (auto& p : g.params()) params.push_back(p);
  return params;
}

// A reported value: detached, at least float32 (an autocast forward may leave it in bf16/fp16).
torch::Tensor reported(const torch::Tensor& value) {
  torch::Tensor v = value.detach();
  return v.is_floating_point() && v.element_size() < 4 ? v.to(torch::kFloat32) : v;
}

}  // namespace

StepContext::StepContext(GradSync& sync, StepOptions options, c10::DeviceType device)
    : sync_(sync), options_(options), device_(device) {
  if (options_.micro_batches < 1) throw UsageError("train.micro_batches: must be at least 1");
  check_precision_supported(options_.precision, device_);
}

torch::Tensor StepContext::micro(const torch::Tensor& rank_batch, int64_t k) const {
  const int64_t m = options_.micro_batches;
  if (m == 1) return rank_batch;
  const int64_t rows = rank_batch.size(0);
  if (rows % m != 0)
    throw UsageError("train.micro_batches: " + std::to_string(m) + " does not divide the per-rank batch " +
                     std::to_string(rows));
  return rank_batch.narrow(0, k * (rows / m), rows / m);
}

Losses StepContext::update(const std::string& group, const std::vector<torch::optim::Optimizer*>& optimizers,
                           const std::function<Losses(int64_t k)>& losses) {
  return update_with_backward(group, optimizers, [&](int64_t k, const Scale& scale) {
    Losses out = losses(k);
    scale(out.front().second).backward();
    return out;
  });
}

Losses StepContext::update_with_backward(const std::string& group,
                                         const std::vector<torch::optim::Optimizer*>& optimizers,
                                         const std::function<Losses(int64_t k, const Scale& scale)>& backward) {
  const int64_t m = options_.micro_batches;
  sync_.zero_grad(group);  // the optimizers' parameters are the group's: one fill for all of them
  LossScaler* scaler = options_.precision == Precision::kFp16 ? &scalers_[group] : nullptr;
  // Each micro-batch's loss is a mean over its rows: 1/m of it, summed over micro-batches and averaged
  // over ranks by the reduction (average_loss), is the mean over the global batch. The first scale() of
  // a micro-batch ends its forward's autocast.
  AutocastGuard* forward = nullptr;
  const Scale scale = [this, m, scaler, &forward](const torch::Tensor& loss) {
    if (forward) forward->end();
    torch::Tensor root = sync_.average_loss(m == 1 ? loss : loss / static_cast<double>(m));
    return scaler ? scaler->scale(root) : root;
  };
  Losses sums;
  for (int64_t k = 0; k < m; ++k) {
    sync_.set_accumulating(k + 1 < m);
    sync_.arm(group);
    Losses out;
    {
      AutocastGuard autocast(options_.precision, device_);
      forward = &autocast;
      out = backward(k, scale);
      forward = nullptr;
    }
    sync_.finish(group);
    if (k == 0) {
      sums = std::move(out);
      for (auto& [name, value] : sums) value = reported(value);
    } else {
      for (size_t i = 0; i < sums.size(); ++i) sums[i].second = sums[i].second + reported(out[i].second);
    }
  }
  if (m > 1)
    for (auto& [name, value] : sums) value = value / static_cast<double>(m);
  // The gradients are reduced: an overflow on any rank is inf/NaN on every rank, which all skip alike.
  if (scaler && !scaler->unscale_and_update(parameters_of(optimizers))) return sums;
  if (options_.clip_grad_norm > 0)
    for (auto* opt : optimizers) clip_grad_norm(parameters_of({opt}), options_.clip_grad_norm);
  for (auto* opt : optimizers) opt->step();
  return sums;
}

}  // namespace gantry
