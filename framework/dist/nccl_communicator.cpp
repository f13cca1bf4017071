// The NCCL backend: CUDA tensors, collectives on the backend's own stream, ordered after the caller's
// compute stream with events (no host synchronisation; dist/stream_order.h); Work::wait() orders the
// caller's current stream after the collective. MPI does the rest: the unique-id broadcast at start-up, the control
// plane (barrier, agreements) and CPU tensors go through an inner MPI communicator, and a Watchdog
// on its own channel ("nccl") turns a collective that never completes into exit 6 with one line
// naming the ranks that never issued it or no longer answer: a collective counts as open from its
// launch until the CUDA event recorded after it has completed (queried by the poller thread). Built
// only when CMake sets GANTRY_HAVE_NCCL.
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "dist/backend_util.h"
#include "dist/stream_order.h"
#include "dist/watchdog.h"

namespace gantry {

bool nccl_built() {
  return true;
}

namespace dist_detail {

namespace {

void nccl_check(ncclResult_t rc, const char* call, const char* file, int line, int rank) {
  if (rc == ncclSuccess) return;
  throw std::runtime_error("dist: " + std::string(call) + " failed at " + file + ":" + std::to_string(line) +
                           " on rank " + std::to_string(rank) + ": " + ncclGetErrorString(rc));
}

#define GANTRY_NCCL_CHECK(call) nccl_check((call), #call, __FILE__, __LINE__, ctx_.rank)

ncclDataType_t nccl_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    default:
      throw std::invalid_argument("all_reduce: dtype " + std::string(c10::toString(type)) + " cannot be reduced");
  }
}

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<StreamEvent<>> done, c10::DeviceIndex device, std::function<void()> check_errors)
      : done_(std::move(done)), device_(device), check_errors_(std::move(check_errors)) {}
  void wait() override {
    check_errors_();
    wait_for(*done_, c10::cuda::getCurrentCUDAStream(device_));
  }

 private:
  std::shared_ptr<StreamEvent<>> done_;
  c10::DeviceIndex device_;
  std::function<void()> check_errors_;
};

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const CommOptions& options)
      : control_(make_mpi_communicator(MPI_COMM_WORLD, options.timeout_s)),
        ctx_(control_->context()),
        device_(options.device.has_index()
                    ? options.device.index()
                    : static_cast<c10::DeviceIndex>(ctx_.local_rank % std::max<int>(1, c10::cuda::device_count()))),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_)) {
    monitor_ = std::make_unique<Watchdog>(MPI_COMM_WORLD, ctx_, options.timeout_s, "nccl");
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (ctx_.rank == 0) GANTRY_NCCL_CHECK(ncclGetUniqueId(&id));
    torch::Tensor bytes = torch::empty({static_cast<int64_t>(sizeof id)}, torch::kUInt8);
    std::memcpy(bytes.data_ptr(), &id, sizeof id);
    control_->broadcast(bytes, 0);
    std::memcpy(&id, bytes.data_ptr(), sizeof id);
    c10::cuda::CUDAGuard guard(device_);
    GANTRY_NCCL_CHECK(ncclCommInitRank(&comm_, ctx_.world_size, id, ctx_.rank));
    poller_ = std::thread([this] { poll_loop(); });
  }

  ~NcclCommunicator() override {
    stop_ = true;
    poller_.join();
    try {
      stream_.synchronize();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "gantry: warning (rank %d): %s\n", ctx_.rank, e.what());
    }
    monitor_.reset();
    ncclCommDestroy(comm_);
    control_.reset();
  }

  Backend backend() const override { return Backend::kNccl; }
  const DistContext& context() const override { return ctx_; }

  std::shared_ptr<Work> all_reduce_async(const torch::Tensor& buffer, ReduceOp op) override {
    if (buffer.defined() && buffer.is_cpu()) return control_->all_reduce_async(buffer, op);
    check_buffer(buffer, "all_reduce", torch::kCUDA, /*reducible=*/true);
    check_device(buffer, "all_reduce");
    const ncclDataType_t type = nccl_type(buffer.scalar_type());
    return launch(CollectiveKind::kAllReduce, {buffer}, [&](cudaStream_t s) {
      if (buffer.numel() == 0) return;
      GANTRY_NCCL_CHECK(ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), static_cast<size_t>(buffer.numel()), type,
                                      ncclSum, comm_, s));
      if (op == ReduceOp::kAverage && ctx_.world_size > 1) {
        c10::cuda::CUDAStreamGuard on_comm_stream(stream_);  // the division runs on the comm stream too
        buffer.div_(ctx_.world_size);
      }
    });
  }

  void broadcast(const torch::Tensor& buffer, int root) override {
    if (buffer.defined() && buffer.is_cpu()) return control_->broadcast(buffer, root);
    check_buffer(buffer, "broadcast", torch::kCUDA, /*reducible=*/false);
    check_device(buffer, "broadcast");
    if (root < 0 || root >= ctx_.world_size) throw std::invalid_argument("broadcast: no rank " + std::to_string(root));
    launch(CollectiveKind::kBroadcast, {buffer}, [&](cudaStream_t s) {
      if (buffer.nbytes() == 0) return;
      GANTRY_NCCL_CHECK(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(), buffer.nbytes(), ncclInt8, root, comm_, s));
    })->wait();
  }

  torch::Tensor all_gather(const torch::Tensor& input) override {
    if (input.defined() && input.is_cpu()) return control_->all_gather(input);
    torch::Tensor in = input.contiguous();
    check_buffer(in, "all_gather", torch::kCUDA, /*reducible=*/false);
    check_device(in, "all_gather");
    std::vector<int64_t> shape{ctx_.world_size};
    shape.insert(shape.end(), in.sizes().begin(), in.sizes().end());
    torch::Tensor out = torch::empty(shape, in.options());
    launch(CollectiveKind::kAllGather, {in, out}, [&](cudaStream_t s) {
      if (in.nbytes() == 0) return;
      GANTRY_NCCL_CHECK(ncclAllGather(in.data_ptr(), out.data_ptr(), in.nbytes(), ncclInt8, comm_, s));
    })->wait();
    return out;
  }

  void barrier() override { control_->barrier(); }

  std::shared_ptr<Agreement> agree_async(int64_t value, AgreeOp how) override {
    return control_->agree_async(value, how);  // MPI's control plane, timed by its own watchdog
  }

 private:
  struct Pending {
    int64_t seq;
    std::shared_ptr<StreamEvent<>> done;
  };

  void check_device(const torch::Tensor& t, const char* op) const {
    if (t.device().index() != device_)
      throw std::invalid_argument(std::string(op) + ": tensor on " + t.device().str() +
                                  " but this communicator uses cuda:" + std::to_string(device_));
  }

  // Enqueues one collective on the comm stream after the caller's pending compute, and returns its Work.
  std::shared_ptr<Work> launch(CollectiveKind kind, const std::vector<torch::Tensor>& tensors,
                               const std::function<void(cudaStream_t)>& enqueue) {
    std::lock_guard<std::mutex> lock(mutex_);  // sequence numbers in issue order
    const int64_t seq = next_seq_++;
    monitor_->start(seq, kind, static_cast<int64_t>(tensors.front().nbytes()));
    c10::cuda::CUDAGuard guard(device_);
    auto done = enqueue_after(c10::cuda::getCurrentCUDAStream(device_), stream_, [&] {
      enqueue(stream_.stream());
      // The caching allocator must not reuse these blocks on another stream before the collective ends.
      for (const auto& t : tensors)
        if (t.numel() > 0) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
    });
    {
      std::lock_guard<std::mutex> pending_lock(pending_mutex_);
      pending_.push_back({seq, done});
    }
    return std::make_shared<NcclWork>(done, device_, [this] { check_async_error(); });
  }

  void check_async_error() {
    ncclResult_t state = ncclSuccess;
    GANTRY_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
    GANTRY_NCCL_CHECK(state);
  }

  // Marks collectives finished as their events complete (the stream runs them in order), which stops
  // their watchdog clock; an asynchronous NCCL error (in practice a peer or the network failing) ends
  // the job with one line and exit 6.
  void poll_loop() {
    c10::cuda::CUDAGuard guard(device_);
    while (!stop_) {
      {
        std::lock_guard<std::mutex> lock(pending_mutex_);
        while (!pending_.empty() && pending_.front().done->query()) {
          monitor_->finish(pending_.front().seq);
          pending_.pop_front();
        }
      }
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state != ncclSuccess) {
        ncclCommAbort(comm_);
        end_job("dist: NCCL failed on rank " + std::to_string(ctx_.rank) + ": " + ncclGetErrorString(state) +
                "; a rank was lost or hung; resume with --resume auto");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::unique_ptr<Communicator> control_;  // MPI: bootstrap, control plane, CPU tensors
  DistContext ctx_;
  c10::DeviceIndex device_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
  std::unique_ptr<Watchdog> monitor_;

  std::mutex mutex_;
  int64_t next_seq_ = 0;
  std::mutex pending_mutex_;
  std::deque<Pending> pending_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options) {
  return std::make_unique<NcclCommunicator>(options);
}

}  // namespace dist_detail

}  // namespace gantry
