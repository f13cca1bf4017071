// GradSync: data-parallel gradient averaging for recipes with several networks per step — what DDP's
// reducer and Horovod's fusion do, per group of networks.
//
//   GradSync sync(comm, {bucket_bytes, first_bucket_bytes});
//   sync.add_group("D", {D.ptr()});            // once, on every rank, in the same order
//   sync.add_group("G", {G.ptr()});
//   sync.add_group("G+D", {G.ptr(), D.ptr()}); // f-GAN: both players reduced in one pass
//   ...each step:
//   sync.arm("D"); loss_d.backward(); sync.finish("D"); opt_d.step();
//   sync.arm("G"); loss_g.backward(); sync.finish("G"); opt_g.step();  // D's grads stay local
//
// How it works: a group's parameters (requires_grad, deduplicated) are laid out in reverse
// registration order — roughly the order backward produces their gradients — in buckets of
// `bucket_bytes` (the first one `first_bucket_bytes`, so the first all-reduce starts early). Each bucket
// owns one flat buffer, and each parameter's .grad becomes a view of it (gradient-as-bucket-view: no
// copy in or out). A post-hook on each parameter's gradient accumulator marks it ready and divides it
// by the world size while it is cache-hot; when a bucket's last parameter is ready, its asynchronous
// all-reduce (a sum, hence the average) starts while backward continues.
// Buckets launch strictly in index order on every rank, so collectives match across ranks. finish()
// zero-fills the gradients of parameters that got none this pass (a parameter unused on some ranks
// never hangs the others), launches what is left in the same order, and waits.
// Only the armed group's hooks do anything: a generator step flows through D without reducing D.
//
// Rules: one armed group at a time; one backward per arm()/finish() (sum the losses, or run earlier
// micro-batches with set_accumulating(true), or unarmed); optimizers may zero gradients in place or set
// them to None (the hook then copies the fresh gradient into the bucket). Register a group while its
// parameters require grad (a frozen parameter is left out). Not thread-safe across callers.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace torch::nn {
class Module;
}

namespace gantry {

struct GradSyncOptions {
  int64_t bucket_bytes = int64_t{25} << 20;       // dist.bucket_mb
  int64_t first_bucket_bytes = int64_t{1} << 20;  // dist.first_bucket_mb
  // Launch a bucket's all-reduce from the hooks, during backward. false: finish() launches them all
  // (for CPU runs whose compute threads already fill every core, where the communication thread can
  // only steal time from backward).
  bool overlap = true;
};

// Steady-clock stamps of a group's latest pass, for overlap checks and profiling.
struct SyncTimeline {
  using Clock = std::chrono::steady_clock;
  Clock::time_point armed;
  std::vector<Clock::time_point> bucket_launch;  // per bucket index; launch order is index order
  Clock::time_point backward_end;                // the autograd engine finished the backward the hooks ran in
  Clock::time_point finish_start, finish_end;    // finish() entered / all reductions done
  int launched_during_backward = 0;              // buckets launched from hooks (before finish())
};

class GradSync {
 public:
  explicit GradSync(Communicator& comm, GradSyncOptions options = {});
  ~GradSync();  // removes the hooks; waits for reductions still in flight
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Registers a group (collective: checks that every rank has the same parameter names and shapes,
  // UsageError naming the first difference). A module may belong to several groups.
  void add_group(const std::string& name, const std::vector<std::shared_ptr<torch::nn::Module>>& modules);

  // Zeroes every gradient of `group` in place (one fill per flat buffer) and makes each parameter's
  // .grad its bucket view again (an optimizer may have set it to None). Use it instead of the
  // optimizers' zero_grad() (LibTorch 2.x's sets gradients to None, and backward then allocates fresh
  // ones that the hooks copy into the buckets).
  void zero_grad(const std::string& group);

  // Starts a pass for `group`: its hooks launch bucket reductions during the next backward.
  void arm(const std::string& group);
  // Ends the pass: zero-fills missing gradients, launches remaining buckets in order, waits. Afterwards
  // every parameter's .grad holds the average over ranks. While accumulating, only ends the pass.
  void finish(const std::string& group);

  // loss / world_size, for the armed pass's backward: the gradients then arrive already averaged and
  // no pass over them is spent dividing (one scalar multiply instead of a multiply per gradient
  // element; exact when the world size is a power of two). Without it, the hooks divide each gradient
  // as it becomes ready. Use it for every micro-batch of an accumulation, or for none.
  torch::Tensor average_loss(const torch::Tensor& loss);

  // true: hooks only accumulate locally (micro-batches before the last); set false before the last
  // micro-batch's backward, whose pass then reduces the accumulated gradients.
  void set_accumulating(bool accumulating);
  bool accumulating() const { return accumulating_; }

  const SyncTimeline& timeline(const std::string& group) const;
  std::vector<int64_t> bucket_bytes(const std::string& group) const;                          // per bucket, index order
  std::vector<std::string> bucket_parameters(const std::string& group, size_t bucket) const;  // names

 private:
  struct Group;
  Group& find(const std::string& name) const;
  void on_grad_ready(Group& group, size_t param);  // called from autograd post-hooks
  void launch_ready(Group& group);                 // mutex held

  Communicator& comm_;
  GradSyncOptions options_;
  std::vector<std::unique_ptr<Group>> groups_;
  Group* armed_ = nullptr;
  bool accumulating_ = false;
  std::mutex mutex_;
};

}  // namespace gantry
