// A tiny MPI program the fault tests run under their own mpiexec, because each scenario ends the job:
//   dist_fault_helper late TIMEOUT_S         ranks >= 1 sleep before the second collective
//   dist_fault_helper late-root TIMEOUT_S    rank 0 sleeps before the second collective
//   dist_fault_helper kill TIMEOUT_S         rank 1 SIGKILLs itself; the others wait in an all-reduce
//   dist_fault_helper exit TIMEOUT_S         rank 1 _exit(0)s without MPI_Finalize; the others wait
//   dist_fault_helper stop TIMEOUT_S         rank 1 SIGSTOPs itself before the second collective
//   dist_fault_helper stop-inside TIMEOUT_S  rank 1 SIGSTOPs itself while every rank runs 64 MiB
//                                            all-reduces (inside MPI_Allreduce, most likely)
//   dist_fault_helper stop-agree TIMEOUT_S   rank 1 SIGSTOPs itself; the others wait for an agreement
//   dist_fault_helper mismatch TIMEOUT_S     rank 0 issues a barrier, the others an all-reduce
//   dist_fault_helper watchdog TIMEOUT_S     the NCCL backend's watchdog alone: ranks >= 1 never start
//                                            collective #1
//   dist_fault_helper finish-after-loss TIMEOUT_S
//                                            a watchdog alone: rank 1 SIGSTOPs itself; rank 0's
//                                            collective #1 "completes" just after rank 0 has declared
//                                            the job lost (as when a late or resumed peer arrives)
// Started as `gantry train MODE ...` (a link named gantry, for launch/mpirun.sh) it skips "train".
// A third argument is ignored: the tests pass a unique tag to find leftover processes by it.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include "dist/communicator.h"
#include "dist/mpi_runtime.h"
#include "dist/watchdog.h"

int main(int argc, char** argv) {
  gantry::MpiRuntime mpi(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "train") ++argv, --argc;  // run as `gantry train` by launch/mpirun.sh
  const std::string mode = argc > 1 ? argv[1] : "";
  gantry::CommOptions options;
  options.timeout_s = argc > 2 ? std::stod(argv[2]) : 2;
  if (mode == "watchdog") {
    using gantry::dist_detail::CollectiveKind;
    gantry::dist_detail::Watchdog watchdog(MPI_COMM_WORLD, mpi.context(), options.timeout_s, "nccl");
    watchdog.start(0, CollectiveKind::kAllReduce, 4096);
    watchdog.finish(0);
    if (mpi.context().rank == 0) watchdog.start(1, CollectiveKind::kBroadcast, 128);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  if (mode == "finish-after-loss") {
    using gantry::dist_detail::CollectiveKind;
    gantry::dist_detail::Watchdog watchdog(MPI_COMM_WORLD, mpi.context(), options.timeout_s, "mpi");
    const int rank = mpi.context().rank;
    std::printf("rank %d: up at %.3f\n", rank,
                std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    std::fflush(stdout);
    if (rank == 1) std::raise(SIGSTOP);
    watchdog.start(1, CollectiveKind::kAgree, 8);
    while (!gantry::dist_detail::job_ending()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    watchdog.finish(1);  // must not return: the loss is declared
    std::printf("rank %d: carried on past a declared loss\n", rank);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  auto comm = gantry::make_communicator("mpi", options);
  const int rank = comm->rank();
  torch::Tensor x = torch::ones({1000});
  comm->all_reduce(x, gantry::ReduceOp::kSum);  // collective #0: everyone is up
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::printf("rank %d: up at %.3f\n", rank, now);  // the tests time the end of the job from here
  std::fflush(stdout);
  try {
    const bool sleeper = (mode == "late" && rank >= 1) || (mode == "late-root" && rank == 0);
    if (sleeper) std::this_thread::sleep_for(std::chrono::seconds(60));
    if (mode == "kill" && rank == 1) std::raise(SIGKILL);
    if (mode == "exit" && rank == 1) ::_exit(0);
    if ((mode == "stop" || mode == "stop-agree") && rank == 1) std::raise(SIGSTOP);
    if (mode == "stop-agree") {
      auto pending = comm->any_async(false);  // collective #1
      std::printf("rank %d: agreed %d\n", rank, static_cast<int>(pending->get()));
    } else if (mode == "stop-inside") {
      if (rank == 1)
        std::thread([] {
          std::this_thread::sleep_for(std::chrono::milliseconds(700));
          ::kill(::getpid(), SIGSTOP);
        }).detach();
      torch::Tensor big = torch::ones({16 << 20});
      for (int i = 0; i < 1000; ++i) comm->all_reduce(big, gantry::ReduceOp::kSum);
    } else if (mode == "mismatch" && rank == 0) {
      comm->barrier();  // collective #1
    } else {
      comm->all_reduce(x, gantry::ReduceOp::kSum);  // collective #1
    }
  } catch (const std::exception& e) {
    std::printf("rank %d: error: %s\n", rank, e.what());
    return 1;
  }
  std::printf("rank %d: finished without an error\n", rank);
  return 0;
}
