// Rendezvous: the MPI backend's step before every collective. Each rank tells every other "I have
// reached collective #k" and waits — polling with short sleeps, not spinning — until it has heard the
// same from all. The blocking MPI collective that follows then starts with everyone present, so Open
// MPI's busy-polling wait (which takes a core from the backward pass while a slower rank catches up)
// shrinks to the transfer itself. And a rank that has waited longer than timeout_s knows exactly who
// is missing: the lowest-numbered rank that has arrived prints one line naming them and aborts the job
// (the others print too, after a grace period, should that rank be unable to). Internal to
// framework/dist; the NCCL backend, whose collectives are asynchronous on the GPU, uses
// ArrivalMonitor instead.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

#include "dist/arrival_monitor.h"
#include "dist/dist_context.h"

namespace gantry::dist_detail {

class Rendezvous {
 public:
  // Collective over `parent` (duplicates it).
  Rendezvous(MPI_Comm parent, const DistContext& ctx, double timeout_s);
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // Returns when every rank has reached collective `seq` (0, 1, 2, ... in issue order), or aborts
  // the job after timeout_s naming the ranks that have not. One thread at a time.
  void arrive_and_wait(int64_t seq, CollectiveKind kind, int64_t bytes);

 private:
  [[noreturn]] void report_and_abort(int64_t seq, CollectiveKind kind, int64_t bytes, double waited,
                                     const std::vector<bool>& arrived);

  DistContext ctx_;
  double timeout_s_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<int> peers_;          // every rank but this one
  std::vector<int64_t> last_seen_;  // per rank: the last collective it told us it reached
  std::vector<int64_t> inbox_;      // per peer
  int64_t outbox_ = 0;              // this rank's seq, sent to every peer
  std::vector<MPI_Request> receives_, sends_;
  std::vector<int> completed_;  // MPI_Testsome indices
};

}  // namespace gantry::dist_detail
