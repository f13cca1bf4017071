#include "train/step_context.h"

#include <torch/nn/utils/clip_grad.h>

#include "core/errors.h"

namespace gantry {

StepContext::StepContext(GradSync& sync, StepOptions options) : sync_(sync), options_(options) {
  if (options_.micro_batches < 1) throw UsageError("train.micro_batches: must be at least 1");
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
  // Each micro-batch's loss is a mean over its rows: 1/m of it, summed over micro-batches and averaged
  // over ranks by the reduction (average_loss), is the mean over the global batch.
  const Scale scale = [this, m](const torch::Tensor& loss) {
    return sync_.average_loss(m == 1 ? loss : loss / static_cast<double>(m));
  };
  Losses sums;
  for (int64_t k = 0; k < m; ++k) {
    sync_.set_accumulating(k + 1 < m);
    sync_.arm(group);
    Losses out = backward(k, scale);
    sync_.finish(group);
    if (k == 0) {
      sums = std::move(out);
      for (auto& [name, value] : sums) value = value.detach();
    } else {
      for (size_t i = 0; i < sums.size(); ++i) sums[i].second = sums[i].second + out[i].second.detach();
    }
  }
  if (m > 1)
    for (auto& [name, value] : sums) value = value / static_cast<double>(m);
  if (options_.clip_grad_norm > 0)
    for (auto* opt : optimizers) {
      std::vector<torch::Tensor> params;
      for (auto& g : opt->param_groups())
        for (auto& p : g.params()) params.push_back(p);
      torch::nn::utils::clip_grad_norm_(params, options_.clip_grad_norm);
    }
  for (auto* opt : optimizers) opt->step();
  return sums;
}

}  // namespace gantry
