#include "core/errors.h"

#include <cstring>
#include <filesystem>
#include <new>
#include <system_error>

namespace gantry {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message (possibly not in buf).
  return std::string(strerror_r(err, buf, sizeof buf));
}

namespace {
bool environmental(const std::exception& e) {
  return dynamic_cast<const std::system_error*>(&e) || dynamic_cast<const std::bad_alloc*>(&e);
}
}  // namespace

int exit_code_of(const std::exception& e) {
  if (const auto* err = dynamic_cast<const Error*>(&e)) return static_cast<int>(err->code());
  return static_cast<int>(environmental(e) ? ExitCode::kEnvironment : ExitCode::kInternal);
}

std::string error_text(const std::exception& e) {
  if (dynamic_cast<const Error*>(&e)) return e.what();
  if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    // "filesystem error: create_directories: Permission denied [/x]" -> "/x: create_directories: Permission denied"
    std::string where = fe->path1().string();
    return (where.empty() ? std::string() : where + ": ") + fe->code().message();
  }
  if (environmental(e)) return e.what();
  return std::string("internal error (please report): ") + e.what();
}

}  // namespace gantry
