// The `gantry` command line: each subcommand is a function (args after the subcommand) → exit code.
// Errors are thrown (gantry::Error and subclasses) and turned into one line + exit code by main().
#pragma once

#include <string>
#include <vector>

namespace gantry::cli {

using Args = std::vector<std::string>;

int data_command(const Args& args);  // data convert | inspect | verify | bench
int doctor_command(const Args& args);
int report_command(const Args& args);  // gantry report RUN_DIR: one self-contained HTML page of a run

}  // namespace gantry::cli
namespace gantry {
class MpiRuntime;
}
namespace gantry::cli {
int train_command(const Args& args, MpiRuntime& mpi);
int eval_command(const Args& args, MpiRuntime& mpi);
int sample_command(const Args& args, MpiRuntime& mpi);

}  // namespace gantry::cli
