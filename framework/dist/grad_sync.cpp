#include "dist/grad_sync.h"

#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <stdexcept>
#include <unordered_set>

#include "core/errors.h"
#include "core/torch_compat.h"
#include "dist/module_state.h"

namespace gantry {

namespace {

using Clock = SyncTimeline::Clock;

// Runs `fn` after the parameter's AccumulateGrad node, i.e. once .grad holds the accumulated gradient.
// FunctionPostHook's operator()(outputs, inputs) has the same signature in LibTorch 1.13 and 2.x; 2.x's
// extra virtuals (compiled_args, ...) have defaults, so only operator() is overridden.
class ReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  explicit ReadyHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

std::vector<int64_t> row_major_strides(torch::IntArrayRef sizes) {
  std::vector<int64_t> strides(sizes.size(), 1);
  for (int64_t i = static_cast<int64_t>(sizes.size()) - 2; i >= 0; --i)
    strides[static_cast<size_t>(i)] =
        strides[static_cast<size_t>(i) + 1] * std::max<int64_t>(1, sizes[static_cast<size_t>(i) + 1]);
  return strides;
}

}  // namespace

struct GradSync::Group {
  struct Param {
    std::string name;
    torch::Tensor tensor;  // the parameter itself
    torch::Tensor view;    // its gradient's home: a slice of its bucket's buffer (not an autograd view)
    size_t bucket = 0;
    compat::NodePtr accumulator;  // kept alive: the parameter holds it only weakly
    uintptr_t hook_key = 0;
    bool ready = false;  // gradient seen in this pass

    // Makes .grad the bucket view: copies a gradient that lives elsewhere (an optimizer set it to None
    // and backward made a new one, or the user replaced it); zero-fills when there is none.
    void adopt_grad() {
      torch::Tensor& grad = tensor.mutable_grad();
      if (grad.defined() && grad.is_same(view)) return;
      torch::NoGradGuard no_grad;
      if (grad.defined())
        view.copy_(grad);
      else
        view.zero_();
      grad = view;
    }

    // Pre-divides by the world size, so the bucket's collective is a plain sum: done where the
    // gradient was just written (cache-hot, on the backward thread) instead of one more pass over the
    // bucket after the reduction.
    void scale_for_average(int world_size) {
      if (world_size == 1) return;
      torch::NoGradGuard no_grad;
      view.mul_(1.0 / world_size);
    }
  };
  struct Bucket {
    torch::Tensor buffer;  // (numel,) flat, one dtype and device
    std::vector<size_t> params;
    int64_t bytes = 0;
    size_t pending = 0;  // parameters not yet ready in this pass
    bool ready = false;
    std::shared_ptr<Work> work;
  };

  std::string name;
  std::vector<Param> params;  // reverse registration order = bucket order
  std::vector<Bucket> buckets;
  std::vector<torch::Tensor> arenas;  // the buckets' storage: one flat buffer per dtype/device run
  size_t next_launch = 0;
  bool end_callback_queued = false;
  bool prescaled = false;          // this pass's loss went through average_loss(): gradients arrive averaged
  int accumulated_prescaled = -1;  // while accumulating: whether the earlier passes were (-1: none yet)
  SyncTimeline timeline;
};

GradSync::GradSync(Communicator& comm, GradSyncOptions options) : comm_(comm), options_(options) {
  if (options_.bucket_bytes <= 0 || options_.first_bucket_bytes <= 0)
    throw UsageError(at("dist.bucket_mb", "bucket sizes must be positive"));
}

GradSync::~GradSync() {
  for (auto& g : groups_) {
    for (auto& b : g->buckets) {
      try {
        if (b.work) b.work->wait();
      } catch (const std::exception&) {
        // The error was (or will be) reported by whoever called finish(); the destructor only drains.
      }
    }
    for (auto& p : g->params) p.accumulator->del_post_hook(p.hook_key);
  }
}

GradSync::Group& GradSync::find(const std::string& name) const {
  for (const auto& g : groups_)
    if (g->name == name) return *g;
  throw std::invalid_argument("GradSync: no group '" + name + "' (add_group it first)");
}

void GradSync::add_group(const std::string& name, const std::vector<std::shared_ptr<torch::nn::Module>>& modules) {
  for (const auto& g : groups_)
    if (g->name == name) throw std::invalid_argument("GradSync: group '" + name + "' registered twice");
  auto group = std::make_unique<Group>();
  group->name = name;

  // Parameters in registration order, deduplicated (a module may appear through two parents).
  std::vector<dist_detail::TensorSpec> specs;
  std::unordered_set<const void*> seen;
  for (const auto& m : modules) {
    if (!m) throw std::invalid_argument("GradSync: group '" + name + "' has a null module");
    for (const auto& item : m->named_parameters(/*recurse=*/true)) {
      const torch::Tensor& t = item.value();
      if (!t.requires_grad() || !seen.insert(t.unsafeGetTensorImpl()).second) continue;
      specs.push_back({modules.size() > 1 ? m->name() + "." + item.key() : item.key(), t});
    }
  }
  dist_detail::verify_same_specs(comm_, specs, "GradSync group '" + name + "'");
  std::reverse(specs.begin(), specs.end());  // the order backward produces gradients, roughly

  // Buckets: fill up to the cap (first_bucket_bytes for the first), one dtype and device per bucket.
  for (auto& s : specs) {
    const int64_t bytes = s.tensor.numel() * static_cast<int64_t>(s.tensor.element_size());
    Group::Bucket* b = group->buckets.empty() ? nullptr : &group->buckets.back();
    if (b) {
      const Group::Param& first = group->params[b->params.front()];
      const int64_t cap = group->buckets.size() == 1 ? options_.first_bucket_bytes : options_.bucket_bytes;
      if (first.tensor.scalar_type() != s.tensor.scalar_type() || first.tensor.device() != s.tensor.device() ||
          b->bytes + bytes > cap)
        b = nullptr;
    }
    if (!b) b = &group->buckets.emplace_back();
    Group::Param p;
    p.name = s.name;
    p.tensor = s.tensor;
    p.bucket = group->buckets.size() - 1;
    b->params.push_back(group->params.size());
    b->bytes += bytes;
    group->params.push_back(std::move(p));
  }

  // One flat buffer per run of buckets of one dtype and device (normally the whole group), each bucket
  // a contiguous slice of it, each parameter's gradient home a slice of its bucket: the group's
  // gradients tile one range, which a fused optimizer step (FusedAdam) reads in place and zero_grad()
  // clears in one fill. The slices are built with set_ (sharing storage) rather than narrow(), so they
  // are not autograd views and an optimizer may detach_()/zero_() them like any gradient.
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < group->buckets.size();) {
    const torch::Tensor& first = group->params[group->buckets[k].params.front()].tensor;
    size_t end = k;
    int64_t numel = 0;
    for (; end < group->buckets.size(); ++end) {
      const torch::Tensor& t = group->params[group->buckets[end].params.front()].tensor;
      if (t.scalar_type() != first.scalar_type() || t.device() != first.device()) break;
      for (size_t i : group->buckets[end].params) numel += group->params[i].tensor.numel();
    }
    torch::Tensor arena = torch::zeros({numel}, first.options().requires_grad(false));
    group->arenas.push_back(arena);
    int64_t offset = 0;
    for (; k < end; ++k) {
      Group::Bucket& b = group->buckets[k];
      const int64_t start = offset;
      for (size_t i : b.params) {
        Group::Param& p = group->params[i];
        p.view = torch::empty({0}, arena.options());
        p.view.set_(arena.storage(), arena.storage_offset() + offset, p.tensor.sizes(),
                    row_major_strides(p.tensor.sizes()));
        offset += p.tensor.numel();
      }
      b.buffer = torch::empty({0}, arena.options());
      b.buffer.set_(arena.storage(), arena.storage_offset() + start, {offset - start}, {1});
    }
  }

  // Hooks on every parameter's gradient accumulator.
  Group* g = group.get();
  for (size_t i = 0; i < g->params.size(); ++i) {
    Group::Param& p = g->params[i];
    p.accumulator = torch::autograd::impl::grad_accumulator(p.tensor);
    if (!p.accumulator)
      throw std::invalid_argument("GradSync: group '" + name + "': parameter '" + p.name + "' is not a leaf");
    p.hook_key = p.accumulator->add_post_hook(std::make_unique<ReadyHook>([this, g, i] { on_grad_ready(*g, i); }));
  }
  g->timeline.bucket_launch.resize(g->buckets.size());
  groups_.push_back(std::move(group));
}

void GradSync::zero_grad(const std::string& name) {
  Group& g = find(name);
  std::lock_guard<std::mutex> lock(mutex_);
  if (armed_) throw std::logic_error("GradSync: zero_grad('" + name + "') while '" + armed_->name + "' is armed");
  torch::NoGradGuard no_grad;
  for (auto& arena : g.arenas) arena.zero_();
  for (auto& p : g.params) {
    torch::Tensor& grad = p.tensor.mutable_grad();
    if (!grad.defined() || !grad.is_same(p.view)) grad = p.view;
  }
}

void GradSync::arm(const std::string& name) {
  Group& g = find(name);
  std::lock_guard<std::mutex> lock(mutex_);
  if (armed_)
    throw std::logic_error("GradSync: arm('" + name + "') while '" + armed_->name + "' is armed: finish('" +
                           armed_->name + "') first");
  for (auto& p : g.params) p.ready = false;
  for (auto& b : g.buckets) {
    b.pending = b.params.size();
    b.ready = false;
    b.work.reset();
  }
  g.next_launch = 0;
  g.end_callback_queued = false;
  g.prescaled = false;
  g.timeline = SyncTimeline{};
  g.timeline.armed = Clock::now();
  g.timeline.bucket_launch.assign(g.buckets.size(), Clock::time_point{});
  armed_ = &g;
}

void GradSync::on_grad_ready(Group& g, size_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (armed_ != &g) return;  // another group's pass (e.g. G's step flowing through D): not ours to reduce
  Group::Param& p = g.params[index];
  p.adopt_grad();
  if (accumulating_) return;
  if (p.ready)
    throw std::logic_error("GradSync: group '" + g.name + "': parameter '" + p.name +
                           "' received a second gradient before finish(): run one backward per arm()/finish() "
                           "(sum the losses), or set_accumulating(true) for the earlier backward passes");
  p.ready = true;
  if (!g.prescaled) p.scale_for_average(comm_.world_size());
  if (!g.end_callback_queued) {
    g.end_callback_queued = true;
    Group* group = &g;
    torch::autograd::Engine::get_default_engine().queue_callback(
        [group] { group->timeline.backward_end = Clock::now(); });
  }
  Group::Bucket& b = g.buckets[p.bucket];
  if (--b.pending == 0 && options_.overlap) {
    b.ready = true;
    const size_t before = g.next_launch;
    launch_ready(g);
    g.timeline.launched_during_backward += static_cast<int>(g.next_launch - before);
  }
}

void GradSync::launch_ready(Group& g) {
  // Strictly in index order: bucket k+1 waits for bucket k even when it is ready first, so every rank
  // issues the same sequence of collectives.
  while (g.next_launch < g.buckets.size() && g.buckets[g.next_launch].ready) {
    Group::Bucket& b = g.buckets[g.next_launch];
    g.timeline.bucket_launch[g.next_launch] = Clock::now();
    b.work = comm_.all_reduce_async(b.buffer, ReduceOp::kSum);  // gradients are pre-divided by the world size
    ++g.next_launch;
  }
}

void GradSync::finish(const std::string& name) {
  Group& g = find(name);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (armed_ != &g) throw std::logic_error("GradSync: finish('" + name + "') without arm('" + name + "')");
    g.timeline.finish_start = Clock::now();
    const int prescaled = g.prescaled ? 1 : 0;
    if (g.accumulated_prescaled != -1 && g.accumulated_prescaled != prescaled) {
      armed_ = nullptr;
      throw std::logic_error("GradSync: group '" + name +
                             "': micro-batches mix losses passed through "
                             "average_loss() and losses that were not");
    }
    if (accumulating_) {  // a micro-batch before the last: gradients stay local
      g.accumulated_prescaled = prescaled;
      armed_ = nullptr;
      return;
    }
    g.accumulated_prescaled = -1;
    // Parameters that got no gradient this pass: their bucket view is their gradient (zero if none).
    // Bucket by bucket, launching each as soon as it is complete, so the comm thread reduces bucket k
    // while this thread prepares bucket k+1.
    for (auto& b : g.buckets) {
      for (size_t i : b.params) {
        Group::Param& p = g.params[i];
        if (p.ready) continue;
        p.adopt_grad();
        if (!g.prescaled) p.scale_for_average(comm_.world_size());
        p.ready = true;
        --b.pending;
      }
      b.ready = true;
      launch_ready(g);
    }
    armed_ = nullptr;
  }
  std::exception_ptr error;
  for (auto& b : g.buckets) {
    try {
      if (b.work) b.work->wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
    b.work.reset();
  }
  g.timeline.finish_end = Clock::now();
  if (error) std::rethrow_exception(error);
}

torch::Tensor GradSync::average_loss(const torch::Tensor& loss) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) throw std::logic_error("GradSync: average_loss() outside an arm()/finish() pass");
  armed_->prescaled = true;
  const int w = comm_.world_size();
  return w == 1 ? loss : loss * (1.0 / w);
}

void GradSync::set_accumulating(bool accumulating) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (armed_)
    throw std::logic_error("GradSync: set_accumulating() while group '" + armed_->name +
                           "' is armed: switch between passes");
  accumulating_ = accumulating;
}

const SyncTimeline& GradSync::timeline(const std::string& group) const {
  return find(group).timeline;
}

std::vector<int64_t> GradSync::bucket_bytes(const std::string& group) const {
  std::vector<int64_t> out;
  for (const auto& b : find(group).buckets) out.push_back(static_cast<int64_t>(b.buffer.nbytes()));
  return out;
}

std::vector<std::string> GradSync::bucket_parameters(const std::string& group, size_t bucket) const {
  const Group& g = find(group);
  std::vector<std::string> out;
  for (size_t i : g.buckets.at(bucket).params) out.push_back(g.params[i].name);
  return out;
}

}  // namespace gantry
