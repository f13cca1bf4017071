#include "dist/watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>

#include "core/errors.h"
#include "core/log.h"
#include "dist/mpi_check.h"

namespace gantry::dist_detail {

namespace {

constexpr int kProbeTag = 7101;  // "where are you?" — message: {seq of the prober's open collective}
constexpr int kReplyTag = 7102;  // answer — message: Status as 4 int64
constexpr auto kTick = std::chrono::milliseconds(50);
constexpr auto kProbeTick = std::chrono::milliseconds(5);
constexpr double kProbeWindow_s = 1.5;  // how long a prober listens for answers
constexpr double kSpeakerGrace_s = 3;   // a quiet rank's extra wait for the speaker to end the job

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
  std::snprintf(buf, sizeof buf, "%.3g s", s);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::atomic<bool> g_ending{false};  // job_ending(): this process has declared the job lost

[[noreturn]] void park() {  // until MPI_Abort or end_job's timer ends the process
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace

bool job_ending() {
  return g_ending.load();
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

std::string describe_wait(const std::string& channel, int64_t seq, CollectiveKind kind, int64_t bytes, double waited,
                          double timeout_s) {
  std::ostringstream line;
  line << channel << " collective #" << seq << " (" << kind_name(kind) << ", " << format_bytes(bytes) << ") waited "
       << format_seconds(waited) << " (dist.timeout_s = " << format_seconds(timeout_s) << ")";
  return line.str();
}

void end_job(const std::string& line, double grace_s) {
  static std::atomic<bool> ending{false};
  g_ending.store(true);
  if (ending.exchange(true)) park();  // another thread is ending the job
  constexpr int code = static_cast<int>(ExitCode::kLostRank);
  // MPI_Abort asks mpirun to kill every rank; it can block forever when mpirun cannot reach a host.
  std::thread([grace_s] {
    std::this_thread::sleep_for(std::chrono::duration<double>(grace_s));
    std::fflush(stderr);
    ::_exit(code);
  }).detach();
  end_open_terminal_line();  // a progress bar may be mid-line ('\r' redraws)
  std::fflush(stdout);
  std::fprintf(stderr, "gantry: error: %s\n", line.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  ::_exit(code);
}

Watchdog::Watchdog(MPI_Comm parent, const DistContext& ctx, double timeout_s, std::string channel)
    : ctx_(ctx), timeout_s_(timeout_s), channel_(std::move(channel)) {
  GANTRY_MPI_CHECK(MPI_Comm_dup(parent, &comm_));
  GANTRY_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  // Answers still in flight go to ranks that are ending too: cancel rather than wait on them.
  for (auto& o : outgoing_) {
    if (o.request == MPI_REQUEST_NULL) continue;
    MPI_Cancel(&o.request);
    MPI_Request_free(&o.request);
  }
  if (comm_ != MPI_COMM_NULL) GANTRY_MPI_CHECK_NOTHROW(MPI_Comm_free(&comm_));
}

void Watchdog::start(int64_t seq, CollectiveKind kind, int64_t bytes, bool timed) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_started_ = std::max(last_started_, seq);
  open_[seq] = Open{kind, bytes, timed, Clock::now()};
}

void Watchdog::wait(int64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = open_.find(seq);
  if (it == open_.end() || it->second.timed) return;
  it->second.timed = true;
  it->second.since = Clock::now();
}

void Watchdog::finish(int64_t seq) {
  if (job_ending()) park();  // the loss is declared: whatever completed, this rank goes no further
  std::lock_guard<std::mutex> lock(mutex_);
  open_.erase(seq);
}

Watchdog::Status Watchdog::status() {
  std::lock_guard<std::mutex> lock(mutex_);
  Status s;
  s.last_started = last_started_;
  for (const auto& [seq, open] : open_) {
    if (!open.timed) continue;
    s.open_seq = seq;
    s.waited_ms = static_cast<int64_t>(1000 * seconds_since(open.since));
    s.open_kind = static_cast<int64_t>(open.kind);
    break;
  }
  return s;
}

void Watchdog::send(int to, int tag, const int64_t* message, int count) {
  // Reap finished sends first (tiny messages leave eagerly; this keeps the queue short).
  while (!outgoing_.empty()) {
    int done = 0;
    if (MPI_Test(&outgoing_.front().request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) break;
    outgoing_.pop_front();
  }
  outgoing_.push_back(Outgoing{{0, 0, 0, 0}, MPI_REQUEST_NULL});
  Outgoing& o = outgoing_.back();
  std::copy(message, message + count, o.message);
  // Errors ignored: on this path a peer may be gone, and nothing here may throw.
  MPI_Isend(o.message, count, MPI_INT64_T, to, tag, comm_, &o.request);
}

void Watchdog::answer_probes() {
  for (;;) {
    int flag = 0;
    MPI_Status probe;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kProbeTag, comm_, &flag, &probe) != MPI_SUCCESS || !flag) return;
    int64_t asked = 0;
    MPI_Recv(&asked, 1, MPI_INT64_T, probe.MPI_SOURCE, kProbeTag, comm_, MPI_STATUS_IGNORE);
    const Status s = status();
    const int64_t reply[4] = {s.last_started, s.open_seq, s.waited_ms, s.open_kind};
    send(probe.MPI_SOURCE, kReplyTag, reply, 4);
  }
}

void Watchdog::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    answer_probes();
    lock.lock();
    for (const auto& [seq, open] : open_) {
      if (!open.timed || seconds_since(open.since) <= timeout_s_) continue;
      const int64_t s = seq;
      const Open o = open;
      lock.unlock();
      fail(s, o);  // does not return
    }
    wake_.wait_for(lock, kTick);
  }
}

void Watchdog::fail(int64_t seq, const Open& open) {
  g_ending.store(true);  // from here the job ends, even if collective #seq completes meanwhile
  const int world = ctx_.world_size;
  const double waited = seconds_since(open.since);
  // Ask everyone where they are, answering their questions meanwhile (they may be probing too).
  for (int r = 0; r < world; ++r)
    if (r != ctx_.rank) send(r, kProbeTag, &seq, 1);
  std::vector<bool> answered(static_cast<size_t>(world), false);
  std::vector<Status> where(static_cast<size_t>(world));
  answered[static_cast<size_t>(ctx_.rank)] = true;
  where[static_cast<size_t>(ctx_.rank)] = status();
  int answers = 1;
  const auto asked = Clock::now();
  while (answers < world && seconds_since(asked) < kProbeWindow_s) {
    answer_probes();
    int flag = 0;
    MPI_Status probe;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kReplyTag, comm_, &flag, &probe) == MPI_SUCCESS && flag) {
      int64_t reply[4] = {-1, -1, 0, 0};
      MPI_Recv(reply, 4, MPI_INT64_T, probe.MPI_SOURCE, kReplyTag, comm_, MPI_STATUS_IGNORE);
      const auto r = static_cast<size_t>(probe.MPI_SOURCE);
      if (!answered[r]) ++answers;
      answered[r] = true;
      where[r] = Status{reply[0], reply[1], reply[2], reply[3]};
      continue;
    }
    std::this_thread::sleep_for(kProbeTick);
  }

  // Name the missing: no answer, or answered but never started collective #seq.
  std::ostringstream list;
  int missing = 0;
  for (int r = 0; r < world; ++r) {
    const auto& s = where[static_cast<size_t>(r)];
    if (answered[static_cast<size_t>(r)] && s.last_started >= seq) continue;
    list << (missing++ ? ", " : "") << r << " (";
    if (!answered[static_cast<size_t>(r)])
      list << "no answer: stopped, dead or unreachable";
    else if (s.last_started < 0)
      list << "no collective started yet";
    else
      list << "last started #" << s.last_started;
    list << ")";
  }
  std::string line = "dist: " + describe_wait(channel_, seq, open.kind, open.bytes, waited, timeout_s_) + ": ";
  if (missing > 0)
    line += (missing == 1 ? "rank " : "ranks ") + list.str() + " never arrived";
  else
    line +=
        "every rank answered and started it, but it did not complete (a hang inside the collective, the "
        "network or a device)";
  line += "; a rank was lost or hung; resume with --resume auto";

  // One line from one rank: the lowest-numbered answering rank that is itself waiting. Any other rank
  // gives that one time to time out, probe and end the job, then ends it itself.
  int speaker = ctx_.rank;
  for (int r = 0; r < ctx_.rank; ++r)
    if (answered[static_cast<size_t>(r)] && where[static_cast<size_t>(r)].open_seq >= 0) {
      speaker = r;
      break;
    }
  if (speaker != ctx_.rank) {
    const double speaker_left =
        std::max(0.0, timeout_s_ - static_cast<double>(where[static_cast<size_t>(speaker)].waited_ms) / 1000);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                             speaker_left + kProbeWindow_s + kSpeakerGrace_s));
    while (Clock::now() < deadline) {
      answer_probes();
      std::this_thread::sleep_for(kProbeTick);
    }
    line += " (rank " + std::to_string(speaker) + " did not end the job)";
  }
  end_job(line);
}

}  // namespace gantry::dist_detail
