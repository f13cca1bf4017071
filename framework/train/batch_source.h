// What the trainer consumes: batches from somewhere, and a position it can save and resume from.
// datasets/ implements it with the sharded loader; tests implement it with in-memory tensors.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace gantry {

// Where the data stream stands: the epoch, and how many samples of that epoch's global order have
// been handed out (to all ranks together). Independent of world size, so a run resumes on any.
struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const DataPosition& o) const { return epoch == o.epoch && index == o.index; }
};

// Image shape of a data stream: what networks are built for. A checkpoint records every stream's
// (manifest.json "data_shapes"), so a run copied off its cluster is sampled without its data.
struct DataShape {
  int64_t channels = 1, height = 28, width = 28;
  bool has_labels = false;
};

struct Batch {
  torch::Tensor images;   // (B, C, H, W) float32 in [-1, 1], or (B, H, W, C) uint8 as stored (see
                          // images_to_float); B = this rank's share of the global batch
  torch::Tensor labels;   // (B) int64; undefined when the dataset has none
  DataPosition position;  // of this batch's first sample
};

// Pixel values: uint8 v becomes v * kPixelScale - 1 in float32 (two roundings: the multiply, then the
// subtraction), in [-1, 1]. The loader's float output and uint8_to_float use this one constant.
inline constexpr float kPixelScale = 2.0f / 255.0f;

// (B, H, W, C) uint8 → (B, C, H, W) float32 in [-1, 1], on the tensor's own device (the GPU for a CUDA
// run): bit-identical to the loader's float output for the same images, on every device (a multiply
// kernel, then a subtraction kernel: no fused multiply-add), and no host synchronisation.
inline torch::Tensor uint8_to_float(const torch::Tensor& hwc) {
  torch::Tensor chw =
      torch::empty({hwc.size(0), hwc.size(3), hwc.size(1), hwc.size(2)}, hwc.options().dtype(torch::kFloat32));
  chw.copy_(hwc.permute({0, 3, 1, 2}));
  return chw.mul_(static_cast<double>(kPixelScale)).sub_(1.0);
}

// Model input from a batch's images on `device`: float (B, C, H, W) passes through; uint8 (B, H, W, C)
// is moved first (4x fewer bytes; a non-blocking copy when the loader pinned it) and converted there.
inline torch::Tensor images_to_float(const torch::Tensor& images, const torch::Device& device) {
  if (images.scalar_type() != torch::kUInt8) return images.to(device);
  return uint8_to_float(images.to(device, /*non_blocking=*/true));
}

// A 64-bit key mixed from (run seed, stream, a, b) (splitmix64 finaliser at each step): every
// per-purpose random stream of a run derives from run.seed through it — never by adding offsets to the
// seed, which makes streams of neighbouring seeds collide.
inline uint64_t keyed_seed(uint64_t seed, uint64_t stream, uint64_t a = 0, uint64_t b = 0) {
  auto mix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  uint64_t h = mix(seed);
  h = mix(h ^ stream);
  h = mix(h ^ a);
  return mix(h ^ b);
}

// A CPU generator keyed by (run seed, stream, a, b). LibTorch's CPU generator (mt19937) keeps only the
// low 32 bits of its seed, so the mixed key is folded to them; otherwise keys that differ only in high
// bits would give the same numbers.
inline at::Generator keyed_generator(uint64_t seed, uint64_t stream, uint64_t a = 0, uint64_t b = 0) {
  const uint64_t h = keyed_seed(seed, stream, a, b);
  return at::make_generator<at::CPUGeneratorImpl>((h ^ (h >> 32)) & 0xFFFFFFFFull);
}

// The random numbers that go with one global batch (noise, synthetic samples), keyed by (run seed,
// stream, data position): the same on every world size (draw the global batch's numbers, take this
// rank's rows) and after a resume. `stream` separates independent uses (e.g. a recipe's latent noise
// from its data).
inline at::Generator batch_generator(uint64_t seed, uint64_t stream, const DataPosition& position) {
  return keyed_generator(seed, stream, static_cast<uint64_t>(position.epoch), static_cast<uint64_t>(position.index));
}

// One generator per row of this rank's share of a global batch, row i keyed by (key, the epoch, the
// place of its sample in the epoch's global order): a sample gets the same random numbers on every world
// size, and a rank draws only for its own rows (nothing that grows with the world size). Rank r holds rows
// [r·B, (r+1)·B) of the global batch that starts at batch.position (B = batch.images.size(0)).
inline std::vector<at::Generator> row_generators(uint64_t key, const Batch& batch, int rank) {
  const int64_t rows = batch.images.size(0), first = batch.position.index + rank * rows;
  std::vector<at::Generator> gens;
  gens.reserve(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i)
    gens.push_back(keyed_generator(key, static_cast<uint64_t>(batch.position.epoch), static_cast<uint64_t>(first + i)));
  return gens;
}

// Standard normal float32 (gens.size(), shape...) on the CPU, row i the next numbers of gens[i].
inline torch::Tensor row_normal(std::vector<at::Generator>& gens, at::IntArrayRef shape) {
  std::vector<torch::Tensor> rows;
  rows.reserve(gens.size());
  for (auto& gen : gens) rows.push_back(at::randn(shape, gen, torch::kFloat32));
  return torch::stack(rows);
}

// This rank's rows of a tensor drawn for the whole global batch (rank r of W takes rows
// [r·B/W, (r+1)·B/W)), as the loader slices the data.
inline torch::Tensor rank_rows(const torch::Tensor& global, int rank, int world_size) {
  const int64_t local = global.size(0) / world_size;
  return global.narrow(0, rank * local, local);
}

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
  // Position of the next batch next() will return (what a checkpoint stores).
  virtual DataPosition position() const = 0;
  // Steps in one epoch (0: unknown / endless).
  virtual int64_t steps_per_epoch() const { return 0; }
};

}  // namespace gantry
