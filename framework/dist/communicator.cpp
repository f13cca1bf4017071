// make_communicator (backend choice), the world-of-one backend and the shared argument checks.
#include "dist/communicator.h"

#include <stdexcept>

#include "core/errors.h"
#include "dist/backend_util.h"
#include "dist/mpi_runtime.h"

namespace gantry {

namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
};

class DoneAgreement final : public Agreement {
 public:
  explicit DoneAgreement(int64_t value) : value_(value) {}
  bool ready() override { return true; }
  int64_t value() override { return value_; }

 private:
  int64_t value_;
};

// A world of one rank: every collective leaves its input as it is (an average over one rank is the
// value itself). Works on any device.
class WorldOfOneCommunicator final : public Communicator {
 public:
  explicit WorldOfOneCommunicator(const DistContext& ctx) : ctx_(ctx) {
    if (ctx_.world_size != 1 || ctx_.rank != 0)
      throw std::invalid_argument("world-of-one communicator built for rank " + std::to_string(ctx_.rank) + " of " +
                                  std::to_string(ctx_.world_size));
  }
  Backend backend() const override { return Backend::kWorldOfOne; }
  const DistContext& context() const override { return ctx_; }

  std::shared_ptr<Work> all_reduce_async(const torch::Tensor& buffer, ReduceOp) override {
    dist_detail::check_buffer(buffer, "all_reduce", buffer.device().type(), /*reducible=*/true);
    return std::make_shared<DoneWork>();
  }
  void broadcast(const torch::Tensor& buffer, int root) override {
    dist_detail::check_buffer(buffer, "broadcast", buffer.device().type(), /*reducible=*/false);
    if (root != 0) throw std::invalid_argument("broadcast: root " + std::to_string(root) + " in a world of one");
  }
  torch::Tensor all_gather(const torch::Tensor& input) override { return input.unsqueeze(0).clone(); }
  void barrier() override {}
  std::shared_ptr<Agreement> agree_async(int64_t value, AgreeOp) override {
    return std::make_shared<DoneAgreement>(value);
  }

 private:
  DistContext ctx_;
};

}  // namespace

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kWorldOfOne: return "world-of-one";
    case Backend::kMpi: return "mpi";
    case Backend::kNccl: return "nccl";
  }
  return "?";
}

std::unique_ptr<Communicator> make_world_of_one(const DistContext& ctx) {
  return std::make_unique<WorldOfOneCommunicator>(ctx);
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const CommOptions& options) {
  const bool cuda = options.device.is_cuda();
  if (options.timeout_s <= 0) throw UsageError(at("dist.timeout_s", "must be positive"));
  if (backend == "nccl") {
    if (!nccl_built())
      throw UsageError(at("dist.backend",
                          "nccl was asked for but this build has no NCCL backend (CMake found no "
                          "CUDA LibTorch with nccl.h): use auto or mpi"));
    if (!cuda)
      throw UsageError(at("dist.backend", "nccl moves CUDA tensors but the device is " + options.device.str()));
    return dist_detail::make_nccl_communicator(options);
  }
  if (backend == "mpi") {
    if (!mpi_initialized()) throw std::logic_error("make_communicator(\"mpi\"): create a gantry::MpiRuntime first");
    auto mpi = dist_detail::make_mpi_communicator(MPI_COMM_WORLD, options.timeout_s);
    return cuda ? dist_detail::make_host_staged(std::move(mpi)) : std::move(mpi);
  }
  if (backend == "auto") {
    const DistContext ctx = discover_context();
    if (ctx.world_size == 1) return make_world_of_one(ctx);
    if (cuda && nccl_built()) return dist_detail::make_nccl_communicator(options);
    auto mpi = dist_detail::make_mpi_communicator(MPI_COMM_WORLD, options.timeout_s);
    return cuda ? dist_detail::make_host_staged(std::move(mpi)) : std::move(mpi);
  }
  throw UsageError(at("dist.backend", "unknown backend '" + backend + "' (choose auto, mpi or nccl)"));
}

namespace dist_detail {

void check_buffer(const torch::Tensor& t, const char* op, torch::DeviceType device, bool reducible) {
  const std::string name = op;
  if (!t.defined()) throw std::invalid_argument(name + ": undefined tensor");
  if (t.device().type() != device)
    throw std::invalid_argument(name + ": tensor on " + t.device().str() + " but this backend moves " +
                                c10::DeviceTypeName(device, /*lower_case=*/true) + " tensors");
  if (!t.is_contiguous()) throw std::invalid_argument(name + ": tensor must be contiguous");
  if (reducible) {
    const auto type = t.scalar_type();
    if (type != torch::kFloat && type != torch::kHalf && type != torch::kBFloat16 && type != torch::kDouble)
      throw std::invalid_argument(name + ": dtype " + std::string(c10::toString(type)) +
                                  " cannot be reduced (float32, float16, bfloat16, float64)");
  }
}

}  // namespace dist_detail

}  // namespace gantry
