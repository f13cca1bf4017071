#include "train/fused_adam.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/torch_compat.h"

namespace gantry {

using torch::optim::AdamOptions;
using torch::optim::AdamParamState;

struct FusedAdam::Flat {
  bool valid = false;
  std::vector<torch::Tensor> params;    // flat order
  std::vector<const void*> impls;       // each parameter's TensorImpl, in the group's own order
  std::vector<int64_t> offsets;         // elements, flat order
  std::vector<AdamParamState*> states;  // flat order
  torch::Tensor P, M, V, Mx;            // (total,) parameters, moments (Mx: AMSGrad's max), flat order
  torch::Tensor D;                      // (total,) scratch: the denominator
  torch::Tensor W;                      // (total,) scratch: gathered gradient / gradient + weight decay
  std::vector<torch::Tensor> w_slices;  // views of W shaped like each parameter (gather targets)
  torch::Tensor G;                      // the gradients in place, when they tile one buffer (cached view)
  int64_t total = 0, step = 0;
  bool amsgrad = false;
};

FusedAdam::FusedAdam(std::vector<torch::Tensor> params, AdamOptions defaults)
    : Adam(std::move(params), std::move(defaults)) {}
FusedAdam::FusedAdam(std::vector<torch::optim::OptimizerParamGroup> param_groups, AdamOptions defaults)
    : Adam(std::move(param_groups), std::move(defaults)) {}
FusedAdam::~FusedAdam() = default;

namespace {

const char* byte_ptr(const torch::Tensor& t) { return static_cast<const char*>(t.data_ptr()); }

// Whether `t` occupies exactly [base + offset, base + offset + numel) elements, contiguously.
bool at_offset(const torch::Tensor& t, const char* base, int64_t offset, int64_t element_size) {
  return t.defined() && t.is_contiguous() && byte_ptr(t) == base + offset * element_size;
}

// The update in one pass over a CPU float32 group without AMSGrad: torch::optim::Adam's arithmetic per
// element, operation for operation in the same order (the scalars rounded to float as LibTorch's kernels
// round them), reading p, g, m, v once and writing p, m, v once. The seven buffer-wide operations of the
// general path each read and write whole buffers: about three times the memory traffic, and seven
// dispatches instead of one loop.
struct AdamScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, sqrt_bias_correction2, eps, step_size;
};
void adam_pass(float* p, const float* g, float* m, float* v, int64_t n, const AdamScalars& s) {
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float grad = s.weight_decay != 0 ? g[i] + s.weight_decay * p[i] : g[i];
      const float mi = m[i] * s.beta1 + s.one_minus_beta1 * grad;
      const float vi = v[i] * s.beta2 + s.one_minus_beta2 * grad * grad;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] + s.step_size * mi / (std::sqrt(vi) / s.sqrt_bias_correction2 + s.eps);
    }
  });
}

}  // namespace

bool FusedAdam::ready(size_t index) {
  if (flats_.size() != param_groups_.size()) flats_.resize(param_groups_.size());
  Flat& f = flats_[index];
  const auto& params = param_groups_[index].params();
  if (!f.valid || f.impls.size() != params.size() ||
      static_cast<const AdamOptions&>(param_groups_[index].options()).amsgrad() != f.amsgrad)
    return build(index);
  const char* base = byte_ptr(f.P);
  const int64_t es = static_cast<int64_t>(f.P.element_size());
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].unsafeGetTensorImpl() != f.impls[i]) return build(index);
  for (size_t i = 0; i < f.params.size(); ++i) {
    if (!f.params[i].grad().defined()) return false;
    if (!at_offset(f.params[i], base, f.offsets[i], es)) return build(index);  // moved (a checkpoint load)
  }
  return true;
}

bool FusedAdam::build(size_t index) {
  Flat& f = flats_[index];
  f = Flat{};
  const auto& group = param_groups_[index];
  const auto& options = static_cast<const AdamOptions&>(group.options());
  const auto& params = group.params();
  if (params.empty()) return false;
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined() || g.is_sparse() || p.is_sparse() || !p.is_floating_point() ||
        p.scalar_type() != params[0].scalar_type() || p.device() != params[0].device() ||
        g.scalar_type() != p.scalar_type() || g.device() != p.device())
      return false;
  }
  // Same Adam step count everywhere (or no state yet): a single count drives the bias corrections.
  std::vector<AdamParamState*> states(params.size(), nullptr);
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = state_.find(compat::optim_state_key(params[i]));
    if (it != state_.end()) states[i] = static_cast<AdamParamState*>(it->second.get());
    if ((states[i] == nullptr) != (states[0] == nullptr)) return false;
    if (states[i] && (states[i]->step() != states[0]->step() || !states[i]->exp_avg().defined() ||
                      (options.amsgrad() && !states[i]->max_exp_avg_sq().defined())))
      return false;
  }

  // Flat order: the gradients' own order when they tile one contiguous range (then the step reads them
  // in place); the group's order otherwise.
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return byte_ptr(params[a].grad()) < byte_ptr(params[b].grad()); });
  {
    const int64_t es = static_cast<int64_t>(params[0].element_size());
    const char* base = byte_ptr(params[order[0]].grad());
    int64_t offset = 0;
    bool tiles = true;
    for (size_t i : order) {
      tiles = tiles && at_offset(params[i].grad(), base, offset, es);
      offset += params[i].numel();
    }
    if (!tiles) std::iota(order.begin(), order.end(), size_t{0});
  }

  torch::NoGradGuard no_grad;
  const auto opts = params[0].options().requires_grad(false);
  for (size_t i : order) {
    f.params.push_back(params[i]);
    f.offsets.push_back(f.total);
    f.total += params[i].numel();
  }
  f.P = torch::empty({f.total}, opts);
  f.M = torch::zeros({f.total}, opts);
  f.V = torch::zeros({f.total}, opts);
  f.amsgrad = options.amsgrad();
  if (f.amsgrad) f.Mx = torch::zeros({f.total}, opts);
  f.D = torch::empty({f.total}, opts);
  f.W = torch::empty({f.total}, opts);
  f.step = states[0] ? states[0]->step() : 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    torch::Tensor& p = f.params[k];
    auto slice = [&](const torch::Tensor& flat) { return flat.narrow(0, f.offsets[k], p.numel()).view(p.sizes()); };
    slice(f.P).copy_(p);
    p.set_data(slice(f.P));  // the parameter now lives in P (its autograd identity is unchanged)
    AdamParamState* st = states[i];
    if (!st) {
      auto fresh = std::make_unique<AdamParamState>();
      st = fresh.get();
      state_[compat::optim_state_key(p)] = std::move(fresh);
    } else {
      slice(f.M).copy_(st->exp_avg());
      slice(f.V).copy_(st->exp_avg_sq());
      if (f.amsgrad) slice(f.Mx).copy_(st->max_exp_avg_sq());
    }
    st->step(f.step);
    st->exp_avg(slice(f.M));
    st->exp_avg_sq(slice(f.V));
    if (f.amsgrad) st->max_exp_avg_sq(slice(f.Mx));
    f.states.push_back(st);
    f.w_slices.push_back(slice(f.W));
  }
  for (const auto& p : params) f.impls.push_back(p.unsafeGetTensorImpl());
  f.valid = true;
  ++stats_.layouts;
  return true;
}

const torch::Tensor& FusedAdam::flat_grad(Flat& f) {
  const int64_t es = static_cast<int64_t>(f.P.element_size());
  const torch::Tensor& first = f.params[0].grad();
  const char* base = byte_ptr(first);
  bool tiles = first.is_contiguous() &&
               static_cast<int64_t>(first.storage().nbytes()) >= (first.storage_offset() + f.total) * es;
  for (size_t i = 1; tiles && i < f.params.size(); ++i) tiles = at_offset(f.params[i].grad(), base, f.offsets[i], es);
  if (tiles) {
    if (!f.G.defined() || byte_ptr(f.G) != base || f.G.storage().unsafeGetStorageImpl() != first.storage().unsafeGetStorageImpl()) {
      f.G = torch::empty({0}, first.options());
      f.G.set_(first.storage(), first.storage_offset(), {f.total}, {1});
    }
    ++stats_.in_place_group_steps;
    return f.G;
  }
  for (size_t i = 0; i < f.params.size(); ++i) f.w_slices[i].copy_(f.params[i].grad());
  ++stats_.gathered_group_steps;
  return f.W;
}

// torch::optim::Adam's arithmetic, operation for operation, on the whole group at once.
void FusedAdam::fused_step(size_t index) {
  Flat& f = flats_[index];
  const auto& options = static_cast<const AdamOptions&>(param_groups_[index].options());
  const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
  f.step += 1;
  for (AdamParamState* st : f.states) st->step(f.step);
  const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(f.step));
  const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(f.step));

  torch::Tensor grad = flat_grad(f);
  if (!f.amsgrad && f.P.is_cpu() && f.P.scalar_type() == torch::kFloat32) {
    const AdamScalars s{static_cast<float>(beta1),         static_cast<float>(1 - beta1),
                        static_cast<float>(beta2),         static_cast<float>(1 - beta2),
                        static_cast<float>(options.weight_decay()), static_cast<float>(std::sqrt(bias_correction2)),
                        static_cast<float>(options.eps()), static_cast<float>(-options.lr() / bias_correction1)};
    adam_pass(f.P.data_ptr<float>(), grad.data_ptr<float>(), f.M.data_ptr<float>(), f.V.data_ptr<float>(), f.total, s);
    return;
  }
  if (options.weight_decay() != 0) {
    at::add_out(f.W, grad, f.P, options.weight_decay());  // grad.add(p, weight_decay); W may be grad itself
    grad = f.W;
  }
  f.M.mul_(beta1).add_(grad, 1 - beta1);
  f.V.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  if (f.amsgrad) {
    at::max_out(f.Mx, f.V, f.Mx);
    at::sqrt_out(f.D, f.Mx);
  } else {
    at::sqrt_out(f.D, f.V);
  }
  f.D.div_(std::sqrt(bias_correction2)).add_(options.eps());
  f.P.addcdiv_(f.M, f.D, -options.lr() / bias_correction1);
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  bool fusable = true;
  for (size_t i = 0; i < param_groups_.size(); ++i) fusable = ready(i) && fusable;
  if (!fusable) {
    // Exact per-parameter Adam on the same state (views into the flat buffers where they exist);
    // step counts may now differ, so every layout is rebuilt (and re-checked) on the next step.
    Adam::step();
    for (auto& f : flats_) f.valid = false;
    ++stats_.fallback_steps;
    return loss;
  }
  for (size_t i = 0; i < param_groups_.size(); ++i) fused_step(i);
  return loss;
}

void FusedAdam::save(torch::serialize::OutputArchive& archive) const {
  // torch::optim::Adam's archive: a plain Adam over the same groups holding contiguous copies of the
  // state writes it (views would otherwise write their whole flat buffers).
  torch::optim::Adam plain(param_groups_, static_cast<const AdamOptions&>(*defaults_));
  for (const auto& group : param_groups_)  // in parameter order, as Adam's own step inserts them
    for (const auto& p : group.params()) {
      const auto key = compat::optim_state_key(p);
      auto it = state_.find(key);
      if (it == state_.end()) continue;
      const auto& st = static_cast<const AdamParamState&>(*it->second);
      auto copy = std::make_unique<AdamParamState>();
      copy->step(st.step());
      if (st.exp_avg().defined()) copy->exp_avg(st.exp_avg().clone());
      if (st.exp_avg_sq().defined()) copy->exp_avg_sq(st.exp_avg_sq().clone());
      if (st.max_exp_avg_sq().defined()) copy->max_exp_avg_sq(st.max_exp_avg_sq().clone());
      plain.state()[key] = std::move(copy);
    }
  plain.save(archive);
}

void FusedAdam::load(torch::serialize::InputArchive& archive) {
  Adam::load(archive);
  for (auto& f : flats_) f.valid = false;  // the state was replaced: the next step copies it into new flats
}

}  // namespace gantry
