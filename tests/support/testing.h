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

// `gantry data convert` of the first `limit` images of Fashion-MNIST's `split` ("train" or "t10k", from
// /usr/share/datasets/fashion-mnist) into `out`, with its labels if `labels`, and `extra` flags.
CommandResult convert_fashion_mnist(const std::string& split, int64_t limit, const std::string& out,
                                    bool labels = false, const std::string& extra = "");

// The tiny CycleGAN's two synthetic colour domains: dir/a (24 images) and dir/b (20), 20 x 20 RGB. The
// result of the first conversion that failed, or of the last.
CommandResult make_colour_domains(const ScratchDir& dir);
// `gantry train` flags that make CycleGAN tiny: 16 x 16 crops, widths 4, one residual block, one
// discriminator layer, a pool of 3.
inline constexpr char kTinyCycleGan[] =
    " --cyclegan.crop_size 16 --cyclegan.g_width 4 --cyclegan.d_width 4 --cyclegan.residual_blocks 1"
    " --cyclegan.d_layers 1 --cyclegan.pool_size 3";

void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

}  // namespace gantry::testing
