// Errors that leave gantry with a documented exit code (ARCHITECTURE.md, "Exit codes").
// Throw the subclass that names the cause; `gantry` main prints "gantry: error: <what>" and exits
// with its code. Messages start with the file or key at fault: "data.path: no such directory".
#pragma once

#include <stdexcept>
#include <string>

namespace gantry {

enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,    // a bug
  kUsage = 2,       // bad command line or configuration
  kData = 3,        // dataset missing, malformed or corrupt
  kCheckpoint = 4,  // checkpoint missing, corrupt or incompatible
  kEnvironment = 5, // I/O error, disk full, permission denied, MPI/HDF5 failure (the OS's reason printed)
  kLostRank = 6,    // a rank was lost, hung or unreachable: requeue and --resume auto
  kStopped = 75,    // stopped by a signal after writing a checkpoint (EX_TEMPFAIL: requeue)
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

struct UsageError : Error {
  explicit UsageError(const std::string& what) : Error(ExitCode::kUsage, what) {}
};
struct DataError : Error {
  explicit DataError(const std::string& what) : Error(ExitCode::kData, what) {}
};
struct CheckpointError : Error {
  explicit CheckpointError(const std::string& what) : Error(ExitCode::kCheckpoint, what) {}
};
// The machine, not the user or the program: file-system errors (with errno_text), MPI or HDF5 failures.
struct EnvironmentError : Error {
  explicit EnvironmentError(const std::string& what) : Error(ExitCode::kEnvironment, what) {}
};
// A peer rank died, stopped or became unreachable (the communicator's watchdog).
struct LostRankError : Error {
  explicit LostRankError(const std::string& what) : Error(ExitCode::kLostRank, what) {}
};

// "path: problem" — the one-line form every user-facing error takes.
inline std::string at(const std::string& where, const std::string& problem) { return where + ": " + problem; }

// errno as text, for errors from the file system.
std::string errno_text(int err);

// The exit code an exception ends gantry with: an Error's own; 5 for the environment's failures that
// reach us as standard exceptions (std::filesystem::filesystem_error, std::system_error, std::bad_alloc);
// 1 (a bug) for anything else.
int exit_code_of(const std::exception& e);
// The one-line text for it: an Error's or the environment's message as it is; anything else prefixed
// "internal error (please report): ".
std::string error_text(const std::exception& e);

}  // namespace gantry
