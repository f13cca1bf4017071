// parallel_for over [0, n) on a fixed number of std::threads (dynamic, chunked scheduling).
// Used by converters for decoding; the first exception thrown by `fn` is rethrown on the caller.
#pragma once

#include <cstddef>
#include <functional>

namespace gantry {

// threads == 0 means std::thread::hardware_concurrency().
void parallel_for(size_t n, unsigned threads, const std::function<void(size_t)>& fn);

unsigned hardware_threads();

}  // namespace gantry
