#include "dist/rendezvous.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "dist/mpi_check.h"

namespace gantry::dist_detail {

namespace {

constexpr int kTag = 7002;
using Clock = std::chrono::steady_clock;
constexpr auto kSpin = std::chrono::microseconds(50);       // poll without sleeping this long first
constexpr auto kMaxSleep = std::chrono::microseconds(200);  // then sleep, doubling up to this

}  // namespace

Rendezvous::Rendezvous(MPI_Comm parent, const DistContext& ctx, double timeout_s)
    : ctx_(ctx), timeout_s_(timeout_s), last_seen_(static_cast<size_t>(ctx.world_size), -1) {
  GANTRY_MPI_CHECK(MPI_Comm_dup(parent, &comm_));
  GANTRY_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  for (int r = 0; r < ctx_.world_size; ++r)
    if (r != ctx_.rank) peers_.push_back(r);
  inbox_.assign(peers_.size(), -1);
  receives_.assign(peers_.size(), MPI_REQUEST_NULL);
  sends_.assign(peers_.size(), MPI_REQUEST_NULL);
  completed_.assign(peers_.size(), 0);
}

Rendezvous::~Rendezvous() {
  if (comm_ != MPI_COMM_NULL) GANTRY_MPI_CHECK_NOTHROW(MPI_Comm_free(&comm_));
}

void Rendezvous::arrive_and_wait(int64_t seq, CollectiveKind kind, int64_t bytes) {
  const int n = static_cast<int>(peers_.size());
  if (n == 0) return;
  last_seen_[static_cast<size_t>(ctx_.rank)] = seq;
  outbox_ = seq;
  for (int i = 0; i < n; ++i) {
    GANTRY_MPI_CHECK(MPI_Irecv(&inbox_[static_cast<size_t>(i)], 1, MPI_INT64_T, peers_[static_cast<size_t>(i)], kTag,
                               comm_, &receives_[static_cast<size_t>(i)]));
    GANTRY_MPI_CHECK(MPI_Isend(&outbox_, 1, MPI_INT64_T, peers_[static_cast<size_t>(i)], kTag, comm_,
                               &sends_[static_cast<size_t>(i)]));
  }
  const auto start = Clock::now();
  auto sleep = std::chrono::microseconds(10);
  int missing = n;
  while (missing > 0) {
    int count = 0;
    GANTRY_MPI_CHECK(MPI_Testsome(n, receives_.data(), &count, completed_.data(), MPI_STATUSES_IGNORE));
    if (count == MPI_UNDEFINED) count = 0;
    for (int c = 0; c < count; ++c) {
      const size_t i = static_cast<size_t>(completed_[static_cast<size_t>(c)]);
      // Messages between two ranks arrive in order, and both number their collectives alike.
      if (inbox_[i] != seq)
        throw std::runtime_error("dist: rank " + std::to_string(peers_[i]) + " announced collective #" +
                                 std::to_string(inbox_[i]) + " while this rank is at #" + std::to_string(seq));
      last_seen_[static_cast<size_t>(peers_[i])] = seq;
    }
    missing -= count;
    if (missing == 0 || count > 0) continue;
    const auto waited = Clock::now() - start;
    if (waited < kSpin) continue;
    const double seconds = std::chrono::duration<double>(waited).count();
    if (seconds > timeout_s_) {
      std::vector<bool> arrived(static_cast<size_t>(ctx_.world_size), false);
      for (int r = 0; r < ctx_.world_size; ++r)
        arrived[static_cast<size_t>(r)] = last_seen_[static_cast<size_t>(r)] >= seq;
      report_and_abort(seq, kind, bytes, seconds, arrived);
    }
    std::this_thread::sleep_for(sleep);
    sleep = std::min(kMaxSleep, sleep * 2);
  }
  GANTRY_MPI_CHECK(MPI_Waitall(n, sends_.data(), MPI_STATUSES_IGNORE));  // tiny: already gone
}

void Rendezvous::report_and_abort(int64_t seq, CollectiveKind kind, int64_t bytes, double waited,
                                  const std::vector<bool>& arrived) {
  std::vector<bool> missing(arrived.size());
  for (size_t r = 0; r < arrived.size(); ++r) missing[r] = !arrived[r];
  const std::string line = "dist: " + describe_wait("mpi", seq, kind, bytes, waited, timeout_s_) + ": " +
                           describe_missing(last_seen_, missing) + " never arrived; aborting the job";
  // One line from one rank: the lowest-numbered rank that arrived speaks first; the others give it a
  // moment before speaking themselves.
  const int speaker = static_cast<int>(std::find(arrived.begin(), arrived.end(), true) - arrived.begin());
  if (ctx_.rank != speaker)
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(2.0, 0.25 * timeout_s_)));
  abort_job(line);
}

}  // namespace gantry::dist_detail
