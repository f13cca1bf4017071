// Failure behaviour under a real mpiexec (each scenario ends its job, so each runs in a child job).
// The contract (ARCHITECTURE.md, dist.timeout_s): whether a peer is late, dies, stops (SIGSTOP) or
// hangs, before or inside a collective or an agreement, the job ends within dist.timeout_s + 10 s of
// the hang, one line names every missing rank and the collective, the exit code is 6, and no process
// is left running. Ranks that issue different collectives get an error instead.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "support/testing.h"

namespace gantry {
namespace {

constexpr double kTimeout = 2;            // dist.timeout_s of the helper's communicator
constexpr double kBound = kTimeout + 10;  // the contract

struct Outcome {
  testing::CommandResult result;
  double after_up = -1;  // seconds from the last rank's "up" to the end of the job (-1: no rank came up)
  bool leftovers = false;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The latest "rank R: up at T" in the output.
double last_up(const std::string& out) {
  double latest = -1;
  for (size_t at = out.find(": up at "); at != std::string::npos; at = out.find(": up at ", at + 1))
    latest = std::max(latest, std::atof(out.c_str() + at + 8));
  return latest;
}

// `launcher`: the command that starts `ranks` ranks of the helper (plain mpiexec unless given).
Outcome run_job(int ranks, const std::string& mode, const std::string& launcher = "") {
  const std::string tag = "fault-" + std::to_string(std::random_device{}());
  // The environment is spelled out: mpiexec refuses root without it, and gantry_unit_test passes
  // only the first of GANTRY_TEST_ENV's variables. `timeout` keeps a broken case from hanging ctest.
  const std::string env = "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 ";
  const std::string start =
      launcher.empty() ? std::string(MPIEXEC) + " --oversubscribe -n " + std::to_string(ranks) + " " + DIST_FAULT_HELPER
                       : launcher;
  const std::string cmd = env + "timeout -k 5 120 " + start + " " + mode + " " + std::to_string(kTimeout) + " " + tag;
  Outcome o{testing::run_command(cmd), -1, false};
  const double end = now_s(), up = last_up(o.result.output);
  if (up > 0) o.after_up = end - up;
  // Nothing of the job may outlive it (a stopped rank included); give the kernel a moment to reap.
  // "[f]ault-N" matches the tag but not the shell command line that carries this pattern.
  const std::string pattern = "[f]" + tag.substr(1);
  for (int i = 0; i < 20; ++i) {
    o.leftovers = testing::run_command("pgrep -f '" + pattern + "' > /dev/null").exit_code == 0;
    if (!o.leftovers) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (o.leftovers)  // this job's processes only, by id
    testing::run_command("pgrep -f '" + pattern + "' | xargs -r kill -KILL");
  return o;
}

bool has(const Outcome& o, const std::string& text) {
  return o.result.output.find(text) != std::string::npos;
}

// Exit 6 within the bound, nothing left running, the one line naming `missing`, and no rank carried on
// as if nothing happened. `resumed`: a SIGSTOPped rank, which mpirun's kill sequence (SIGCONT, then
// SIGTERM) may let run for a moment: it can find its collective complete (the others had issued it)
// and finish before SIGTERM lands. Every other rank declared the loss and must go no further.
void expect_lost(const Outcome& o, const std::string& collective, const std::string& missing, int ranks,
                 int resumed = -1) {
  EXPECT_EQ(o.result.exit_code, 6) << o.result.output;
  EXPECT_GE(o.after_up, 0) << o.result.output;
  EXPECT_LT(o.after_up, kBound) << o.result.output;
  EXPECT_FALSE(o.leftovers) << o.result.output;
  EXPECT_TRUE(has(o, "gantry: error: dist: " + collective)) << o.result.output;
  EXPECT_TRUE(has(o, missing + " never arrived; a rank was lost or hung; resume with --resume auto"))
      << o.result.output;
  for (int r = 0; r < ranks; ++r) {
    if (r == resumed) continue;
    EXPECT_FALSE(has(o, "rank " + std::to_string(r) + ": finished without an error")) << o.result.output;
  }
}

const std::string kNoAnswer = "(no answer: stopped, dead or unreachable)";

TEST(DistFault, LateRanksAreNamedAndTheJobEnds) {
  const Outcome o = run_job(3, "late");
  expect_lost(o, "mpi collective #1 (all_reduce", "ranks 1 (last started #0), 2 (last started #0)", 3);
}

TEST(DistFault, LateRootIsNamed) {
  expect_lost(run_job(2, "late-root"), "mpi collective #1 (all_reduce", "rank 0 (last started #0)", 2);
}

// The NCCL backend's watchdog, exercised without NCCL: ranks that never issued the collective.
TEST(DistFault, WatchdogNamesRanksThatNeverIssuedTheCollective) {
  const Outcome o = run_job(3, "watchdog");
  EXPECT_EQ(o.result.exit_code, 6) << o.result.output;
  EXPECT_FALSE(o.leftovers) << o.result.output;
  EXPECT_TRUE(has(o, "gantry: error: dist: nccl collective #1 (broadcast, 128 bytes) waited")) << o.result.output;
  EXPECT_TRUE(has(o, "ranks 1 (last started #0), 2 (last started #0) never arrived")) << o.result.output;
}

TEST(DistFault, StoppedRankIsNamedAndTheJobEnds) {
  expect_lost(run_job(3, "stop"), "mpi collective #1 (all_reduce", "rank 1 " + kNoAnswer, 3, /*resumed=*/1);
}

TEST(DistFault, RankStoppedInsideACollectiveIsNamed) {
  const Outcome o = run_job(2, "stop-inside");
  EXPECT_TRUE(has(o, "(all_reduce, 64.0 MiB)")) << o.result.output;
  expect_lost(o, "mpi collective #", "rank 1 " + kNoAnswer, 2, /*resumed=*/1);
}

TEST(DistFault, RankStoppedBeforeAnAgreementIsNamed) {
  expect_lost(run_job(2, "stop-agree"), "mpi collective #1 (agreement", "rank 1 " + kNoAnswer, 2, /*resumed=*/1);
}

// A collective that completes after this rank has declared the job lost (a peer arriving a moment too
// late, or resumed by mpirun's SIGCONT) must not let the rank carry on while the job is being ended.
TEST(DistFault, CollectiveCompletingAfterTheLossIsDeclaredGoesNoFurther) {
  const Outcome o = run_job(2, "finish-after-loss");
  EXPECT_EQ(o.result.exit_code, 6) << o.result.output;
  EXPECT_TRUE(has(o, "rank 1 " + kNoAnswer + " never arrived")) << o.result.output;
  EXPECT_FALSE(has(o, "carried on past a declared loss")) << o.result.output;
  EXPECT_FALSE(o.leftovers) << o.result.output;
}

// One line from one rank: the others stay quiet.
TEST(DistFault, OneRankSpeaks) {
  const Outcome o = run_job(4, "stop");
  const std::string& out = o.result.output;
  const size_t first = out.find("gantry: error:");
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_EQ(out.find("gantry: error:", first + 1), std::string::npos) << out;
  EXPECT_EQ(o.result.exit_code, 6) << out;
}

TEST(DistFault, KilledRankEndsTheJob) {
  const Outcome o = run_job(2, "kill");
  EXPECT_TRUE(has(o, "rank 0: up")) << o.result.output;  // the job did run
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.after_up, kBound) << o.result.output;
  EXPECT_FALSE(o.leftovers) << o.result.output;
  EXPECT_FALSE(has(o, "finished without an error")) << o.result.output;
}

TEST(DistFault, RankThatExitsEarlyEndsTheJob) {
  const Outcome o = run_job(2, "exit");
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.after_up, kBound) << o.result.output;
  EXPECT_FALSE(o.leftovers) << o.result.output;
  EXPECT_FALSE(has(o, "rank 0: finished without an error")) << o.result.output;
}

TEST(DistFault, MismatchedCollectivesAreAnErrorOnEveryRank) {
  const Outcome o = run_job(3, "mismatch");
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_NE(o.result.exit_code, 6) << o.result.output;  // a bug, not a lost rank
  for (int r = 0; r < 3; ++r)
    EXPECT_TRUE(has(o, "rank " + std::to_string(r) + ": error: dist: ranks issued different collectives"))
        << o.result.output;
  EXPECT_TRUE(has(o, "#1 (barrier)")) << o.result.output;
  EXPECT_TRUE(has(o, "#1 (all_reduce)")) << o.result.output;
}

// launch/mpirun.sh: a rank killed by a signal is a lost rank (6), like the watchdog's verdict.
TEST(MpirunScript, KilledRankExitsSix) {
  testing::ScratchDir dir("mpirun-sh");
  ASSERT_EQ(testing::run_command("ln -s " + std::string(DIST_FAULT_HELPER) + " " + (dir / "gantry")).exit_code, 0);
  const std::string script = std::string(GANTRY_SOURCE_DIR) + "/launch/mpirun.sh";
  const Outcome killed = run_job(2, "kill", "env GANTRY_BUILD_DIR=" + dir.path() + " " + script + " 2");
  EXPECT_EQ(killed.result.exit_code, 6) << killed.result.output;
  EXPECT_FALSE(killed.leftovers) << killed.result.output;
  const Outcome stopped = run_job(2, "stop", "env GANTRY_BUILD_DIR=" + dir.path() + " " + script + " 2");
  EXPECT_EQ(stopped.result.exit_code, 6) << stopped.result.output;
  EXPECT_TRUE(has(stopped, "rank 1 " + kNoAnswer)) << stopped.result.output;
}

// launch/mpirun.sh ends an mpirun that outlives every rank on this host (as when it waits forever on
// a host it cannot reach). The stand-in mpirun starts its "rank", then never exits.
TEST(MpirunScript, EndsAnMpirunThatOutlivesItsRanks) {
  testing::ScratchDir dir("mpirun-sh");
  testing::write_bytes(dir / "gantry", "#!/bin/sh\nsleep 1\nexit 6\n");
  testing::write_bytes(
      dir / "mpirun",
      "#!/bin/bash\nwhile [ \"$1\" != -n ]; do shift; done; shift 2\n\"$@\" &\nwait\nwhile :; do sleep 0.2; done\n");
  ASSERT_EQ(testing::run_command("chmod +x " + (dir / "gantry") + " " + (dir / "mpirun")).exit_code, 0);
  const std::string script = std::string(GANTRY_SOURCE_DIR) + "/launch/mpirun.sh";
  const Outcome o = run_job(1, "late",
                            "env GANTRY_BUILD_DIR=" + dir.path() + " GANTRY_MPIRUN=" + (dir / "mpirun") +
                                " GANTRY_MPIRUN_GRACE_S=2 " + script + " 1");
  EXPECT_EQ(o.result.exit_code, 6) << o.result.output;
  EXPECT_TRUE(has(o, "every rank on this host has exited but mpirun is still running")) << o.result.output;
  EXPECT_FALSE(o.leftovers) << o.result.output;  // the stand-in mpirun (its command line has the tag) is gone
}

}  // namespace
}  // namespace gantry
