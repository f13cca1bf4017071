// Keeping replicas identical: broadcast a module's parameters and buffers from rank 0, average its
// buffers (BatchNorm running statistics), and check that every rank built the same structure — each
// rank gathers a hash of the names, shapes and dtypes, and on a difference every rank throws the same
// UsageError naming the first mismatch (never a hang in a later collective of a different size).
// Every function here is a collective: all ranks call it, in the same order.
#pragma once

#include <string>

#include "dist/communicator.h"

namespace torch::nn {
class Module;
}

namespace gantry {

// Parameters and buffers of `module` (recursively) overwritten with rank 0's: after building the model
// (and after restoring a checkpoint that only rank 0 read). Coalesced: one broadcast per dtype.
void broadcast_state(Communicator& comm, torch::nn::Module& module);

// Floating-point buffers averaged across ranks, integer ones (num_batches_tracked) taken from rank 0.
// For before evaluation and checkpoints; never between the forwards of a step.
void average_buffers(Communicator& comm, torch::nn::Module& module);

// Throws UsageError("dist: <what>: ...") naming the first parameter or buffer whose name, shape or dtype
// differs between ranks. `what` names the module in the message ("D", "group 'G+D'").
void verify_same_structure(Communicator& comm, const torch::nn::Module& module, const std::string& what);

namespace dist_detail {
struct TensorSpec {
  std::string name;
  torch::Tensor tensor;
};
// The check behind verify_same_structure, on any list of named tensors.
void verify_same_specs(Communicator& comm, const std::vector<TensorSpec>& specs, const std::string& what);
}  // namespace dist_detail

}  // namespace gantry
