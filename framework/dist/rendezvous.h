// The MPI control plane: one small non-blocking reduction per collective or agreement, polled with
// short sleeps, over a control communicator the MPI backend duplicates for it.
//
// ControlReduce is MPI_Iallreduce(MPI_MAX) of {value, key, -key} (24 bytes), key = seq * 8 + kind:
// the maximum of `value` (an agreement; a minimum is the maximum of -value), and the highest and the
// lowest key of all ranks, which differ only when ranks issued different collectives — an error
// (a bug), reported on every rank alike because every rank sees the same result. Open MPI runs a
// small Iallreduce as a binomial tree: each rank sends and receives O(log W) messages and no rank
// receives O(W) (the all-to-all rendezvous this replaces posted W-1 sends and W-1 receives per rank,
// W^2 messages per collective; experiments/benchmarks/control_plane_bench.cpp compares both).
//
// Before every blocking MPI collective the backend waits on one (the rendezvous): the collective then
// starts with everyone present, so Open MPI's busy-polling wait (which takes a core from the backward
// pass while a slower rank catches up) shrinks to the transfer itself. Waiting never times out here:
// the Watchdog (watchdog.h) times the rendezvous and the collective together and ends the job.
// Internal to framework/dist.
#pragma once

#include <mpi.h>

#include <cstdint>

#include "dist/watchdog.h"

namespace gantry::dist_detail {

class ControlReduce {
 public:
  ControlReduce() = default;
  ControlReduce(const ControlReduce&) = delete;  // MPI holds its buffers' addresses while in flight
  ControlReduce& operator=(const ControlReduce&) = delete;
  ~ControlReduce();  // completes a reduction still in flight (every rank issued it, so it completes)

  // Starts the reduction of `value` for collective `seq` of `kind` on `comm`. One at a time per object.
  void start(MPI_Comm comm, int64_t value, int64_t seq, CollectiveKind kind);
  bool started() const { return started_; }
  // Progresses it; true once complete. Throws std::logic_error when ranks issued different collectives.
  bool test();
  // test() until complete: spins 50 us, then sleeps 10, 20, ... up to 200 us between tests.
  void wait();
  int64_t max_value() const { return result_[0]; }  // valid once complete

 private:
  int64_t mine_[3] = {0, 0, 0};
  int64_t result_[3] = {0, 0, 0};
  MPI_Request request_ = MPI_REQUEST_NULL;
  int64_t seq_ = -1;
  CollectiveKind kind_ = CollectiveKind::kBarrier;
  bool started_ = false, done_ = false;
};

// "Everyone has reached collective #seq": one ControlReduce, waited for.
void rendezvous(MPI_Comm control, int64_t seq, CollectiveKind kind);

}  // namespace gantry::dist_detail
