// The MPI backend for device tensors (dist.backend = mpi on a CUDA device, or auto there in a build
// without NCCL): each collective copies its device buffer to host memory, runs the MPI collective there
// and copies the result back. Open MPI is not assumed to be CUDA-aware, so the copy out waits for the
// device to produce the buffer: a host synchronisation per bucket that NCCL avoids. It exists so a GPU
// run works (and is tested) without NCCL, and so NCCL's results can be compared with MPI's; use nccl for
// speed. Host tensors go straight to the inner MPI communicator. Device-generic (no CUDA API).
#include <stdexcept>

#include "dist/backend_util.h"

namespace gantry::dist_detail {

namespace {

// wait(): the host reduction has finished, then its result is copied into the device buffer (once).
class StagedWork final : public Work {
 public:
  StagedWork(std::shared_ptr<Work> inner, torch::Tensor host, torch::Tensor device)
      : inner_(std::move(inner)), host_(std::move(host)), device_(std::move(device)) {}
  void wait() override {
    inner_->wait();
    if (copied_) return;
    device_.copy_(host_);
    copied_ = true;
  }

 private:
  std::shared_ptr<Work> inner_;
  torch::Tensor host_, device_;
  bool copied_ = false;
};

class StagedCommunicator final : public Communicator {
 public:
  explicit StagedCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}

  Backend backend() const override { return inner_->backend(); }
  const DistContext& context() const override { return inner_->context(); }

  std::shared_ptr<Work> all_reduce_async(const torch::Tensor& buffer, ReduceOp op) override {
    if (!buffer.defined() || buffer.is_cpu()) return inner_->all_reduce_async(buffer, op);
    check_buffer(buffer, "all_reduce", buffer.device().type(), /*reducible=*/true);
    torch::Tensor host = buffer.to(torch::kCPU);
    return std::make_shared<StagedWork>(inner_->all_reduce_async(host, op), host, buffer);
  }

  void broadcast(const torch::Tensor& buffer, int root) override {
    if (!buffer.defined() || buffer.is_cpu()) return inner_->broadcast(buffer, root);
    check_buffer(buffer, "broadcast", buffer.device().type(), /*reducible=*/false);
    torch::Tensor host = buffer.to(torch::kCPU);
    inner_->broadcast(host, root);
    buffer.copy_(host);
  }

  torch::Tensor all_gather(const torch::Tensor& input) override {
    if (!input.defined() || input.is_cpu()) return inner_->all_gather(input);
    return inner_->all_gather(input.to(torch::kCPU).contiguous()).to(input.device());
  }

  void barrier() override { inner_->barrier(); }
  std::shared_ptr<Agreement> agree_async(int64_t value, AgreeOp how) override {
    return inner_->agree_async(value, how);
  }

 private:
  std::unique_ptr<Communicator> inner_;
};

}  // namespace

std::unique_ptr<Communicator> make_host_staged(std::unique_ptr<Communicator> inner) {
  return std::make_unique<StagedCommunicator>(std::move(inner));
}

}  // namespace gantry::dist_detail
