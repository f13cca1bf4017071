// DistContext: who this process is in the job — a plain value handed to whoever needs it (never a
// global), so a test can build "rank 3 of 4" in one process. MpiRuntime::context() fills it from MPI;
// a run without mpirun is the default value, a world of one.
#pragma once

namespace gantry {

struct DistContext {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among the processes on this node
  int local_size = 1;  // processes on this node

  bool is_root() const { return rank == 0; }
};

// LibTorch intra-op threads for one rank: `override_threads` when > 0 (train.threads), otherwise
// max(1, hardware_cores / local_size) so the ranks of a node share its cores. The caller applies it
// (at::set_num_threads); hardware_cores == 0 means this machine's.
int intra_op_threads(const DistContext& ctx, int override_threads, unsigned hardware_cores = 0);

}  // namespace gantry
