// Host memory policy for training processes: keep freed heap memory for reuse.
//
// glibc's malloc serves blocks of 128 KiB and more with mmap and returns them on free (and trims the heap
// top once 128 KiB is free), so a training step that allocates and frees the same activation sizes every
// step — a (1024, 64) float activation is 256 KiB — pays a fresh mapping and a page fault per 4 KiB page,
// every step: 1.1 ms of system time per f-GAN 1-D step (experiments/benchmarks/RESULTS.md, "fused
// optimizer step"). keep_freed_memory() raises both thresholds so such blocks come from, and go back to,
// the heap: the process keeps its peak heap (which every step reaches anyway) instead of faulting it in
// again. The gantry executable calls it first thing; benchmarks that time gantry's step call it too.
// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment win (they are left alone).
#pragma once

namespace gantry {

// Returns false when the environment already sets a threshold or mallopt refused (nothing changed then).
bool keep_freed_memory();

}  // namespace gantry
