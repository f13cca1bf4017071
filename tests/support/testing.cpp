#include "support/testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace gantry::testing {

namespace fs = std::filesystem;

ScratchDir::ScratchDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TMPDIR");
  fs::path base = tmp && *tmp ? tmp : "/tmp";
  path_ = (base / ("gantry-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++))).string();
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void prepare_child_environment() {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  setenv("OMP_NUM_THREADS", "1", 0);
}

CommandResult run_command(const std::string& command_line) {
  prepare_child_environment();
  CommandResult r;
  FILE* p = popen((command_line + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + command_line);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

CommandResult run_gantry(const std::string& args) {
  return run_command(std::string(GANTRY_BIN) + " " + args);
}

CommandResult convert_fashion_mnist(const std::string& split, int64_t limit, const std::string& out, bool labels,
                                    const std::string& extra) {
  const std::string src = "/usr/share/datasets/fashion-mnist/" + split;
  return run_gantry("data convert --quiet --format idx --limit " + std::to_string(limit) + " --images " + src +
                    "-images-idx3-ubyte.gz" + (labels ? " --labels " + src + "-labels-idx1-ubyte.gz" : "") + extra +
                    " --out " + out);
}

CommandResult make_colour_domains(const ScratchDir& dir) {
  CommandResult r;
  for (const auto& [name, count, seed] : {std::tuple{"a", 24, 1}, std::tuple{"b", 20, 2}}) {
    r = run_gantry("data convert --quiet --format synthetic --count " + std::to_string(count) +
                   " --resolution 20 --channels 3 --seed " + std::to_string(seed) + " --out " + (dir / name));
    if (r.exit_code != 0) break;
  }
  return r;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace gantry::testing
