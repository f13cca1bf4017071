// The `gantry` command line: each subcommand is a function (args after the subcommand) → exit code.
// Errors are thrown (gantry::Error and subclasses) and turned into one line + exit code by main().
#pragma once

#include <string>
#include <vector>

namespace gantry::cli {

using Args = std::vector<std::string>;

int data_command(const Args& args);    // data convert | inspect | verify | bench
int doctor_command(const Args& args);

// Parses `args` with Boost.Program_options; prints help and returns false on --help.
// Defined in cli.cpp so Boost stays out of this header.
}  // namespace gantry::cli
