// The MPI backend: CPU tensors, one duplicated data communicator, and one communication thread that
// runs every collective (blocking MPI calls) in issue order, so an all-reduce proceeds while the caller
// computes. (Open MPI's nonblocking collectives progress only inside MPI calls and ran 2x slower here
// for gradients; its blocking ones are fast but busy-poll, hence the rendezvous before each — one tiny
// Iallreduce on a control communicator, polled with sleeps: everyone is present before anyone spins.)
// Agreements are tiny Iallreduces on the same control communicator, started in issue order by the
// communication thread and completed whenever the caller asks. float16/bfloat16 sums use user-defined
// MPI_Ops (MPI has no half types). Hangs: the Watchdog times every collective (rendezvous included)
// and every awaited agreement, and names the ranks that never arrived.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/errors.h"
#include "dist/backend_util.h"
#include "dist/mpi_check.h"
#include "dist/mpi_runtime.h"
#include "dist/rendezvous.h"
#include "dist/watchdog.h"

namespace gantry::dist_detail {

namespace {

constexpr int64_t kMaxCount = int64_t{1} << 30;  // elements (or bytes) per MPI call: counts are int

// MPI_User_function for 2-byte floats: inout[i] += in[i], accumulated in float.
template <typename Half>
void sum_halves(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const Half*>(in);
  auto* b = static_cast<Half*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = Half(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

// x *= 1/divisor: a multiply, which vectorises well (a divide pass costs about as much as the
// all-reduce itself on a small node); exact when the world size is a power of two.
template <typename T, typename Acc>
void scale(void* data, int64_t n, int divisor) {
  auto* p = static_cast<T*>(data);
  const Acc factor = Acc(1) / static_cast<Acc>(divisor);
  for (int64_t i = 0; i < n; ++i) p[i] = T(static_cast<Acc>(p[i]) * factor);
}

// Runs collectives one at a time, in the order posted: on its own thread (so an asynchronous
// all-reduce proceeds while the caller computes), or on a thread that waits for a result and finds the
// queue's head not yet started — it runs that job itself instead of sleeping until the communication
// thread is scheduled (which costs milliseconds on a busy node). Only one job runs at a time, always
// the head, so the order of collectives is the posting order on every rank; a job's sequence number
// (its index in that order) is fixed when it is posted.
class CommThread {
 public:
  using Job = std::function<void(int64_t seq)>;

  CommThread() : thread_([this] { loop(); }) {}
  ~CommThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // the loop runs whatever is still queued first
  }

  // `wake`: false when the caller waits for this job at once (it will most likely run it itself).
  void post(Job job, bool wake) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back({next_seq_++, std::move(job)});
    }
    if (wake) cv_.notify_all();
  }

  // Returns once `done` is set by a job, running queued jobs meanwhile when nothing else runs one.
  void wait_for(const std::atomic<bool>& done) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!done.load()) {
      if (!running_ && !jobs_.empty())
        run_head(lock);
      else
        cv_.wait(lock);
    }
  }

 private:
  struct Queued {
    int64_t seq;
    Job job;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return (stop_ && !running_) || (!running_ && !jobs_.empty()); });
      if (jobs_.empty()) return;  // stopping, and everything posted has run
      run_head(lock);
    }
  }

  void run_head(std::unique_lock<std::mutex>& lock) {
    Queued q = std::move(jobs_.front());
    jobs_.pop_front();
    running_ = true;
    lock.unlock();
    q.job(q.seq);
    q.job = nullptr;  // release captured tensors before signalling completion
    lock.lock();
    running_ = false;
    cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;  // new job, job finished, or stop
  std::deque<Queued> jobs_;
  int64_t next_seq_ = 0;
  bool running_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the rest is built
};

class MpiWork final : public Work {
 public:
  explicit MpiWork(CommThread& thread) : thread_(&thread) {}
  void wait() override {
    if (!done_.load()) thread_->wait_for(done_);
    if (error_) std::rethrow_exception(error_);
  }
  // Called by the job, on whichever thread runs it.
  void complete(std::exception_ptr error) {
    error_ = std::move(error);
    done_.store(true);
  }

 private:
  CommThread* thread_;  // outlives every unfinished work: the communicator drains its queue first
  std::atomic<bool> done_{false};
  std::exception_ptr error_;
};

// An agreement: its ControlReduce is started by a job on the communication thread (so it takes its
// place in the issue order) and completed by whoever asks.
class MpiAgreement final : public Agreement {
 public:
  MpiAgreement(CommThread& thread, Watchdog& watchdog, bool negate)
      : thread_(&thread), watchdog_(&watchdog), negate_(negate) {}
  ~MpiAgreement() override {
    if (!posted_.load()) thread_->wait_for(posted_);
    if (!error_ && !complete_) {
      try {
        value();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "gantry: warning: an agreement never completed: %s\n", e.what());
      }
    }
  }

  // The job, on whichever thread runs it.
  void start(MPI_Comm control, int64_t value, int64_t seq) {
    try {
      seq_ = seq;
      watchdog_->start(seq, CollectiveKind::kAgree, sizeof(int64_t), /*timed=*/false);
      reduce_.start(control, negate_ ? -value : value, seq, CollectiveKind::kAgree);
    } catch (...) {
      error_ = std::current_exception();
      watchdog_->finish(seq);
    }
    posted_.store(true);
  }

  bool ready() override {
    if (!posted_.load()) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    return poll();
  }

  int64_t value() override {
    if (!posted_.load()) thread_->wait_for(posted_);  // runs the jobs queued before it, if need be
    std::lock_guard<std::mutex> lock(mutex_);
    if (!poll()) {
      watchdog_->wait(seq_);
      try {
        reduce_.wait();
      } catch (...) {
        error_ = std::current_exception();
      }
      finish();
    }
    if (error_) std::rethrow_exception(error_);
    return negate_ ? -reduce_.max_value() : reduce_.max_value();
  }

 private:
  bool poll() {  // mutex_ held; true once complete (or failed)
    if (error_ || complete_) return true;
    try {
      if (!reduce_.test()) return false;
    } catch (...) {
      error_ = std::current_exception();
    }
    finish();
    return true;
  }
  void finish() {
    complete_ = true;
    watchdog_->finish(seq_);
  }

  CommThread* thread_;
  Watchdog* watchdog_;
  bool negate_;
  std::atomic<bool> posted_{false};
  std::mutex mutex_;
  ControlReduce reduce_;
  int64_t seq_ = -1;
  bool complete_ = false;
  std::exception_ptr error_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm parent, double timeout_s) {
    int level = 0;
    GANTRY_MPI_CHECK(MPI_Query_thread(&level));
    if (level < MPI_THREAD_MULTIPLE)
      throw EnvironmentError(
          "dist: the MPI backend needs MPI_THREAD_MULTIPLE (collectives run on a communication thread while "
          "other threads may call MPI) but MPI granted level " +
          std::to_string(level) + ": initialise MPI through gantry::MpiRuntime, with an MPI built with threads");
    GANTRY_MPI_CHECK(MPI_Comm_dup(parent, &comm_));
    GANTRY_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    ctx_ = context_of(comm_);
    GANTRY_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &half_type_));
    GANTRY_MPI_CHECK(MPI_Type_commit(&half_type_));
    GANTRY_MPI_CHECK(MPI_Op_create(&sum_halves<c10::Half>, /*commute=*/1, &sum_fp16_));
    GANTRY_MPI_CHECK(MPI_Op_create(&sum_halves<c10::BFloat16>, /*commute=*/1, &sum_bf16_));
    GANTRY_MPI_CHECK(MPI_Comm_dup(parent, &control_));
    GANTRY_MPI_CHECK(MPI_Comm_set_errhandler(control_, MPI_ERRORS_RETURN));
    watchdog_ = std::make_unique<Watchdog>(parent, ctx_, timeout_s, "mpi");
    thread_ = std::make_unique<CommThread>();
  }

  ~MpiCommunicator() override {
    thread_.reset();  // runs what was posted, then joins
    watchdog_.reset();
    if (!mpi_initialized()) return;  // MPI already finalised: nothing left to free
    GANTRY_MPI_CHECK_NOTHROW(MPI_Comm_free(&control_));
    GANTRY_MPI_CHECK_NOTHROW(MPI_Op_free(&sum_fp16_));
    GANTRY_MPI_CHECK_NOTHROW(MPI_Op_free(&sum_bf16_));
    GANTRY_MPI_CHECK_NOTHROW(MPI_Type_free(&half_type_));
    GANTRY_MPI_CHECK_NOTHROW(MPI_Comm_free(&comm_));
  }

  Backend backend() const override { return Backend::kMpi; }
  const DistContext& context() const override { return ctx_; }

  std::shared_ptr<Work> all_reduce_async(const torch::Tensor& buffer, ReduceOp op) override {
    check_buffer(buffer, "all_reduce", torch::kCPU, /*reducible=*/true);
    return submit(
        CollectiveKind::kAllReduce, buffer.nbytes(), [this, buffer, op] { reduce_in_place(buffer, op); }, false);
  }

  void broadcast(const torch::Tensor& buffer, int root) override {
    check_buffer(buffer, "broadcast", torch::kCPU, /*reducible=*/false);
    check_root(root);
    submit(
        CollectiveKind::kBroadcast, buffer.nbytes(),
        [this, buffer, root] {
          auto* p = static_cast<char*>(buffer.data_ptr());
          const int64_t n = static_cast<int64_t>(buffer.nbytes());
          for (int64_t off = 0; off < n; off += kMaxCount)
            GANTRY_MPI_CHECK(MPI_Bcast(p + off, static_cast<int>(std::min(kMaxCount, n - off)), MPI_BYTE, root, comm_));
        },
        true);
  }

  torch::Tensor all_gather(const torch::Tensor& input) override {
    torch::Tensor in = input.contiguous();
    check_buffer(in, "all_gather", torch::kCPU, /*reducible=*/false);
    if (static_cast<int64_t>(in.nbytes()) > INT_MAX)
      throw std::invalid_argument("all_gather: at most 2 GiB per rank (got " + std::to_string(in.nbytes()) + " bytes)");
    std::vector<int64_t> shape{ctx_.world_size};
    shape.insert(shape.end(), in.sizes().begin(), in.sizes().end());
    torch::Tensor out = torch::empty(shape, in.options());
    submit(
        CollectiveKind::kAllGather, in.nbytes(),
        [this, in, out] {
          const int bytes = static_cast<int>(in.nbytes());
          GANTRY_MPI_CHECK(MPI_Allgather(in.data_ptr(), bytes, MPI_BYTE, out.data_ptr(), bytes, MPI_BYTE, comm_));
        },
        true);
    return out;
  }

  void barrier() override {
    submit(
        CollectiveKind::kBarrier, 0, [this] { GANTRY_MPI_CHECK(MPI_Barrier(comm_)); }, true);
  }

  std::shared_ptr<Agreement> agree_async(int64_t value, AgreeOp how) override {
    auto agreement = std::make_shared<MpiAgreement>(*thread_, *watchdog_, /*negate=*/how == AgreeOp::kMin);
    thread_->post([this, agreement, value](int64_t seq) { agreement->start(control_, value, seq); }, /*wake=*/true);
    return agreement;
  }

 private:
  // `wait_now`: the caller waits for the result at once (synchronous collectives).
  std::shared_ptr<MpiWork> submit(CollectiveKind kind, int64_t bytes, std::function<void()> fn, bool wait_now) {
    auto work = std::make_shared<MpiWork>(*thread_);
    thread_->post(
        [this, kind, bytes, fn = std::move(fn), work](int64_t seq) {
          std::exception_ptr error;
          watchdog_->start(seq, kind, bytes);  // times the rendezvous and the collective together
          try {
            rendezvous(control_, seq, kind);
            fn();
          } catch (...) {
            error = std::current_exception();
          }
          watchdog_->finish(seq);
          work->complete(error);
        },
        /*wake=*/!wait_now);
    if (wait_now) work->wait();
    return work;
  }

  void check_root(int root) const {
    if (root < 0 || root >= ctx_.world_size)
      throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank of a world of " +
                                  std::to_string(ctx_.world_size));
  }

  // Runs on the communication thread. Plain loops for the average: no ATen dispatch (and no OpenMP
  // team) on this thread.
  void reduce_in_place(const torch::Tensor& t, ReduceOp op) {
    const int64_t n = t.numel();
    if (n == 0) return;
    MPI_Datatype type = MPI_FLOAT;
    MPI_Op sum = MPI_SUM;
    switch (t.scalar_type()) {
      case torch::kFloat: break;
      case torch::kDouble: type = MPI_DOUBLE; break;
      case torch::kHalf: type = half_type_, sum = sum_fp16_; break;
      case torch::kBFloat16: type = half_type_, sum = sum_bf16_; break;
      default: throw std::invalid_argument("all_reduce: unsupported dtype");  // check_buffer already refused it
    }
    auto* p = static_cast<char*>(t.data_ptr());
    const int64_t element = static_cast<int64_t>(t.element_size());
    for (int64_t off = 0; off < n; off += kMaxCount)
      GANTRY_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off * element, static_cast<int>(std::min(kMaxCount, n - off)),
                                     type, sum, comm_));
    if (op != ReduceOp::kAverage || ctx_.world_size == 1) return;
    switch (t.scalar_type()) {
      case torch::kFloat: scale<float, float>(p, n, ctx_.world_size); break;
      case torch::kDouble: scale<double, double>(p, n, ctx_.world_size); break;
      case torch::kHalf: scale<c10::Half, float>(p, n, ctx_.world_size); break;
      case torch::kBFloat16: scale<c10::BFloat16, float>(p, n, ctx_.world_size); break;
      default: break;
    }
  }

  DistContext ctx_;
  MPI_Comm comm_ = MPI_COMM_NULL;     // the collectives' data
  MPI_Comm control_ = MPI_COMM_NULL;  // rendezvous and agreements
  MPI_Datatype half_type_ = MPI_DATATYPE_NULL;
  MPI_Op sum_fp16_ = MPI_OP_NULL, sum_bf16_ = MPI_OP_NULL;
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<CommThread> thread_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm parent, double timeout_s) {
  return std::make_unique<MpiCommunicator>(parent, timeout_s);
}

}  // namespace gantry::dist_detail
