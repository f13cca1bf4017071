// ArrivalMonitor: how a collective that waits too long ends the job instead of hanging silently.
// Each rank reports "I have started collective #k" (arrive) and "finished it" (depart); #k counts the
// collectives of one backend in issue order, which every rank shares. Non-root ranks send their
// arrivals as tiny messages to rank 0 over a duplicated control communicator; rank 0's monitor thread
// collects them, so it knows at any time which ranks have not reached collective #k. When #k has been
// open for longer than timeout_s, rank 0 prints one line naming those ranks and calls MPI_Abort.
// Other ranks keep only a fallback: if their own collective is still open after timeout + grace (rank 0
// itself stuck), they abort with their own line. Internal to framework/dist.
#pragma once

#include <mpi.h>

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

// The pieces of the one-line timeout error, shared with Rendezvous:
// "mpi collective #12 (all_reduce, 4.0 MiB) waited 5.2 s (dist.timeout_s = 5 s)"
std::string describe_wait(const std::string& channel, int64_t seq, CollectiveKind kind, int64_t bytes, double waited,
                          double timeout_s);
// "ranks 1 (last started #11), 2 (no collective started yet)" for the ranks with missing[r].
std::string describe_missing(const std::vector<int64_t>& last_started, const std::vector<bool>& missing);
// Prints "gantry: error: <line>" and ends the whole job (MPI_Abort, exit code 1).
[[noreturn]] void abort_job(const std::string& line);

class ArrivalMonitor {
 public:
  // Collective over `parent` (duplicates it). `channel` names the backend in messages ("mpi", "nccl").
  ArrivalMonitor(MPI_Comm parent, const DistContext& ctx, double timeout_s, std::string channel);
  ~ArrivalMonitor();
  ArrivalMonitor(const ArrivalMonitor&) = delete;
  ArrivalMonitor& operator=(const ArrivalMonitor&) = delete;

  // This rank starts collective `seq` (0, 1, 2, ... without gaps) moving `bytes` bytes.
  void arrive(int64_t seq, CollectiveKind kind, int64_t bytes);
  // This rank has finished collective `seq`.
  void depart(int64_t seq);

  double timeout_s() const { return timeout_s_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Opened {  // a collective some rank has reached and not every rank has
    Clock::time_point since;
    CollectiveKind kind;
    int64_t bytes;
  };
  struct Outgoing {  // an arrival message in flight to rank 0
    int64_t message[3];
    MPI_Request request;
  };

  void root_loop();
  void peer_loop();
  void record_arrival(int from, int64_t seq, CollectiveKind kind, int64_t bytes);  // rank 0, mutex held
  std::string missing_report(int64_t seq, const Opened& opened) const;             // rank 0, mutex held
  void send_to_root(int64_t seq, CollectiveKind kind, int64_t bytes);              // non-root ranks

  DistContext ctx_;
  double timeout_s_;
  std::string channel_;
  MPI_Comm control_ = MPI_COMM_NULL;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  // Rank 0: the highest collective each rank has started, and the collectives still waiting for someone.
  std::vector<int64_t> arrived_;
  std::map<int64_t, Opened> opened_;
  int byes_ = 0;
  // Every rank: its own open collective (for the fallback).
  int64_t own_seq_ = -1;
  bool own_open_ = false;
  Clock::time_point own_since_;
  CollectiveKind own_kind_ = CollectiveKind::kAllReduce;
  int64_t own_bytes_ = 0;

  std::mutex send_mutex_;
  std::deque<Outgoing> outgoing_;
  std::thread thread_;
};

}  // namespace gantry::dist_detail
