// control_plane_bench: what the MPI backend's step before every collective costs, and how it grows
// with the world. Per collective, three variants alternate in rounds (medians over rounds):
//   bare  one 8-byte MPI_Allreduce (the floor)
//   old   the all-to-all rendezvous gantry used before (copied below: W-1 Isend + W-1 Irecv per rank,
//         polled with short sleeps), then that all-reduce
//   new   the control plane now in framework/dist/rendezvous.h (one 24-byte MPI_Iallreduce, polled
//         with the same sleeps), then that all-reduce
//   new50 the same, polled with sleeps capped at 50 us instead of 200 us
// It checks first (the all-reduce sums, the new rendezvous agrees), then prints one line per world.
// `--only VARIANT --iters N` runs one variant N times and nothing else: control_plane_count.sh runs
// it under Open MPI's message monitoring (collective-internal messages included) to count the
// messages per rank per collective. (Open MPI 4.1.4's MPI_T did not expose the monitoring counters.)
//   mpirun --oversubscribe --mca mpi_yield_when_idle 1 -n W build/control_plane_bench [--iters N] [--rounds R]
// experiments/benchmarks/control_plane.sh runs W = 2..32, timing and counting.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dist/mpi_check.h"
#include "dist/rendezvous.h"

namespace {

using Clock = std::chrono::steady_clock;
using gantry::dist_detail::CollectiveKind;

// The old all-to-all rendezvous (framework/dist/rendezvous.cpp before the O(log W) control plane),
// without its timeout handling: every rank sends its seq to every other and waits for all of theirs.
class OldRendezvous {
 public:
  OldRendezvous(MPI_Comm comm, int rank, int world) : comm_(comm) {
    for (int r = 0; r < world; ++r)
      if (r != rank) peers_.push_back(r);
    inbox_.assign(peers_.size(), -1);
    receives_.assign(peers_.size(), MPI_REQUEST_NULL);
    sends_.assign(peers_.size(), MPI_REQUEST_NULL);
    completed_.assign(peers_.size(), 0);
  }
  void arrive_and_wait(int64_t seq) {
    const int n = static_cast<int>(peers_.size());
    if (n == 0) return;
    outbox_ = seq;
    for (int i = 0; i < n; ++i) {
      const auto u = static_cast<size_t>(i);
      GANTRY_MPI_CHECK(MPI_Irecv(&inbox_[u], 1, MPI_INT64_T, peers_[u], 7002, comm_, &receives_[u]));
      GANTRY_MPI_CHECK(MPI_Isend(&outbox_, 1, MPI_INT64_T, peers_[u], 7002, comm_, &sends_[u]));
    }
    const auto start = Clock::now();
    auto sleep = std::chrono::microseconds(10);
    int missing = n;
    while (missing > 0) {
      int count = 0;
      GANTRY_MPI_CHECK(MPI_Testsome(n, receives_.data(), &count, completed_.data(), MPI_STATUSES_IGNORE));
      if (count == MPI_UNDEFINED) count = 0;
      for (int c = 0; c < count; ++c)
        if (inbox_[static_cast<size_t>(completed_[static_cast<size_t>(c)])] != seq)
          throw std::runtime_error("old rendezvous: sequence mismatch");
      missing -= count;
      if (missing == 0 || count > 0) continue;
      if (Clock::now() - start < std::chrono::microseconds(50)) continue;
      std::this_thread::sleep_for(sleep);
      sleep = std::min(std::chrono::microseconds(200), sleep * 2);
    }
    GANTRY_MPI_CHECK(MPI_Waitall(n, sends_.data(), MPI_STATUSES_IGNORE));
  }

 private:
  MPI_Comm comm_;
  std::vector<int> peers_;
  std::vector<int64_t> inbox_;
  int64_t outbox_ = 0;
  std::vector<MPI_Request> receives_, sends_;
  std::vector<int> completed_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int iters = 200, rounds = 9;
  int only = -1;  // --only bare|old|new|new50: run that variant `iters` times, no timing
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
      ++i;
      only = !std::strcmp(argv[i], "bare")    ? 0
             : !std::strcmp(argv[i], "old")   ? 1
             : !std::strcmp(argv[i], "new")   ? 2
             : !std::strcmp(argv[i], "new50") ? 3
                                              : -2;
    }
  }
  if (only == -2) {
    std::fprintf(stderr, "control_plane_bench: --only bare|old|new|new50\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Comm data, control, old_comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &data);
  MPI_Comm_dup(MPI_COMM_WORLD, &control);
  MPI_Comm_dup(MPI_COMM_WORLD, &old_comm);
  OldRendezvous old(old_comm, rank, world);
  int64_t seq = 0, old_seq = 0;
  int64_t checksum = 0;
  auto reduce8 = [&] {
    int64_t x = rank + 1, sum = 0;
    MPI_Allreduce(&x, &sum, 1, MPI_INT64_T, MPI_SUM, data);
    checksum += sum;
  };
  const char* names[4] = {"bare", "old", "new", "new50"};
  // new50: the same reduction polled with sleeps capped at 50 us instead of 200 (an experiment: each
  // of its log2 W rounds waits for the partner's next poll, so the cap sets the latency).
  auto rendezvous50 = [&](int64_t s) {
    gantry::dist_detail::ControlReduce r;
    r.start(control, 0, s, CollectiveKind::kAllReduce);
    const auto t0 = Clock::now();
    auto sleep = std::chrono::microseconds(10);
    while (!r.test()) {
      if (Clock::now() - t0 < std::chrono::microseconds(50)) continue;
      std::this_thread::sleep_for(sleep);
      sleep = std::min(std::chrono::microseconds(50), sleep * 2);
    }
  };
  auto run = [&](int variant) {
    if (variant == 1) old.arrive_and_wait(old_seq++);
    if (variant == 2) gantry::dist_detail::rendezvous(control, seq++, CollectiveKind::kAllReduce);
    if (variant == 3) rendezvous50(seq++);
    reduce8();
  };

  // Check first: every variant sums correctly (and the new rendezvous agrees on its sequence).
  for (int v = 0; v < 4; ++v) {
    checksum = 0;
    run(v);
    if (checksum != int64_t{world} * (world + 1) / 2) {
      std::fprintf(stderr, "control_plane_bench: %s: wrong sum %lld\n", names[v], static_cast<long long>(checksum));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }

  if (only >= 0) {  // counting (control_plane_count.sh): just this variant, `iters` times
    for (int i = 0; i < iters; ++i) run(only);
  } else {
    std::vector<double> us[4];
    for (int round = 0; round < rounds; ++round) {
      for (int k = 0; k < 4; ++k) {
        const int v = (round + k) % 4;  // rotate which variant goes first
        MPI_Barrier(MPI_COMM_WORLD);
        const auto t0 = Clock::now();
        for (int i = 0; i < iters; ++i) run(v);
        double per = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / iters, slowest = 0;
        MPI_Allreduce(&per, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        us[v].push_back(slowest);
      }
    }
    if (rank == 0) {
      const double bare = median(us[0]), o = median(us[1]), n = median(us[2]), n50 = median(us[3]);
      std::printf(
          "W=%-3d per collective (median of %d rounds x %d): bare 8-byte allreduce %.1f us | old rendezvous + "
          "allreduce %.1f us (control plane %+.1f us) | new %.1f us (control plane %+.1f us) | new, 50 us poll cap "
          "%.1f us "
          "(%+.1f us)\n",
          world, rounds, iters, bare, o, o - bare, n, n - bare, n50, n50 - bare);
    }
  }
  MPI_Comm_free(&old_comm);
  MPI_Comm_free(&control);
  MPI_Comm_free(&data);
  MPI_Finalize();
  return 0;
}
