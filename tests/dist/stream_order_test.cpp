// The event ordering of device-stream collectives (dist/stream_order.h, used by the NCCL backend),
// checked without a GPU: a fake guard implementation records every event call.
#include "dist/stream_order.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gantry::dist_detail {
namespace {

std::vector<std::string> calls;  // what the fake device was asked to do, in order

// Appends its parts: the calls' names are built without `"literal" + std::string&&`, which GCC 12 flags
// falsely in C++20 (-Wstringop-overflow inside libstdc++).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s.append(parts), ...);
  return s;
}

// Events are numbered; streams are named by id. A host wait on an event would show as "HOST WAIT".
struct FakeGuard {
  explicit FakeGuard(c10::DeviceType) {}
  static std::string name(const void* event) { return cat("e", std::to_string(*static_cast<const int*>(event))); }
  void record(void** event, const c10::Stream& stream, c10::DeviceIndex, c10::EventFlag) const {
    static int next = 0;
    if (!*event) *event = new int(++next);
    calls.push_back(cat("record ", name(*event), " on s", std::to_string(stream.id())));
  }
  void block(void* event, const c10::Stream& stream) const {
    calls.push_back(cat("s", std::to_string(stream.id()), " waits for ", name(event)));
  }
  bool queryEvent(void*) const { return true; }
  void synchronizeEvent(void* event) const { calls.push_back(cat("HOST WAIT ", name(event))); }
  void destroyEvent(void* event, c10::DeviceIndex) const noexcept {
    calls.push_back(cat("destroy ", name(event)));
    delete static_cast<int*>(event);
  }
};

c10::Stream stream(c10::StreamId id) {
  return c10::Stream(c10::Stream::UNSAFE, c10::Device(c10::DeviceType::CUDA, 0), id);
}

TEST(StreamOrder, CollectiveWaitsForComputeAndTheCallerWaitsForTheCollective) {
  calls.clear();
  const c10::Stream compute = stream(1), comm = stream(2), caller = stream(3);
  auto done = enqueue_after<FakeGuard>(compute, comm, [] { calls.push_back("collective on s2"); });
  const size_t first = std::stoul(calls.front().substr(8));  // "record eN on s1"
  const std::string in = cat("e", std::to_string(first)), out = cat("e", std::to_string(first + 1));
  EXPECT_EQ(calls, (std::vector<std::string>{"record " + in + " on s1", "s2 waits for " + in, "collective on s2",
                                             "record " + out + " on s2", "destroy " + in}));
  calls.clear();
  wait_for(*done, caller);
  wait_for(*done, caller);  // Work::wait() may be called again: the stream just waits again
  EXPECT_EQ(calls, (std::vector<std::string>{"s3 waits for " + out, "s3 waits for " + out}));
  EXPECT_TRUE(done->query());
  done.reset();
  EXPECT_EQ(calls.back(), "destroy " + out);
  for (const auto& c : calls) EXPECT_EQ(c.find("HOST WAIT"), std::string::npos) << c;
}

}  // namespace
}  // namespace gantry::dist_detail
