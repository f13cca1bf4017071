// Watchdog: how a collective that never completes ends the job — with one line naming the ranks that
// are missing and exit code 6 — instead of hanging forever. One per backend channel (the MPI backend's
// collectives, the NCCL backend's), on every rank; it replaces the old ArrivalMonitor, which sent
// every rank's every arrival to rank 0 (W-1 messages into one rank per collective).
//
// Steady state is purely local: the backend marks "collective #k (kind, bytes) started" and
// "finished" (MPI: around the rendezvous and the blocking call, so both the wait before a collective
// and the collective itself are timed; NCCL: at launch, and when the CUDA event recorded after it has
// completed). A thread wakes every 50 ms, looks at the oldest open collective and answers probes from
// other ranks (one MPI_Iprobe per tick: no messages unless something is wrong).
//
// Failure path, only when a collective has been open longer than timeout_s: the thread asks every
// rank "where are you?" over its own duplicated communicator and listens ~1.5 s. Ranks that do not
// answer are named "no answer: stopped, dead or unreachable"; ranks that answer but never started the
// collective are named with the last one they started. The lowest-numbered rank that is itself
// waiting prints the one line; the others stay quiet unless it fails to end the job. Then the job
// ends: MPI_Abort(MPI_COMM_WORLD, 6), and a detached timer calls _exit(6) a few seconds later in case
// MPI_Abort blocks (it can, when mpirun cannot reach a host). The probe costs O(W) small messages per
// prober, once, while the job is ending anyway: fine at 512 ranks.
//
// Internal to framework/dist (its tests and benchmarks use it directly).
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/dist_context.h"

namespace gantry::dist_detail {

enum class CollectiveKind : int64_t { kAllReduce, kBroadcast, kAllGather, kBarrier, kAgree };
const char* kind_name(CollectiveKind kind);

// "mpi collective #12 (all_reduce, 4.0 MiB) waited 5.2 s (dist.timeout_s = 5 s)"
std::string describe_wait(const std::string& channel, int64_t seq, CollectiveKind kind, int64_t bytes, double waited,
                          double timeout_s);

// Prints "gantry: error: <line>" on a line of its own (after a '\n' when stderr is a terminal, where a
// progress bar may be mid-line) and ends the whole job with exit code 6 (ExitCode::kLostRank):
// MPI_Abort, and _exit after `grace_s` should MPI_Abort not return. Safe from any thread; a second
// caller blocks until the process ends.
[[noreturn]] void end_job(const std::string& line, double grace_s = 5);

// True once this process has declared the job lost (a watchdog timed out, or end_job was called). From
// then on Watchdog::finish parks its caller until the process ends: a collective that completes while
// the job is being ended (a late or resumed peer) must not let this rank carry on as if nothing
// happened — it could print success, start a step or write files while mpirun is killing the job.
bool job_ending();

class Watchdog {
 public:
  // Collective over `parent` (duplicates it). `channel` names the backend in messages ("mpi", "nccl").
  Watchdog(MPI_Comm parent, const DistContext& ctx, double timeout_s, std::string channel);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // This rank has started collective `seq` (0, 1, 2, ... in issue order, shared by every rank) moving
  // `bytes` bytes. `timed`: the clock runs from now until finish(seq); false for a non-blocking
  // agreement, whose clock starts only when someone waits for it (wait(seq)).
  void start(int64_t seq, CollectiveKind kind, int64_t bytes, bool timed = true);
  void wait(int64_t seq);  // a started, untimed collective is now being waited for: start its clock
  // Done (or failed with an error of its own): stop its clock. Parks (never returns) once job_ending().
  void finish(int64_t seq);

  double timeout_s() const { return timeout_s_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Open {
    CollectiveKind kind;
    int64_t bytes;
    bool timed;
    Clock::time_point since;
  };
  // What a rank answers to a probe: the last collective it started, and its oldest timed open one.
  struct Status {
    int64_t last_started = -1;
    int64_t open_seq = -1;  // -1: not waiting
    int64_t waited_ms = 0;  // how long it has waited for open_seq
    int64_t open_kind = 0;
  };
  struct Outgoing {
    int64_t message[4];
    MPI_Request request;
  };

  void loop();
  Status status();       // takes mutex_
  void answer_probes();  // watchdog thread only
  void send(int to, int tag, const int64_t* message, int count);
  [[noreturn]] void fail(int64_t seq, const Open& open);

  DistContext ctx_;
  double timeout_s_;
  std::string channel_;
  MPI_Comm comm_ = MPI_COMM_NULL;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int64_t last_started_ = -1;
  std::map<int64_t, Open> open_;  // by seq; a few entries at most

  std::deque<Outgoing> outgoing_;  // watchdog thread only
  std::thread thread_;             // last: starts after the rest is built
};

}  // namespace gantry::dist_detail
