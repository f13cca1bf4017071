#include "dist/rendezvous.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "dist/mpi_check.h"

namespace gantry::dist_detail {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSpin = std::chrono::microseconds(50);       // poll without sleeping this long first
constexpr auto kMaxSleep = std::chrono::microseconds(200);  // then sleep, doubling up to this
constexpr int64_t kKinds = 8;                               // key = seq * kKinds + kind

std::string describe_key(int64_t key) {
  return "#" + std::to_string(key / kKinds) + " (" + kind_name(static_cast<CollectiveKind>(key % kKinds)) + ")";
}

}  // namespace

ControlReduce::~ControlReduce() {
  if (!started_ || done_) return;
  try {
    wait();
  } catch (...) {  // a mismatch already reported by whoever waited; nothing to add in a destructor
  }
}

void ControlReduce::start(MPI_Comm comm, int64_t value, int64_t seq, CollectiveKind kind) {
  const int64_t key = seq * kKinds + static_cast<int64_t>(kind);
  mine_[0] = value;
  mine_[1] = key;
  mine_[2] = -key;
  seq_ = seq;
  kind_ = kind;
  done_ = false;
  GANTRY_MPI_CHECK(MPI_Iallreduce(mine_, result_, 3, MPI_INT64_T, MPI_MAX, comm, &request_));
  started_ = true;
}

bool ControlReduce::test() {
  if (done_) return true;
  int flag = 0;
  GANTRY_MPI_CHECK(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE));
  if (!flag) return false;
  done_ = true;
  const int64_t highest = result_[1], lowest = -result_[2];
  if (highest != mine_[1] || lowest != mine_[1])
    throw std::logic_error("dist: ranks issued different collectives: this rank's is " + describe_key(mine_[1]) +
                           ", others' range from " + describe_key(lowest) + " to " + describe_key(highest) +
                           " (every rank must issue the same collectives and agreements in the same order)");
  return true;
}

void ControlReduce::wait() {
  const auto start = Clock::now();
  auto sleep = std::chrono::microseconds(10);
  while (!test()) {
    if (Clock::now() - start < kSpin) continue;
    std::this_thread::sleep_for(sleep);
    sleep = std::min(kMaxSleep, sleep * 2);
  }
}

void rendezvous(MPI_Comm control, int64_t seq, CollectiveKind kind) {
  ControlReduce r;
  r.start(control, 0, seq, kind);
  r.wait();
}

}  // namespace gantry::dist_detail
