// Communicator: the one interface for collectives over the ranks of a job — in-place all-reduce (sync
// and async), broadcast, all-gather, barrier — and small control-plane agreements (any, max, min),
// blocking or not. Model and recipe code see only this interface; make_communicator() picks the backend:
//   mpi          CPU tensors; collectives run in issue order on a communication thread, so an async
//                all-reduce overlaps compute (a thread that waits runs queued ones itself)
//   nccl         CUDA tensors on its own stream (built only when CMake sets GANTRY_HAVE_NCCL)
//   world-of-one no MPI at all: a run without mpirun, and unit tests
// Collectives and agreements are matched by call order: every rank must issue the same sequence (a
// rank that issues a different one gets an error, on every rank alike).
// Control plane: before each collective the MPI backend waits on one small non-blocking reduction
// (rendezvous.h): O(log W) messages per rank, none of them O(W) into one rank.
// Hangs: a collective (or the wait before it) open longer than CommOptions::timeout_s ends the job
// with exit code 6 and one line naming every missing rank and the collective (watchdog.h), whether a
// peer died, stopped or became unreachable.
// Adding a backend: implement Communicator in dist/<name>_communicator.cpp, let CMake pick the file,
// and add its name to make_communicator().
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dist/dist_context.h"

namespace gantry {

enum class ReduceOp { kSum, kAverage };  // kAverage: the sum divided by the world size

enum class Backend { kWorldOfOne, kMpi, kNccl };
const char* backend_name(Backend backend);  // "world-of-one", "mpi", "nccl"

// Handle of an asynchronous collective. wait() returns once the caller may use the result (MPI: the
// buffer holds it; NCCL: the caller's current CUDA stream is ordered after the collective, no host
// sync) and rethrows the collective's error, if any. wait() may be called more than once.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

// Handle of a non-blocking agreement (Communicator::any_async and friends). ready() progresses it and
// says whether every rank has contributed, without blocking; value() blocks until then and returns the
// agreed value (rethrowing its error, if any); both may be called any number of times. Waiting in
// value() is timed by the watchdog like any collective. Complete every agreement (value() or get())
// before its communicator is destroyed.
class Agreement {
 public:
  virtual ~Agreement() = default;
  virtual bool ready() = 0;
  virtual int64_t value() = 0;
  bool get() { return value() != 0; }  // for any_async / all_async
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual Backend backend() const = 0;
  virtual const DistContext& context() const = 0;
  int rank() const { return context().rank; }
  int world_size() const { return context().world_size; }

  // In place on a contiguous buffer (float32, float16, bfloat16 or float64) of any size, 0 included;
  // the buffer must stay untouched until wait() returns. Same numel and dtype on every rank.
  virtual std::shared_ptr<Work> all_reduce_async(const torch::Tensor& buffer, ReduceOp op) = 0;
  void all_reduce(const torch::Tensor& buffer, ReduceOp op) { all_reduce_async(buffer, op)->wait(); }

  // Root's `buffer` copied into every rank's (any dtype, contiguous, same size everywhere).
  virtual void broadcast(const torch::Tensor& buffer, int root) = 0;
  // Every rank's `input` (same shape and dtype everywhere) stacked in rank order: (world, *input.shape).
  virtual torch::Tensor all_gather(const torch::Tensor& input) = 0;
  virtual void barrier() = 0;

  // Control plane: small agreements between the hosts, matched in issue order with the collectives.
  // Blocking forms:
  bool any(bool flag) { return any_async(flag)->get(); }  // "does any rank want to stop?"
  bool all(bool flag) { return all_async(flag)->get(); }
  int64_t max(int64_t value) { return agree_async(value, AgreeOp::kMax)->value(); }
  int64_t min(int64_t value) { return agree_async(value, AgreeOp::kMin)->value(); }

  // Non-blocking forms: start now, complete later, so an agreement adds no latency to a step. The
  // trainer's stop check starts one at the end of step k and completes it at the end of step k+1:
  //   auto pending = comm.any_async(stop_requested());         // end of step k
  //   ... step k+1 ...
  //   if (pending->get()) { checkpoint; exit 75 }              // every rank stops at the same step
  //   pending = comm.any_async(stop_requested());
  // A signal thus stops every rank at the same step boundary, at most two steps later.
  std::shared_ptr<Agreement> any_async(bool flag) { return agree_async(flag ? 1 : 0, AgreeOp::kMax); }
  std::shared_ptr<Agreement> all_async(bool flag) { return agree_async(flag ? 1 : 0, AgreeOp::kMin); }

  enum class AgreeOp { kMax, kMin };
  // The maximum (or minimum) of `value` over every rank. MPI and NCCL: one small non-blocking
  // reduction on the control communicator (O(log W) messages per rank); world-of-one: immediate.
  virtual std::shared_ptr<Agreement> agree_async(int64_t value, AgreeOp how) = 0;
};

struct CommOptions {
  torch::Device device = torch::kCPU;  // where the gradients live: a CUDA device selects NCCL under "auto"
  double timeout_s = 600;              // dist.timeout_s: longest wait in one collective before the job ends (exit 6)
};

// backend: "auto" | "mpi" | "nccl" (the value of dist.backend). "auto" is world-of-one when MPI is not
// initialised or the world has one rank, else NCCL for a CUDA device when built with it, else MPI.
// MPI on a CUDA device stages each collective through host memory (one host synchronisation per
// bucket; staged_communicator.cpp). Unknown names and "nccl" in a build without NCCL or on a CPU device
// throw UsageError("dist.backend: ..."). "mpi" needs a live MpiRuntime.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const CommOptions& options = {});

// The world-of-one backend directly (unit tests, tools).
std::unique_ptr<Communicator> make_world_of_one(const DistContext& ctx = {});

// Whether this build has the NCCL backend (CMake found CUDA LibTorch and NCCL).
bool nccl_built();

}  // namespace gantry
