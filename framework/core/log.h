// Minimal logging: info lines go to stdout on rank 0 (or when `all_ranks`), warnings to stderr with
// the rank. The rank is passed in, never looked up globally.
#pragma once

#include <string>

namespace gantry {

void log_info(const std::string& line, int rank = 0);
void log_warn(const std::string& line, int rank = 0);

}  // namespace gantry
