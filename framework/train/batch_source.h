// What the trainer consumes: batches from somewhere, and a position it can save and resume from.
// datasets/ implements it with the sharded loader; tests implement it with in-memory tensors.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace gantry {

// Where the data stream stands: the epoch, and how many samples of that epoch's global order have
// been handed out (to all ranks together). Independent of world size, so a run resumes on any.
struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const DataPosition& o) const { return epoch == o.epoch && index == o.index; }
};

struct Batch {
  torch::Tensor images;  // (B, C, H, W) float32 in [-1, 1], B = this rank's share of the global batch
  torch::Tensor labels;  // (B) int64; undefined when the dataset has none
  DataPosition position; // of this batch's first sample
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
  // Position of the next batch next() will return (what a checkpoint stores).
  virtual DataPosition position() const = 0;
};

}  // namespace gantry
