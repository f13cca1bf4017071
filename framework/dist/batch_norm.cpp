#include "dist/batch_norm.h"

#include <torch/autograd.h>
#include <torch/nn/functional/batchnorm.h>
#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"

namespace gantry {

namespace {

// The reduction dims (all but 1) and the (1, C, 1, ...) shape of per-channel values for input x.
struct Layout {
  explicit Layout(const torch::Tensor& x) : shape(static_cast<size_t>(x.dim()), 1) {
    dims.push_back(0);
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    shape[1] = x.size(1);
  }
  std::vector<int64_t> dims, shape;
};

Communicator* comm_of(torch::autograd::AutogradContext* ctx) {
  return reinterpret_cast<Communicator*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
}

// Batch normalisation of float32 x with the statistics of the global batch, as one autograd function
// (double backward unsupported). The communicator travels in saved_data as an integer (IValue holds no
// raw pointers); it outlives every graph of a step.
//   forward:  per channel Σx and Σx² in float64 plus the row count, all-reduced (sum) in one 2C+1 buffer;
//             mean and biased variance of the global batch; running statistics updated from them.
//   backward: LibTorch's batch-norm backward with its two sums, Σdy and Σdy·(x − mean), taken over the
//             global batch (one all-reduce of 2C values); x − mean keeps it well conditioned where the
//             mean is large against the spread. Weight and bias gradients are this rank's own sums:
//             GradSync averages them over the ranks like every other parameter gradient.
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, BatchNormImpl* bn,
                               Communicator* comm) {
    const Layout l(x);
    const int64_t C = x.size(1), rows = x.numel() / C;
    torch::Tensor stats =
        torch::cat({x.sum(l.dims, /*keepdim=*/false, torch::kDouble), x.square().sum(l.dims, false, torch::kDouble),
                    torch::full({1}, static_cast<double>(rows), x.options().dtype(torch::kDouble))});
    comm->all_reduce(stats, ReduceOp::kSum);
    const torch::Tensor n = stats.narrow(0, 2 * C, 1);
    const torch::Tensor mean = stats.narrow(0, 0, C) / n;
    const torch::Tensor var = (stats.narrow(0, C, C) / n - mean.square()).clamp_min(0);
    const double m = bn->options.momentum;
    bn->running_mean.mul_(1 - m).add_(mean.to(bn->running_mean.scalar_type()), m);
    bn->running_var.mul_(1 - m).add_((var * n / (n - 1)).to(bn->running_var.scalar_type()), m);  // unbiased
    bn->num_batches_tracked += 1;
    const torch::Tensor mean32 = mean.to(x.scalar_type()), invstd = (var + bn->options.eps).rsqrt().to(x.scalar_type());
    ctx->save_for_backward({x, weight, mean32, invstd, n});
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    return (x - mean32.view(l.shape)) * (invstd * weight).view(l.shape) + bias.view(l.shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &n = saved[4];
    const torch::Tensor& dy = grads[0];
    const Layout l(x);
    const int64_t C = x.size(1);
    const torch::Tensor xmu = x - mean.view(l.shape);
    const torch::Tensor local =
        torch::cat({dy.sum(l.dims, /*keepdim=*/false, torch::kDouble), (dy * xmu).sum(l.dims, false, torch::kDouble)});
    torch::Tensor global = local.clone();
    comm_of(ctx)->all_reduce(global, ReduceOp::kSum);
    const torch::Tensor mean_dy = (global.narrow(0, 0, C) / n).to(x.scalar_type());
    const torch::Tensor mean_dy_xmu = (global.narrow(0, C, C) / n).to(x.scalar_type());
    const torch::Tensor grad_x = (dy - mean_dy.view(l.shape) - xmu * (invstd * invstd * mean_dy_xmu).view(l.shape)) *
                                 (invstd * weight).view(l.shape);
    const torch::Tensor grad_weight = local.narrow(0, C, C).to(x.scalar_type()) * invstd;
    const torch::Tensor grad_bias = local.narrow(0, 0, C).to(x.scalar_type());
    return {grad_x, grad_weight, grad_bias, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

BatchNormImpl::BatchNormImpl(const BatchNormOptions& options_) : options(options_) {
  reset();
}

void BatchNormImpl::reset() {
  if (options.features < 1) throw std::invalid_argument("BatchNorm: features must be positive");
  weight = register_parameter("weight", torch::ones({options.features}));
  bias = register_parameter("bias", torch::zeros({options.features}));
  running_mean = register_buffer("running_mean", torch::zeros({options.features}));
  running_var = register_buffer("running_var", torch::ones({options.features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(int64_t{0}, torch::kLong));
}

torch::Tensor BatchNormImpl::forward(const torch::Tensor& x) {
  if (x.dim() < 2 || x.size(1) != options.features) {
    // Named parts, no "literal" + std::string&& (GCC 12 -Wstringop-overflow false positives in C++20).
    const std::string c = std::to_string(options.features), dims = std::to_string(x.dim()),
                      got = x.dim() < 2 ? std::string("no") : std::to_string(x.size(1));
    throw std::invalid_argument("BatchNorm(" + c + "): expected (N, " + c + ", ...), got " + dims + " dims with " +
                                got + " channels");
  }
  Communicator* comm = sync_ && is_training() ? sync_->active() : nullptr;
  if (comm != nullptr) return synchronised_forward(x, *comm);
  if (is_training()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked += 1;
  }
  // LibTorch's BatchNorm module does exactly this (and checks there is more than one value per channel).
  namespace F = torch::nn::functional;
  return F::batch_norm(x, running_mean, running_var,
                       F::BatchNormFuncOptions()
                           .weight(weight)
                           .bias(bias)
                           .training(is_training())
                           .momentum(options.momentum)
                           .eps(options.eps));
}

torch::Tensor BatchNormImpl::synchronised_forward(const torch::Tensor& x, Communicator& comm) {
  if (x.numel() / options.features * comm.world_size() < 2)
    throw std::invalid_argument("BatchNorm: expected more than 1 value per channel when training");
  // Reduced-precision inputs (autocast) are normalised in float32, as LibTorch's kernels do.
  const bool low = x.scalar_type() == torch::kHalf || x.scalar_type() == torch::kBFloat16;
  const torch::Tensor y = SyncBatchNormFunction::apply(low ? x.to(torch::kFloat) : x, weight, bias, this, &comm);
  return low ? y.to(x.scalar_type()) : y;
}

int64_t attach_batchnorm_sync(torch::nn::Module& module, const std::shared_ptr<BatchNormSync>& sync,
                              const std::string& network) {
  int64_t count = 0;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    if (auto bn = std::dynamic_pointer_cast<BatchNormImpl>(item.value())) {
      bn->set_sync(sync);
      ++count;
    } else if (item.value()->name().rfind("torch::nn::BatchNorm", 0) == 0) {
      throw UsageError("dist.sync_batchnorm: network '" + network + "' normalises with LibTorch's own " +
                       item.value()->name() + " at '" + item.key() +
                       "', which cannot synchronise (the recipe must use gantry::BatchNorm)");
    }
  }
  return count;
}

}  // namespace gantry
