#include "dist/mpi_runtime.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/errors.h"
#include "dist/backend_util.h"
#include "dist/mpi_check.h"

namespace gantry {

namespace dist_detail {

namespace {

std::string mpi_report(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "error %d", code);
  std::string rank = "?";
  if (mpi_initialized()) {
    int r = -1;
    if (MPI_Comm_rank(MPI_COMM_WORLD, &r) == MPI_SUCCESS) rank = std::to_string(r);
  }
  return "dist: " + std::string(call) + " failed at " + file + ":" + std::to_string(line) + " on rank " + rank + ": " +
         text;
}

}  // namespace

// An MPI call that fails is the environment (network, launcher, resources), not a bug: exit 5.
void mpi_fail(int code, const char* call, const char* file, int line) {
  throw EnvironmentError(mpi_report(code, call, file, line));
}

void mpi_warn(int code, const char* call, const char* file, int line) noexcept {
  try {
    std::fprintf(stderr, "gantry: warning: %s\n", mpi_report(code, call, file, line).c_str());
  } catch (...) {
  }
}

}  // namespace dist_detail

bool mpi_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

DistContext discover_context() {
  if (!mpi_initialized()) return DistContext{};
  return dist_detail::context_of(MPI_COMM_WORLD);
}

DistContext dist_detail::context_of(MPI_Comm comm) {
  DistContext ctx;
  GANTRY_MPI_CHECK(MPI_Comm_rank(comm, &ctx.rank));
  GANTRY_MPI_CHECK(MPI_Comm_size(comm, &ctx.world_size));
  MPI_Comm node = MPI_COMM_NULL;
  GANTRY_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, ctx.rank, MPI_INFO_NULL, &node));
  GANTRY_MPI_CHECK(MPI_Comm_rank(node, &ctx.local_rank));
  GANTRY_MPI_CHECK(MPI_Comm_size(node, &ctx.local_size));
  GANTRY_MPI_CHECK(MPI_Comm_free(&node));
  return ctx;
}

MpiRuntime::MpiRuntime(int& argc, char**& argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // The default error handler of MPI_COMM_WORLD is fatal: a failed init never returns.
    GANTRY_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_ = true;
  } else {
    GANTRY_MPI_CHECK(MPI_Query_thread(&thread_level_));
  }
  ctx_ = discover_context();
}

MpiRuntime::~MpiRuntime() {
  if (owns_ && mpi_initialized()) GANTRY_MPI_CHECK_NOTHROW(MPI_Finalize());
}

void MpiRuntime::abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this only satisfies [[noreturn]]
}

}  // namespace gantry
