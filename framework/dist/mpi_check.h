// GANTRY_MPI_CHECK(call): every MPI call goes through it. A failure throws EnvironmentError (exit 5) naming
// the call, file:line, the rank and MPI's error string. (Communicators created by gantry use
// MPI_ERRORS_RETURN so errors reach this macro instead of killing the job inside MPI.)
// GANTRY_MPI_CHECK_NOTHROW(call): the same report as a warning on stderr, for destructors.
// Internal to framework/dist (and its tests and benchmarks).
#pragma once

#include <mpi.h>

namespace gantry::dist_detail {

void mpi_fail(int code, const char* call, const char* file, int line);
void mpi_warn(int code, const char* call, const char* file, int line) noexcept;

}  // namespace gantry::dist_detail

#define GANTRY_MPI_CHECK(call)                                                                                     \
  do {                                                                                                             \
    const int gantry_mpi_rc_ = (call);                                                                             \
    if (gantry_mpi_rc_ != MPI_SUCCESS) ::gantry::dist_detail::mpi_fail(gantry_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

#define GANTRY_MPI_CHECK_NOTHROW(call)                                                                             \
  do {                                                                                                             \
    const int gantry_mpi_rc_ = (call);                                                                             \
    if (gantry_mpi_rc_ != MPI_SUCCESS) ::gantry::dist_detail::mpi_warn(gantry_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)
