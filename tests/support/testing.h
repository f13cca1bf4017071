// Shared test helpers: scratch directories, running the gantry CLI, small datasets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gantry::testing {

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "test");
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Exports what child processes need in tests (Open MPI as root in containers and CI, one OpenMP
// thread); run_command() calls it, tests that spawn processes another way call it first.
void prepare_child_environment();

// Runs a shell command line, capturing its output and exit code.
CommandResult run_command(const std::string& command_line);
// Runs `gantry <args>`.
CommandResult run_gantry(const std::string& args);

void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

}  // namespace gantry::testing
