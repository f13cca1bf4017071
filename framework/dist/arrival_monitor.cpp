#include "dist/arrival_monitor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>

#include "dist/mpi_check.h"

namespace gantry::dist_detail {

namespace {

constexpr int kArrivalTag = 7001;
constexpr int64_t kBye = -1;  // message seq that says "this rank's monitor is closing"
constexpr auto kRootPoll = std::chrono::milliseconds(5);
constexpr auto kPeerPoll = std::chrono::milliseconds(50);

std::string format_bytes(int64_t bytes) {
  char buf[64];
  if (bytes >= (int64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%lld bytes", static_cast<long long>(bytes));
  return buf;
}

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

}  // namespace

std::string describe_wait(const std::string& channel, int64_t seq, CollectiveKind kind, int64_t bytes, double waited,
                          double timeout_s) {
  std::ostringstream line;
  line << channel << " collective #" << seq << " (" << kind_name(kind) << ", " << format_bytes(bytes) << ") waited "
       << format_seconds(waited) << " (dist.timeout_s = " << format_seconds(timeout_s) << ")";
  return line.str();
}

std::string describe_missing(const std::vector<int64_t>& last_started, const std::vector<bool>& missing) {
  std::ostringstream list;
  int count = 0;
  for (size_t r = 0; r < missing.size(); ++r) {
    if (!missing[r]) continue;
    list << (count++ ? ", " : "") << r << " (";
    if (last_started[r] < 0)
      list << "no collective started yet";
    else
      list << "last started #" << last_started[r];
    list << ")";
  }
  return (count == 1 ? "rank " : "ranks ") + list.str();
}

void abort_job(const std::string& line) {
  std::fprintf(stderr, "gantry: error: %s\n", line.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

const char* kind_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllReduce: return "all_reduce";
    case CollectiveKind::kBroadcast: return "broadcast";
    case CollectiveKind::kAllGather: return "all_gather";
    case CollectiveKind::kBarrier: return "barrier";
    case CollectiveKind::kAgree: return "agreement";
  }
  return "collective";
}

ArrivalMonitor::ArrivalMonitor(MPI_Comm parent, const DistContext& ctx, double timeout_s, std::string channel)
    : ctx_(ctx), timeout_s_(timeout_s), channel_(std::move(channel)) {
  GANTRY_MPI_CHECK(MPI_Comm_dup(parent, &control_));
  GANTRY_MPI_CHECK(MPI_Comm_set_errhandler(control_, MPI_ERRORS_RETURN));
  if (ctx_.rank == 0) {
    arrived_.assign(static_cast<size_t>(ctx_.world_size), -1);
    thread_ = std::thread([this] { root_loop(); });
  } else {
    thread_ = std::thread([this] { peer_loop(); });
  }
}

ArrivalMonitor::~ArrivalMonitor() {
  if (ctx_.rank != 0) {
    // Stop the fallback timer first, then tell rank 0 this rank is done and wait for the sends.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    try {
      send_to_root(kBye, CollectiveKind::kBarrier, 0);
      std::lock_guard<std::mutex> lock(send_mutex_);
      for (auto& o : outgoing_) GANTRY_MPI_CHECK(MPI_Wait(&o.request, MPI_STATUS_IGNORE));
      outgoing_.clear();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "gantry: warning (rank %d): %s\n", ctx_.rank, e.what());
    }
  } else {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;  // the root loop drains until every rank said bye, or a short deadline
    }
    wake_.notify_all();
    thread_.join();
  }
  if (control_ != MPI_COMM_NULL) GANTRY_MPI_CHECK_NOTHROW(MPI_Comm_free(&control_));
}

void ArrivalMonitor::arrive(int64_t seq, CollectiveKind kind, int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    own_seq_ = seq;
    own_open_ = true;
    own_since_ = Clock::now();
    own_kind_ = kind;
    own_bytes_ = bytes;
    if (ctx_.rank == 0) record_arrival(0, seq, kind, bytes);
  }
  if (ctx_.rank != 0) send_to_root(seq, kind, bytes);
}

void ArrivalMonitor::depart(int64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (own_seq_ == seq) own_open_ = false;
}

void ArrivalMonitor::send_to_root(int64_t seq, CollectiveKind kind, int64_t bytes) {
  std::lock_guard<std::mutex> lock(send_mutex_);
  // Reap sends that completed (tiny messages go eagerly; this keeps the queue short).
  while (!outgoing_.empty()) {
    int done = 0;
    GANTRY_MPI_CHECK(MPI_Test(&outgoing_.front().request, &done, MPI_STATUS_IGNORE));
    if (!done) break;
    outgoing_.pop_front();
  }
  outgoing_.push_back(Outgoing{{seq, static_cast<int64_t>(kind), bytes}, MPI_REQUEST_NULL});
  Outgoing& o = outgoing_.back();
  GANTRY_MPI_CHECK(MPI_Isend(o.message, 3, MPI_INT64_T, 0, kArrivalTag, control_, &o.request));
}

void ArrivalMonitor::record_arrival(int from, int64_t seq, CollectiveKind kind, int64_t bytes) {
  int64_t& last = arrived_[static_cast<size_t>(from)];
  if (seq <= last) return;
  last = seq;
  if (!opened_.count(seq)) opened_[seq] = Opened{Clock::now(), kind, bytes};
  const int64_t everyone = *std::min_element(arrived_.begin(), arrived_.end());
  opened_.erase(opened_.begin(), opened_.upper_bound(everyone));
}

std::string ArrivalMonitor::missing_report(int64_t seq, const Opened& opened) const {
  std::vector<bool> missing(arrived_.size());
  for (size_t r = 0; r < arrived_.size(); ++r) missing[r] = arrived_[r] < seq;
  const double waited = std::chrono::duration<double>(Clock::now() - opened.since).count();
  return "dist: " + describe_wait(channel_, seq, opened.kind, opened.bytes, waited, timeout_s_) + ": " +
         describe_missing(arrived_, missing) + " never arrived; aborting the job";
}

void ArrivalMonitor::root_loop() {
  try {
    int64_t message[3] = {0, 0, 0};
    MPI_Request request = MPI_REQUEST_NULL;
    const int peers = ctx_.world_size - 1;
    if (peers > 0)
      GANTRY_MPI_CHECK(MPI_Irecv(message, 3, MPI_INT64_T, MPI_ANY_SOURCE, kArrivalTag, control_, &request));
    Clock::time_point stop_deadline{};
    for (;;) {
      if (peers > 0) {
        int done = 0;
        MPI_Status status;
        GANTRY_MPI_CHECK(MPI_Test(&request, &done, &status));
        if (done) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (message[0] == kBye)
            ++byes_;
          else
            record_arrival(status.MPI_SOURCE, message[0], static_cast<CollectiveKind>(message[1]), message[2]);
          GANTRY_MPI_CHECK(MPI_Irecv(message, 3, MPI_INT64_T, MPI_ANY_SOURCE, kArrivalTag, control_, &request));
          continue;  // drain everything queued before sleeping
        }
      }
      std::unique_lock<std::mutex> lock(mutex_);
      if (!opened_.empty()) {
        const auto& [seq, opened] = *opened_.begin();
        if (std::chrono::duration<double>(Clock::now() - opened.since).count() > timeout_s_)
          abort_job(missing_report(seq, opened));
      }
      if (stopping_) {
        if (stop_deadline == Clock::time_point{})
          stop_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(std::min(timeout_s_, 10.0)));
        if (byes_ >= peers || Clock::now() > stop_deadline) break;
      }
      wake_.wait_for(lock, kRootPoll);
    }
    if (request != MPI_REQUEST_NULL) {
      GANTRY_MPI_CHECK(MPI_Cancel(&request));
      GANTRY_MPI_CHECK(MPI_Wait(&request, MPI_STATUS_IGNORE));
    }
  } catch (const std::exception& e) {
    abort_job(e.what());
  }
}

void ArrivalMonitor::peer_loop() {
  // Rank 0 names the missing ranks; this is the fallback for when rank 0 itself cannot.
  const double grace = std::max(2.0, 0.25 * timeout_s_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (own_open_) {
      const double waited = std::chrono::duration<double>(Clock::now() - own_since_).count();
      if (waited > timeout_s_ + grace)
        abort_job("dist: " + describe_wait(channel_, own_seq_, own_kind_, own_bytes_, waited, timeout_s_) +
                  " on rank " + std::to_string(ctx_.rank) +
                  " and rank 0 did not name the missing ranks (rank 0 may be the one stuck); aborting the job");
    }
    wake_.wait_for(lock, kPeerPoll);
  }
}

}  // namespace gantry::dist_detail
