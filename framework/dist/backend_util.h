// Helpers the backends share: argument checks with one clear message, and the MPI backend's factory
// (the NCCL backend uses an MPI communicator for its control plane). Internal to framework/dist.
#pragma once

#include <mpi.h>

#include <memory>

#include "dist/communicator.h"

namespace gantry::dist_detail {

// std::invalid_argument unless `t` is a defined, contiguous tensor on a `device` device; with
// `reducible`, also float32/float16/bfloat16/float64.
void check_buffer(const torch::Tensor& t, const char* op, torch::DeviceType device, bool reducible);

DistContext context_of(MPI_Comm comm);  // rank/size in `comm`, local rank/size on this node

// The MPI backend over a duplicate of `parent`.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm parent, double timeout_s);
// `inner` (an MPI communicator) for device tensors too, staged through host memory (staged_communicator.cpp).
std::unique_ptr<Communicator> make_host_staged(std::unique_ptr<Communicator> inner);
// The NCCL backend (nccl_communicator.cpp), or UsageError in a build without it (nccl_unavailable.cpp).
std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options);

}  // namespace gantry::dist_detail
