// Minimal logging: info lines go to stdout on rank 0 (or when `all_ranks`), warnings to stderr with
// the rank. The rank is passed in, never looked up globally.
#pragma once

#include <string>

namespace gantry {

void log_info(const std::string& line, int rank = 0);
void log_warn(const std::string& line, int rank = 0);

// A progress bar on a terminal redraws one line without ending it. It marks that line open; whoever
// prints anything else (log_info, log_warn, an error) first ends it, so no message is glued to the bar.
// (The terminal is one per process, hence process-wide; it is only a flag.)
void set_terminal_line_open(bool open);
void end_open_terminal_line();

}  // namespace gantry
