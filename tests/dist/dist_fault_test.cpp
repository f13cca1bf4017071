// Failure behaviour under a real mpiexec (each scenario ends its job, so each runs in a child job):
// a late rank is named by rank 0 within the timeout, and a rank killed with SIGKILL ends the whole job
// with a non-zero status in bounded time (nothing of ours keeps the survivors alive).
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "support/testing.h"

namespace gantry {
namespace {

struct Outcome {
  testing::CommandResult result;
  double seconds;
};

Outcome run_job(int ranks, const std::string& args) {
  const auto start = std::chrono::steady_clock::now();
  // The environment is spelled out: mpiexec refuses root without it, and gantry_unit_test passes
  // only the first of GANTRY_TEST_ENV's variables.
  const std::string cmd = "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " +
                          std::string(MPIEXEC) + " --oversubscribe -n " + std::to_string(ranks) + " " +
                          DIST_FAULT_HELPER + " " + args;
  Outcome o{testing::run_command(cmd), 0};
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return o;
}

TEST(DistFault, LateRanksAreNamedAndTheJobAborts) {
  const Outcome o = run_job(3, "late 1");
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 30) << o.result.output;  // the sleepers would take 60 s
  EXPECT_NE(o.result.output.find("gantry: error: dist: mpi collective #1 (all_reduce"), std::string::npos)
      << o.result.output;
  EXPECT_NE(o.result.output.find("ranks 1 (last started #0), 2 (last started #0) never arrived"), std::string::npos)
      << o.result.output;
  EXPECT_EQ(o.result.output.find("finished without an error"), std::string::npos) << o.result.output;
}

TEST(DistFault, LateRootIsNamed) {
  const Outcome o = run_job(2, "late-root 1");
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 30) << o.result.output;
  EXPECT_NE(o.result.output.find("rank 0 (last started #0) never arrived"), std::string::npos) << o.result.output;
}

// The NCCL backend's watchdog, exercised without NCCL: rank 0 collects arrivals and names the rest.
TEST(DistFault, ArrivalMonitorNamesRanksThatNeverIssuedTheCollective) {
  const Outcome o = run_job(3, "monitor 1");
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 30) << o.result.output;
  EXPECT_NE(o.result.output.find("gantry: error: dist: nccl collective #1 (broadcast, 128 bytes) waited"),
            std::string::npos)
      << o.result.output;
  EXPECT_NE(o.result.output.find("ranks 1 (last started #0), 2 (last started #0) never arrived"), std::string::npos)
      << o.result.output;
}

TEST(DistFault, KilledRankEndsTheJob) {
  // A long timeout: ending the job is mpirun's doing, and nothing of ours may block it.
  const Outcome o = run_job(2, "kill 300");
  EXPECT_NE(o.result.output.find("rank 0: up"), std::string::npos) << o.result.output;  // the job did run
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 30) << o.result.output;
  EXPECT_EQ(o.result.output.find("finished without an error"), std::string::npos) << o.result.output;
}

}  // namespace
}  // namespace gantry
