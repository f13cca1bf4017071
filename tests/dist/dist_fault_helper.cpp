// A tiny MPI program the fault tests run under their own mpiexec, because each scenario ends the job:
//   dist_fault_helper late TIMEOUT_S       ranks >= 1 sleep before the second collective
//   dist_fault_helper late-root TIMEOUT_S  rank 0 sleeps before the second collective
//   dist_fault_helper kill TIMEOUT_S       rank 1 SIGKILLs itself; the others wait in an all-reduce
//   dist_fault_helper monitor TIMEOUT_S    the NCCL backend's watchdog (ArrivalMonitor) alone: ranks >= 1
//                                          never report collective #1
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "dist/arrival_monitor.h"
#include "dist/communicator.h"
#include "dist/mpi_runtime.h"

int main(int argc, char** argv) {
  gantry::MpiRuntime mpi(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  gantry::CommOptions options;
  options.timeout_s = argc > 2 ? std::stod(argv[2]) : 2;
  if (mode == "monitor") {
    using gantry::dist_detail::CollectiveKind;
    gantry::dist_detail::ArrivalMonitor monitor(MPI_COMM_WORLD, mpi.context(), options.timeout_s, "nccl");
    monitor.arrive(0, CollectiveKind::kAllReduce, 4096);
    monitor.depart(0);
    if (mpi.context().rank == 0) {
      monitor.arrive(1, CollectiveKind::kBroadcast, 128);
    }
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  auto comm = gantry::make_communicator("mpi", options);
  const int rank = comm->rank();
  torch::Tensor x = torch::ones({1000});
  comm->all_reduce(x, gantry::ReduceOp::kSum);  // collective #0: everyone is up
  std::printf("rank %d: up\n", rank);
  std::fflush(stdout);
  const bool sleeper = (mode == "late" && rank >= 1) || (mode == "late-root" && rank == 0);
  if (sleeper) std::this_thread::sleep_for(std::chrono::seconds(60));
  if (mode == "kill" && rank == 1) std::raise(SIGKILL);
  comm->all_reduce(x, gantry::ReduceOp::kSum);  // collective #1
  std::printf("rank %d: finished without an error\n", rank);
  return 0;
}
