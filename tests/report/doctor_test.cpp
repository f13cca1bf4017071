// gantry doctor names what decides whether two runs agree to the bit besides the thread count: the CPU's
// vector extensions and, where LibTorch links oneDNN visibly (Debian's 1.13), the instruction set of the
// oneDNN kernels its CPU convolutions run, which DNNL_MAX_CPU_ISA caps (a classifier trained here with
// the cap at AVX2 wrote the same bytes as one trained on an AVX2-only machine; models/classifier/README.md).
#include <gtest/gtest.h>
#include <torch/version.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

#include "support/testing.h"

namespace gantry {
namespace {

// The value of `gantry doctor`'s row `name` ("" if there is none).
std::string row(const std::string& output, const std::string& name) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + " ", 0) == 0) return line.substr(line.find_first_not_of(' ', name.size()));
  return "";
}

// Whether /proc/cpuinfo lists the CPU flag `flag`.
bool cpu_has(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

TEST(Doctor, NamesTheCpuExtensionsAndOneDnnsKernels) {
  auto r = testing::run_gantry("doctor");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string cpu = row(r.output, "CPU");
  ASSERT_FALSE(cpu.empty()) << r.output;
  // "MODEL (avx2 avx512f ...)": the extensions listed are exactly those of the four the CPU has.
  const auto open = cpu.rfind('(');
  ASSERT_NE(open, std::string::npos) << cpu;
  std::istringstream listed(cpu.substr(open + 1, cpu.size() - open - 2));
  std::set<std::string> extensions{std::istream_iterator<std::string>(listed), {}};
  for (const char* flag : {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    EXPECT_EQ(extensions.count(flag) == 1, cpu_has(flag)) << flag << " in " << cpu;
#if TORCH_VERSION_MAJOR < 2
  const std::string dnnl = row(r.output, "oneDNN");
  ASSERT_NE(dnnl.find(", kernels cpu_isa_"), std::string::npos) << r.output;
  if (cpu_has("avx512f")) {
    EXPECT_NE(dnnl.find("avx512"), std::string::npos) << dnnl;
  }
  auto capped = testing::run_command("DNNL_MAX_CPU_ISA=AVX2 " + std::string(GANTRY_BIN) + " doctor");
  ASSERT_EQ(capped.exit_code, 0) << capped.output;
  const std::string capped_dnnl = row(capped.output, "oneDNN");
  EXPECT_EQ(capped_dnnl.find("avx512"), std::string::npos) << capped_dnnl;
  if (cpu_has("avx2")) {
    EXPECT_NE(capped_dnnl.find("cpu_isa_avx2"), std::string::npos) << capped_dnnl;
  }
#endif
}

}  // namespace
}  // namespace gantry
