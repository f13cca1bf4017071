// gantry: a git-style command line. `gantry <command> --help` lists each command's options.
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/memory.h"
#include "dist/mpi_runtime.h"

namespace {

const char* kUsage =
    "usage: gantry <command> [options]\n"
    "\n"
    "commands:\n"
    "  train          train a recipe: gantry train --config experiments/NAME.ini [--section.key value ...]\n"
    "  eval           score a checkpoint: held-out metrics, FID / KID, Parzen (gantry eval --help)\n"
    "  sample         draw images from a checkpoint: a PNG grid, PNG files or a dataset; translate a folder\n"
    "  report         one self-contained HTML page of a run: gantry report RUN_DIR [--out FILE]\n"
    "  data convert   convert idx / LSUN LMDB / image folders into HDF5 shards\n"
    "  data inspect   print a dataset's count, shape, shards, labels and source\n"
    "  data verify    recheck every shard's checksum and structure\n"
    "  data bench     measure loader throughput\n"
    "  doctor         versions, BLAS, MPI and GPUs this process sees\n"
    "\n"
    "`gantry <command> --help` lists a command's options. Exit codes: 0 done, 1 internal error,\n"
    "2 usage or configuration, 3 dataset, 4 checkpoint, 5 environment (I/O, disk, permissions, MPI, HDF5),\n"
    "6 a rank was lost or hung, 75 stopped by a signal after a checkpoint (6 and 75: resume with --resume auto).\n";

int fail(gantry::ExitCode code, const std::string& message) {
  gantry::end_open_terminal_line();
  std::fprintf(stderr, "gantry: error: %s\n", message.c_str());
  return static_cast<int>(code);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  gantry::keep_freed_memory();  // no mmap/munmap and page faults for every step's activations
  std::string command = argv[1];
  gantry::cli::Args args(argv + 2, argv + argc);
  try {
    if (command == "train" || command == "eval" || command == "sample") {
      // MPI for the whole run. Configuration, data and checkpoint errors are the same on every rank:
      // rank 0 reports them. An error on some ranks only leaves the others in a collective, which the
      // communicator's watchdog ends after dist.timeout_s, naming the missing ranks.
      gantry::MpiRuntime mpi(argc, argv);
      try {
        if (command == "train") return gantry::cli::train_command(args, mpi);
        return command == "eval" ? gantry::cli::eval_command(args, mpi) : gantry::cli::sample_command(args, mpi);
      } catch (const gantry::Error& e) {
        if (mpi.context().rank == 0) return fail(e.code(), e.what());
        return static_cast<int>(e.code());
      }
    }
    if (command == "data") return gantry::cli::data_command(args);
    if (command == "doctor") return gantry::cli::doctor_command(args);
    if (command == "report") return gantry::cli::report_command(args);
    return fail(gantry::ExitCode::kUsage, "unknown command '" + command + "' (see gantry --help)");
  } catch (const gantry::Error& e) {
    return fail(e.code(), e.what());
  } catch (const boost::program_options::error& e) {
    return fail(gantry::ExitCode::kUsage, e.what());
  } catch (const std::exception& e) {
    return fail(static_cast<gantry::ExitCode>(gantry::exit_code_of(e)), gantry::error_text(e));
  }
}
