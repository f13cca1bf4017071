/* allreduce_alpha_beta: time of one raw MPI_Allreduce(MPI_SUM, float) per message size, for fitting
 * T(n) = a + b·n (scaling_model.py turns a, b into the ring model's alpha and beta). Sizes 8 B .. 16 MiB
 * by powers of 4 (then 16 MiB); per size, `rounds` rounds of `iters` calls after a warm-up, slowest rank's mean per
 * round, median over rounds. Prints "bytes us" lines on rank 0.
 *   mpicc -O2 -o /tmp/allreduce_alpha_beta experiments/benchmarks/allreduce_alpha_beta.c
 *   mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -n 2 /tmp/allreduce_alpha_beta [rounds] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const long max_bytes = 16L << 20;
  float* in = malloc((size_t)max_bytes);
  float* out = malloc((size_t)max_bytes);
  for (long i = 0; i < max_bytes / 4; ++i) in[i] = 1.0f;
  double per_round[64];
  for (long bytes = 8; bytes <= max_bytes; bytes = bytes * 4 > max_bytes && bytes < max_bytes ? max_bytes : bytes * 4) {
    const int count = (int)(bytes / 4);
    /* about 0.2 s of calls per round at this machine's ~4 GB/s, at least 20 */
    int iters = (int)(200e6 / (double)(bytes + 20000) / world);
    if (iters < 20) iters = 20;
    if (iters > 2000) iters = 2000;
    for (int i = 0; i < 5; ++i) MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (out[count - 1] != (float)world) {
      fprintf(stderr, "allreduce_alpha_beta: wrong sum %g\n", out[count - 1]);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int r = 0; r < rounds && r < 64; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double mine = (MPI_Wtime() - t0) / iters * 1e6, slowest = 0;
      MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      per_round[r] = slowest;
    }
    const int n = rounds < 64 ? rounds : 64;
    qsort(per_round, (size_t)n, sizeof(double), cmp);
    if (rank == 0) printf("W=%d bytes=%ld us=%.2f\n", world, bytes, per_round[n / 2]);
  }
  free(in);
  free(out);
  MPI_Finalize();
  return 0;
}
