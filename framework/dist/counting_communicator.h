// A communicator that forwards to another and counts what goes through it: all-reduces (the
// gradient collectives) and their bytes. For tests ("one collective per step") and benchmarks
// (collectives per step of an update rule); control-plane agreements are forwarded, not counted.
#pragma once

#include <cstdint>
#include <memory>

#include "dist/communicator.h"

namespace gantry {

class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}
  Backend backend() const override { return inner_.backend(); }
  const DistContext& context() const override { return inner_.context(); }
  std::shared_ptr<Work> all_reduce_async(const torch::Tensor& buffer, ReduceOp op) override {
    ++all_reduces;
    all_reduce_bytes += buffer.numel() * static_cast<int64_t>(buffer.element_size());
    return inner_.all_reduce_async(buffer, op);
  }
  void broadcast(const torch::Tensor& buffer, int root) override { inner_.broadcast(buffer, root); }
  torch::Tensor all_gather(const torch::Tensor& input) override { return inner_.all_gather(input); }
  void barrier() override { inner_.barrier(); }
  std::shared_ptr<Agreement> agree_async(int64_t value, AgreeOp how) override { return inner_.agree_async(value, how); }
  void reset() { all_reduces = all_reduce_bytes = 0; }

  int64_t all_reduces = 0, all_reduce_bytes = 0;

 private:
  Communicator& inner_;
};

}  // namespace gantry
