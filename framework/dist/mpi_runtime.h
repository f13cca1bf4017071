// MpiRuntime: MPI_Init_thread / MPI_Finalize as an object the launcher creates first thing in main.
// It asks for MPI_THREAD_MULTIPLE (the MPI backend runs collectives on a communication thread while
// other threads may call MPI; the NCCL backend's watchdog listens on a control communicator). A process started without
// mpirun becomes a world of one (Open MPI singleton init). If MPI is already initialised (the MPI test main), the
// object only reads the topology and leaves finalisation to whoever initialised it.
#pragma once

#include "dist/dist_context.h"

namespace gantry {

class MpiRuntime {
 public:
  MpiRuntime(int& argc, char**& argv);
  ~MpiRuntime();  // MPI_Finalize, when this object initialised MPI
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  const DistContext& context() const { return ctx_; }
  // The thread level MPI granted (MPI_THREAD_SINGLE .. MPI_THREAD_MULTIPLE).
  int thread_level() const { return thread_level_; }

  // Ends the whole job now with `exit_code` (MPI_Abort): for an error seen by some ranks only, which
  // would otherwise leave the others waiting in a collective until the timeout.
  [[noreturn]] void abort(int exit_code);

 private:
  bool owns_ = false;
  int thread_level_ = 0;
  DistContext ctx_;
};

bool mpi_initialized();  // MPI_Init done and MPI_Finalize not yet
// Rank, world and node-local rank/size from MPI_COMM_WORLD (local: MPI_Comm_split_type SHARED).
// A world of one when MPI is not initialised.
DistContext discover_context();

}  // namespace gantry
