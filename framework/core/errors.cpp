#include "core/errors.h"

#include <cstring>

namespace gantry {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message (possibly not in buf).
  return std::string(strerror_r(err, buf, sizeof buf));
}

}  // namespace gantry
